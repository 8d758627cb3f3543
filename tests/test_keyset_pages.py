"""Member lists page by their sort key (keyset): the pages a user walks with «Далее» and «Назад»
are exactly the pages counted off from the start, namesakes included, and no name travels in an
address."""

import re
from datetime import date, timedelta

from unioncard.registry import services
from unioncard.registry.actor import Actor
from unioncard.registry.services import NewMember
from tests.support import letters, person


def _many_members(make_uow, tree, count: int) -> None:
    """``count`` members of one primary, every third a namesake of the one before (same sort key)."""
    entries = []
    for index in range(count):
        surname = f"Ключ-{letters(index - index % 3 // 2)}"
        entries.append(NewMember(person(surname, "Анна", "Сергеевна", date(1970, 1, 1) + timedelta(days=index),
                                        sex="female"), "working", date(2015, 9, 1), ()))
    with make_uow() as uow:
        services.register_new_members(uow, Actor.system("test"), tree.primary_a2, entries)
        uow.commit()


def test_keyset_pages_equal_counted_pages_both_ways(tree, make_uow, session_factory):
    _many_members(make_uow, tree, 23)
    actor = tree.actors["region_a"]
    with session_factory() as s:
        everyone, total = services.list_members(s, actor, tree.region_a, per_page=1000)
        assert total == len(everyone) == 26
        names = [m.sort_name for m in everyone]
        assert len(set(names)) < len(names), "the test needs namesakes (equal sort keys)"
        counted = [services.list_members(s, actor, tree.region_a, page=p, per_page=5)[0] for p in range(1, 7)]
        forward, rows = [], services.list_members(s, actor, tree.region_a, per_page=5)[0]
        while rows:
            forward.append(rows)
            rows = services.list_members(s, actor, tree.region_a, per_page=5, after=rows[-1].id)[0]
        assert [[m.id for m in page] for page in forward] == [[m.id for m in page] for page in counted]
        backward, rows = [], forward[-1]
        while rows:
            backward.insert(0, rows)
            rows = services.list_members(s, actor, tree.region_a, per_page=5, before=rows[0].id)[0]
        assert [[m.id for m in page] for page in backward] == [[m.id for m in page] for page in counted]
        # A search pages the same way.
        found = services.list_members(s, actor, tree.region_a, query="ключ", per_page=4)
        second = services.list_members(s, actor, tree.region_a, query="ключ", per_page=4, after=found[0][-1].id)
        assert found[1] == second[1] == 23
        assert [m.id for m in second[0]] == [m.id for m in everyone if m.sort_name.startswith("ключ")][4:8]


def test_a_cursor_of_someone_else_shows_only_ones_own(tree, make_uow, session_factory):
    """A foreign id as the cursor only positions the page: every row is still in the user's scope."""
    with session_factory() as s:
        rows, total = services.list_members(s, tree.actors["chair_a"], tree.primary_a, per_page=5,
                                            after=tree.members["sidorova"])
        assert {r.organisation_id for r in rows} <= {tree.primary_a}
        rows, _ = services.list_members(s, tree.actors["chair_a"], tree.primary_a, per_page=5, after=999_999_999)
        assert [r.person.surname for r in rows] == ["Иванов", "Щёлокова"]  # unknown cursor: the first page


def test_web_pager_walks_the_list_by_id_and_back(tree, make_uow, web):
    _many_members(make_uow, tree, 120)
    web.login("region_a")
    seen, path, pages = [], f"/registry/org/{tree.primary_a2}/members", 0
    while path:
        html = web.get(path).get_data(as_text=True)
        pages += 1
        seen += re.findall(r'/member/(\d+)"', html)
        following = re.search(r'<a href="(\?page=\d+(?:&amp;|&)after=\d+)">', html)
        path = f"/registry/org/{tree.primary_a2}/members" + following.group(1).replace("&amp;", "&") if following else None
        if path:
            assert "Ключ" not in path and "%" not in path  # only a page number and an id travel
    assert pages == 3 and len(seen) == len(set(seen)) == 121
    last = web.get(f"/registry/org/{tree.primary_a2}/members?page=3&after=0").get_data(as_text=True)
    back = re.search(r'<a href="(\?page=2(?:&amp;|&)before=\d+)">', web.get(
        f"/registry/org/{tree.primary_a2}/members?page=3&after={seen[99]}").get_data(as_text=True))
    assert back, "the last page links back by its first row"
    html = web.get(f"/registry/org/{tree.primary_a2}/members" + back.group(1).replace("&amp;", "&")).get_data(as_text=True)
    assert re.findall(r'/member/(\d+)"', html) == seen[50:100]
    assert "Страница 2 из 3" in html and last
