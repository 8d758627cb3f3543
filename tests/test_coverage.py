"""The coverage report (Table 3): demo data built from the union's own figures come back out of
the report for 19.05.2020; dates before any card and after a card is blocked; screen and Excel;
a region sees only itself."""

from __future__ import annotations

import io
from datetime import date

from openpyxl import load_workbook
from sqlalchemy import select

from unioncard import db
from unioncard.clock import today as union_today
from unioncard.issuer import coverage as cov
from unioncard.issuer import services as cards
from unioncard.issuer.domain import CardStatus
from unioncard.issuer.models import Card
from unioncard.registry import demo
from unioncard.registry import services as registry
from unioncard.registry.actor import Actor

SCALE = 0.02


def expected(scale):
    rows = {}
    for figures in demo.coverage_figures():
        members = max(1, round(figures.members * scale))
        plastic = min(members, round(figures.plastic_cards * scale))
        virtual = min(members - plastic, round(figures.virtual_cards * scale))
        rows[demo.full_region_name(figures.name)] = (members, plastic, virtual, plastic + virtual)
    return rows


def test_demo_figures_come_back_out_of_the_report(engine, session_factory, make_uow):
    demo.generate(engine, scale=SCALE)
    admin = Actor.system("test")
    with session_factory() as s:
        rows, totals = cov.coverage(s, admin, date(2020, 5, 19))
    got = {r.name: (r.members, r.plastic, r.virtual, r.with_card) for r in rows}
    assert got == expected(SCALE)
    assert [r.percent for r in rows] == sorted((r.percent for r in rows), reverse=True)
    assert totals.members == sum(v[0] for v in got.values()) and totals.with_card == sum(v[3] for v in got.values())
    chuvash = next(r for r in rows if r.name.startswith("Чувашская"))
    assert chuvash.percent == round(100 * chuvash.with_card / chuvash.members, 1)
    # Before the first card was handed out: members, no cards.
    with session_factory() as s:
        early, early_totals = cov.coverage(s, admin, date(2019, 8, 31))
    assert early_totals.plastic == early_totals.virtual == 0 and early_totals.members > 0
    # A card reported lost and blocked today no longer counts today, but still does on 19.05.2020.
    with make_uow() as uow:
        card = uow.session.scalar(select(Card).where(Card.kind == "plastic").order_by(Card.id).limit(1))
        rows_changed = cards.transition_many(uow, admin, [card], CardStatus.LOST)
        cards.transition_many(uow, admin, rows_changed, CardStatus.BLOCKED)
        uow.commit()
    with session_factory() as s:
        _, today_totals = cov.coverage(s, admin, union_today())
        _, then_totals = cov.coverage(s, admin, date(2020, 5, 19))
    assert today_totals.plastic == totals.plastic - 1 and then_totals.plastic == totals.plastic


def test_coverage_page_and_excel(engine, database_url, tmp_path):
    from tests.support import PASSWORD, WebClient
    from unioncard.checkin_web import create_app
    from unioncard.config import Settings
    from unioncard.registry.models import Organisation

    demo.generate(engine, scale=0.005)
    sessions = db.make_session_factory(engine)
    with db.UnitOfWork(sessions) as uow:
        central = uow.session.scalar(select(Organisation).where(Organisation.code == "0"))
        chuvash = uow.session.scalar(select(Organisation).where(Organisation.code == "21"))
        registry.create_user(uow, Actor.system("test"), login="boss", password=PASSWORD, full_name="Председатель",
                             role="admin", organisation_id=central.id)
        registry.create_user(uow, Actor.system("test"), login="cheb", password=PASSWORD, full_name="Чебоксары",
                             role="regional_staff", organisation_id=chuvash.id)
        uow.commit()
    app = create_app(Settings(instance_dir=tmp_path / "i", database_url=database_url, secret_key="t"))
    web = WebClient(app)
    web.login("boss")
    page = web.get("/reports/coverage?on=2020-05-19").get_data(as_text=True)
    assert "Охват" in page and "<strong>100</strong>" in page and "Сахалинская областная организация Профсоюза" in page and "Итого" in page
    sheet = load_workbook(io.BytesIO(web.get("/reports/coverage.xlsx?on=2020-05-19").data)).active
    rows = list(sheet.iter_rows(values_only=True))
    assert rows[1][1] == "Региональная организация" and rows[-1][1] == "Итого"
    assert len(rows) == 2 + 37 + 1
    assert rows[-1][2] == sum(r[2] for r in rows[2:-1])
    assert "дату" in web.get("/reports/coverage?on=19-05-2020").get_data(as_text=True)
    # The Russian way of writing the date, as the error message asks for it, is taken too.
    typed = web.get("/reports/coverage?on=19.05.2020").get_data(as_text=True)
    assert "Укажите дату" not in typed and 'value="2020-05-19"' in typed
    assert typed.count("<strong>100</strong>") == page.count("<strong>100</strong>")
    region = WebClient(app)
    region.login("cheb")
    only = load_workbook(io.BytesIO(region.get("/reports/coverage.xlsx?on=2020-05-19").data)).active
    names = [r[1] for r in only.iter_rows(values_only=True)][2:-1]
    assert names == ["Чувашская республиканская организация Профсоюза"]
    app.extensions["unioncard"].engine.dispose()


def test_a_holder_of_two_cards_counts_once_and_a_past_day_agrees_with_today(engine, session_factory):
    """The report counts in the database: a member holding a plastic and a virtual card, issued
    in two primary organisations of one region, is one member with a card there (two cards); the
    day's figures from the card history equal today's from the cards' statuses; a chairperson's
    one row is their organisation's subtree."""
    from datetime import datetime, timedelta

    from unioncard.issuer.models import CardEvent
    from unioncard.registry import domain as d
    from unioncard.registry.models import Organisation

    demo.generate(engine, scale=0.005)
    admin = Actor.system("test")
    with session_factory() as s:
        primaries = [o for o in s.scalars(select(Organisation).where(Organisation.level == d.Level.PRIMARY))]
        paths = ["/".join(o.path.split("/")[:3]) + "/" for o in primaries]
        region_path = max(set(paths), key=paths.count)
        holder = s.scalar(select(Card).where(Card.kind == "plastic", Card.status == "issued",
                                             Card.org_path.startswith(region_path)).order_by(Card.id).limit(1))
        other = s.scalar(select(Organisation).where(Organisation.level == d.Level.PRIMARY,
                                                    Organisation.path.startswith(region_path),
                                                    Organisation.id != holder.organisation_id).limit(1))
        handed = datetime.combine(union_today() - timedelta(days=3), datetime.min.time())
        second = Card(kind="virtual", status="issued", membership_id=holder.membership_id, person_id=holder.person_id,
                      organisation_id=other.id, org_path=other.path, region_code=holder.region_code,
                      ordered_at=handed, status_changed_at=handed)
        s.add(second)
        s.flush()
        s.add(CardEvent(card_id=second.id, from_status="approved", to_status="issued", at=handed, actor="test"))
        s.commit()
        region_id = int(region_path.split("/")[2])
    with session_factory() as s:
        before, _ = cov.coverage(s, admin, union_today() - timedelta(days=4))
        yesterday, yesterday_totals = cov.coverage(s, admin, union_today() - timedelta(days=1))
        today, today_totals = cov.coverage(s, admin, union_today())
    assert [(r.name, r.members, r.plastic, r.virtual, r.with_card) for r in yesterday] == \
        [(r.name, r.members, r.plastic, r.virtual, r.with_card) for r in today]
    row_before = next(r for r in before if r.organisation_id == region_id)
    row_after = next(r for r in today if r.organisation_id == region_id)
    assert (row_after.virtual, row_after.with_card) == (row_before.virtual + 1, row_before.with_card)
    with session_factory() as s:
        # Counted the plain way: every issued card of the region, holders as a set.
        region_cards = s.execute(select(Card.kind, Card.person_id).where(
            Card.status == "issued", Card.org_path.startswith(region_path))).all()
    assert row_after.plastic == sum(1 for kind, _ in region_cards if kind == "plastic")
    assert row_after.with_card == len({person for _, person in region_cards})
    chair = Actor(user_id=None, login="chair", role=d.Role.CHAIRPERSON, scope_path=other.path, organisation_id=other.id)
    with session_factory() as s:
        own, own_totals = cov.coverage(s, chair, union_today())
    assert [r.organisation_id for r in own] == [other.id] and own_totals.virtual >= 1
