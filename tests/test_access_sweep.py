"""Walk every route of the web app as the chairperson of one primary organisation and try every
other organisation's and member's id: all must answer 404, exactly as for ids that do not exist,
and nothing may change. Own objects must work, so the sweep cannot pass by accident."""

from datetime import date

from sqlalchemy import func, select

from unioncard.clock import today as union_today
from unioncard.registry.models import AuditEntry, Consent, Membership
from tests.test_web import text_of

KNOWN_PARAMS = {"organisation_id", "membership_id", "card_id", "batch_id", "fmt", "code", "filename", "token",
                "event_id", "station_id", "session_id", "key_id", "user_id", "person_id", "year", "position_id",
                "section", "mailing_id", "application_id", "decision", "primary_id", "job_id"}
# Pages a chairperson may not use at all (they answer 404 even for their own organisation).
PERMISSION_GATED = {"cards.approvals", "users.chairperson"}
FOREIGN_NAMES = ("Петров Пётр", "Сидорова", "ППО школы № 2", "ППО Чувашского")


def routes(app):
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        yield rule


def fill(rule, values):
    path = rule.rule
    for name, value in values.items():
        path = path.replace(f"<int:{name}>", str(value)).replace(f"<{name}>", str(value))
    return path.replace("<any(pdf, xlsx):fmt>", "pdf")


def test_every_route_param_is_covered(app):
    for rule in routes(app):
        assert set(rule.arguments) <= KNOWN_PARAMS, f"{rule.rule}: add its parameters to the access sweep"


def _cards(tree, make_uow, system):
    """One card in the chairperson's organisation and one in each of two others."""
    from unioncard.issuer import services as cards
    from unioncard.registry import services as registry

    ids = {}
    with make_uow() as uow:
        for key in ("ivanov", "petrov", "sidorova"):
            registry.give_consent(uow, system, tree.members[key], "processing", date(2020, 1, 1), "paper")
            ids[key] = cards.order_cards(uow, system, [tree.members[key]]).ordered[0].id
        uow.commit()
    return ids


def test_chairperson_cannot_reach_other_organisations_or_members(web, tree, session_factory, make_uow, system):
    card_ids = _cards(tree, make_uow, system)
    web.login("chair_a")
    own = {"organisation_id": tree.primary_a, "membership_id": tree.members["ivanov"], "card_id": card_ids["ivanov"],
           "year": union_today().year, "position_id": 1}
    foreign_orgs = [tree.central, tree.region_a, tree.territorial_a, tree.primary_a2, tree.region_b, tree.primary_b,
                    987654]
    foreign_members = [tree.members["petrov"], tree.members["sidorova"], 987654]
    with session_factory() as s:
        audit_before = s.scalar(select(func.count()).select_from(AuditEntry).where(
            AuditEntry.action.notin_(["login.success"])))
    token = web.token("/")
    checked = 0
    for rule in routes(app := web.app):
        params = set(rule.arguments)
        if not params & {"organisation_id", "membership_id", "card_id"}:
            continue
        attempts = []
        if "organisation_id" in params:
            attempts += [{**own, "organisation_id": o} for o in foreign_orgs]
        if "membership_id" in params:
            attempts += [{**own, "membership_id": m} for m in foreign_members]
        if "card_id" in params:
            attempts += [{**own, "card_id": c} for c in (card_ids["petrov"], card_ids["sidorova"], 987654)]
        for values in attempts:
            path = fill(rule, values)
            for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
                if method == "GET":
                    response = web.client.get(path)
                else:
                    response = web.client.post(path, data={
                        "csrf_token": token, "section_key": "processing", "processing-section": "processing",
                        "processing-action": "give", "processing-on": "2020-01-01", "leave_date": "2024-01-01",
                        "reason": "own_wish", "token": "x", "surname": "Взломов", "given_name": "Иван",
                        "birth_date": "1980-01-01", "category": "working", "join_date": "2020-01-01",
                        "action": "cancel", "membership_id": str(tree.members["petrov"]), "card_id": str(card_ids["petrov"]),
                        "numbers": "9643012300000014", "outcome": "issued"})
                assert response.status_code == 404, f"{method} {path} answered {response.status_code}"
                body = text_of(response)
                assert not any(name in body for name in FOREIGN_NAMES), f"{method} {path} leaked data"
                checked += 1
    assert checked > 50
    # Own objects answer normally: the sweep is not vacuous.
    for rule in routes(app):
        if set(rule.arguments) & {"organisation_id", "membership_id", "card_id"} and "GET" in rule.methods \
                and rule.endpoint not in PERMISSION_GATED:
            assert web.client.get(fill(rule, own)).status_code in (200, 302), rule.rule
    with session_factory() as s:
        assert s.get(Membership, tree.members["petrov"]).is_active
        assert s.get(Membership, tree.members["sidorova"]).is_active
        assert s.scalar(select(func.count()).select_from(Consent)) == 3  # the ones _cards gave
        from unioncard.issuer.models import Card

        assert {s.get(Card, card_ids[k]).status for k in ("petrov", "sidorova")} == {"ordered"}
        views = s.scalars(select(AuditEntry).where(AuditEntry.action == "member.view")).all()
        assert {v.object_id for v in views} <= {str(tree.members["ivanov"]), str(tree.members["shchyolokova"])}
        audit_after = s.scalar(select(func.count()).select_from(AuditEntry).where(
            AuditEntry.action.notin_(["login.success"])))
    # Only own-object views and the export were audited; no write reached another organisation.
    assert audit_after - audit_before == len([v for v in views]) + 1


def test_find_by_code_does_not_reveal_foreign_organisations(web, tree):
    web.login("chair_a")
    for code in ("23-01-002", "21-001", "23", "0", "no-such"):
        page = web.get("/registry/find", query_string={"code": code}, follow_redirects=True)
        assert page.request.path == f"/registry/org/{tree.primary_a}"
        assert "нет" in text_of(page)  # «Организации с кодом … нет», same as for an unknown code


def test_member_lists_show_only_own_members(web, tree):
    web.login("chair_a")
    page = text_of(web.get(f"/registry/org/{tree.primary_a}/members"))
    assert "Иванов" in page and not any(name in page for name in FOREIGN_NAMES[:2])


def test_regional_staff_reach_their_region_only(web, tree):
    web.login("region_a")
    assert web.get(f"/registry/member/{tree.members['petrov']}").status_code == 200
    assert web.get(f"/registry/member/{tree.members['sidorova']}").status_code == 404
    assert web.get(f"/registry/org/{tree.region_b}/members").status_code == 404
    assert web.get(f"/registry/org/{tree.central}").status_code == 404


def test_batches_answer_404_outside_the_bureau_and_the_region(web, tree, make_uow, session_factory):
    """A batch for region 23: another region, a chairperson and an unknown id all get 404 on
    every batch route; the bureau and (once shipped) region 23 get the pages."""
    from tests.support import approved_cards
    from unioncard.personalization import services as bureau
    from unioncard.personalization.models import Batch

    approved_cards(make_uow, tree, 2)
    with make_uow() as uow:
        batch = bureau.create_batches(uow, tree.actors["bureau"])[0]
        uow.commit()
    batch_routes = [rule for rule in routes(web.app) if "batch_id" in rule.arguments]
    assert len(batch_routes) >= 7

    def sweep(login, batch_id, expected_get):
        web.login(login)
        token = web.token("/")
        for rule in batch_routes:
            path = fill(rule, {"batch_id": batch_id})
            for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
                response = web.client.get(path) if method == "GET" else web.client.post(
                    path, data={"csrf_token": token, "organisation_id": str(tree.primary_a), "number": "1",
                                "reason": "x"})
                wanted = expected_get if method == "GET" else 404
                if wanted == 404:
                    assert response.status_code == 404, f"{login} {method} {path}: {response.status_code}"
        web.client.post("/logout", data={"csrf_token": token})

    for login in ("chair_a", "region_b", "region_a"):  # region_a: not shipped yet
        sweep(login, batch.id, 404)
    sweep("bureau", 987654, 404)
    web.login("bureau")
    for rule in batch_routes:
        if "GET" in rule.methods:
            assert web.client.get(fill(rule, {"batch_id": batch.id})).status_code == 200, rule.rule
    with session_factory() as s:
        assert s.get(Batch, batch.id).status == "open"


def test_events_answer_404_outside_their_organiser(web, tree, make_uow, session_factory):
    """An event of region 21 with one desk: region 23's staff, a chairperson and an unknown id
    get 404 on every event route, GET and POST, and nothing changes; region 21 gets the pages."""
    from tests.station_support import enrol
    from unioncard.checkin import services as checkin
    from unioncard.checkin.models import Station
    from unioncard.registry.actor import Actor

    with make_uow() as uow:
        event = checkin.create_event(uow, Actor.system("test"), code="R21", name="Конференция Чувашской организации",
                                     kind="conference", organisation_id=tree.region_b, starts_on=date(2026, 12, 1),
                                     ends_on=date(2026, 12, 1), venue="Чебоксары", admission="members")
        session_id = checkin.add_session(uow, Actor.system("test"), event.id, day=date(2026, 12, 1),
                                         name="Пленарное заседание").id
        uow.commit()
        event_id = event.id
    station_id, _token = enrol(make_uow, event_id, "Стол 1")
    event_rules = [r for r in routes(web.app) if "event_id" in r.arguments]
    assert len(event_rules) >= 8
    from tests.support import WebClient

    for login in ("region_a", "chair_a"):
        web = WebClient(web.app)
        web.login(login)
        token = web.token("/")
        for rule in event_rules:
            for values in ({"event_id": event_id, "station_id": station_id, "session_id": session_id},
                           {"event_id": 987654, "station_id": 1, "session_id": 1}):
                path = fill(rule, values)
                for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
                    response = web.client.get(path) if method == "GET" else web.client.post(
                        path, data={"csrf_token": token, "desk": "Чужой стол", "org_code": "21-001", "role": "guest",
                                    "name": "Чужое заседание", "day": "2026-12-01", "reason": "чужая причина"})
                    assert response.status_code == 404, f"{login}: {method} {path} answered {response.status_code}"
                    assert "Чувашской" not in text_of(response)
    with session_factory() as s:
        assert s.get(Station, station_id).revoked_at is None
        assert len(checkin.stations(s, event_id)) == 1 and checkin.roster_size(s, event_id) == 0
        assert [x.name for x in checkin.event_sessions(s, event_id)] == ["Пленарное заседание"]
    web = WebClient(web.app)
    web.login("region_b")
    for rule in event_rules:
        if "GET" in rule.methods and not rule.rule.endswith("bundle.bin"):
            assert web.client.get(fill(rule, {"event_id": event_id, "station_id": station_id,
                                              "session_id": session_id})).status_code == 200, \
                rule.rule


def test_organisations_are_found_by_part_of_the_name_within_scope(web, tree):
    web.login("region_a")
    one = web.get("/registry/find", query_string={"code": "школы № 1"}, follow_redirects=True)
    assert one.request.path == f"/registry/org/{tree.primary_a}"
    many = web.get("/registry/find", query_string={"code": "ШКОЛЫ"}, follow_redirects=True)
    text = text_of(many)
    assert "ППО школы № 1 г. Сочи" in text and "ППО школы № 2 г. Сочи" in text
    # Another region's organisations are not found by name either.
    foreign = web.get("/registry/find", query_string={"code": "Чувашского"}, follow_redirects=True)
    assert "Чувашского госуниверситета" not in text_of(foreign).replace("«Чувашского»", "")
    assert foreign.request.path == f"/registry/org/{tree.region_a}"
