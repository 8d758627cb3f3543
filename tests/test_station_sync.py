"""Desks and the server over real HTTP (the app on a socket): enrolment, the first bundle, offline
check-ins at eight desks then sync (earliest wins, duplicates flagged, an upload sent twice
changes nothing), a desk whose clock is hours off, a revoked desk token, and the staff pages."""

from __future__ import annotations

import io
import random
from datetime import datetime, timedelta, timezone

import pytest
from openpyxl import Workbook, load_workbook
from sqlalchemy import func, select

from tests.station_support import enrol, export_trust, issued_cards, make_event
from tests.support import union_keys
from unioncard.checkin.models import CheckIn
from unioncard.reader_station import sync
from unioncard.reader_station.domain import Scan, Source
from unioncard.reader_station.station import Station


class Clock:
    """A desk's own clock, which the test sets (a laptop's clock may be hours off)."""

    def __init__(self, offset=timedelta(0)):
        self.offset = offset
        self.fixed: datetime | None = None

    def __call__(self) -> datetime:
        return self.fixed if self.fixed is not None else datetime.now(timezone.utc) + self.offset


@pytest.fixture
def served(app, live_server, make_uow, tree, tmp_path):
    stores = union_keys(tmp_path)
    export_trust(make_uow, stores)
    app.extensions["unioncard"]._signer = stores.operational
    return live_server, stores


def _desk(tmp_path, make_uow, event_id, server, name, clock=None) -> Station:
    _station_id, token = enrol(make_uow, event_id, name)
    station = Station(tmp_path / name, clock=clock or Clock())
    sync.enrol(station, server, token)
    return station


def _live(session_factory, event_id):
    with session_factory() as s:
        rows = s.execute(select(CheckIn.number, CheckIn.duplicate, CheckIn.undone).where(
            CheckIn.event_id == event_id, CheckIn.kind == "checkin")).all()
    return rows


def test_eight_desks_offline_then_sync_without_double_entry(served, make_uow, tree, session_factory, tmp_path):
    server, stores = served
    held = issued_cards(make_uow, tree, 120, stores.operational)
    event_id = make_event(make_uow, tree, stores, roster=[c.number for c in held])
    desks = [_desk(tmp_path, make_uow, event_id, server, f"Стол {i + 1}") for i in range(8)]
    assert all(d.bundle is not None and d.bundle.event.id == event_id for d in desks)
    rng = random.Random(5)
    scanned: dict[str, int] = {}
    undone_number = None
    # Offline: each desk checks in 40 of the 120 members; many reach two or three desks.
    for desk in desks:
        for card in rng.sample(held, 40):
            shown = desk.scan(Scan(Source.WEDGE, text=card.credential))
            assert shown["code"] in ("admitted", "already_checked_in")
            if shown["code"] == "admitted":
                scanned[card.number] = scanned.get(card.number, 0) + 1
    # A mistaken check-in undone at desk 1 before any sync.
    mistaken = desks[0].journal.recent(1)[0]
    desks[0].undo(mistaken["nonce"])
    scanned[mistaken["number"]] -= 1
    undone_number = mistaken["number"]
    # All eight at once, as desks coming back on line do.
    import threading

    failures = []

    def push(desk):
        try:
            sync.sync_once(desk)
        except Exception as exc:  # noqa: BLE001 - reported below
            failures.append(exc)

    threads = [threading.Thread(target=push, args=(desk,)) for desk in desks]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not failures, failures
    rows = _live(session_factory, event_id)
    live = [r for r in rows if not r.undone]
    primaries = [r.number for r in live if not r.duplicate]
    assert len(primaries) == len(set(primaries)) == sum(1 for n, c in scanned.items() if c > 0)
    assert sum(1 for r in live if r.duplicate) == sum(c - 1 for c in scanned.values() if c > 1)
    assert any(r.number == undone_number and r.undone for r in rows)
    before = sorted(rows)
    # The same upload again (a desk that lost the server's answer): nothing changes.
    desks[3].journal._db.execute("UPDATE entry SET synced = 0")
    result = sync.sync_once(desks[3])
    assert result["pushed"] > 0 and sorted(_live(session_factory, event_id)) == before
    # After a second round every desk knows who came in elsewhere.
    for desk in desks:
        sync.sync_once(desk)
    somebody = next(n for n, c in scanned.items() if c == 1)
    for desk in desks:
        card = next(c for c in held if c.number == somebody)
        assert desk.scan(Scan(Source.WEDGE, text=card.credential))["code"] == "already_checked_in"


def test_earliest_check_in_wins_whatever_the_upload_order(served, make_uow, tree, session_factory, tmp_path):
    server, stores = served
    held = issued_cards(make_uow, tree, 2, stores.operational)
    event_id = make_event(make_uow, tree, stores, roster=[c.number for c in held])
    early_clock, late_clock = Clock(), Clock()
    early = _desk(tmp_path, make_uow, event_id, server, "Стол A", early_clock)
    late = _desk(tmp_path, make_uow, event_id, server, "Стол B", late_clock)
    now = datetime.now(timezone.utc)
    early_clock.fixed, late_clock.fixed = now + timedelta(minutes=1), now + timedelta(minutes=5)
    early.scan(Scan(Source.WEDGE, text=held[0].credential))
    late.scan(Scan(Source.WEDGE, text=held[0].credential))
    sync.sync_once(late)  # the later check-in reaches the server first
    assert [r.duplicate for r in _live(session_factory, event_id)] == [False]
    sync.sync_once(early)
    with session_factory() as s:
        rows = s.execute(select(CheckIn.effective_at, CheckIn.duplicate).where(CheckIn.event_id == event_id)
                         .order_by(CheckIn.effective_at)).all()
    assert [r.duplicate for r in rows] == [False, True]


def test_a_desk_clock_hours_off_is_corrected(served, make_uow, tree, session_factory, tmp_path):
    server, stores = served
    held = issued_cards(make_uow, tree, 1, stores.operational)
    event_id = make_event(make_uow, tree, stores, roster=[held[0].number])
    behind = Clock(offset=-timedelta(hours=3))
    # Without the server's time the bundle looks issued 3 hours in the future and is refused.
    lone = Station(tmp_path / "lone", clock=behind)
    from tests.station_support import publish, root_public_key

    lone.pin(root_public_key=root_public_key(stores), station_id="x", desk="x", event_id=event_id, server=None,
             token=None)
    with pytest.raises(Exception) as info:
        lone.accept_bundle(publish(make_uow, event_id, stores))
    assert info.value.code.endswith("from_future")
    # Enrolled, the desk learns the offset from the server and works; the screen says the clock is off.
    desk = _desk(tmp_path, make_uow, event_id, server, "Стол C", behind)
    assert desk.bundle is not None
    assert "часы" in desk.status()["clock_warning"].lower()
    desk.scan(Scan(Source.WEDGE, text=held[0].credential))
    sync.sync_once(desk)
    with session_factory() as s:
        effective = s.scalar(select(CheckIn.effective_at).where(CheckIn.event_id == event_id))
    assert abs(effective - datetime.now(timezone.utc).replace(tzinfo=None)) < timedelta(minutes=1)


def test_a_revoked_desk_is_refused_and_keeps_its_entries(served, make_uow, tree, session_factory, tmp_path, web):
    server, stores = served
    held = issued_cards(make_uow, tree, 1, stores.operational)
    event_id = make_event(make_uow, tree, stores, roster=[held[0].number])
    desk = _desk(tmp_path, make_uow, event_id, server, "Стол D")
    desk.scan(Scan(Source.WEDGE, text=held[0].credential))
    from unioncard.checkin import services as checkin
    from unioncard.registry.actor import Actor

    with make_uow() as uow:
        station_id = checkin.stations(uow.session, event_id)[0].id
        checkin.revoke_station(uow, Actor.system("test"), event_id, station_id)
        uow.commit()
    syncer = sync.Syncer(desk)
    syncer.sync()
    assert desk.sync_state["state"] == "refused" and "отозван" in desk.sync_state["message"]
    assert desk.journal.counts()["unsynced"] == 1
    with session_factory() as s:
        assert s.scalar(select(func.count()).select_from(CheckIn)) == 0


def test_staff_pages_roster_desks_counts_and_export(served, make_uow, tree, session_factory, tmp_path, web):
    server, stores = served
    held = issued_cards(make_uow, tree, 3, stores.operational)
    web.login("admin")
    token = web.token("/events/")
    response = web.post("/events/", {"csrf_token": token, "name": "Пленум", "code": "PL-1", "kind": "conference",
                                     "starts_on": "2026-12-01", "ends_on": "2026-12-02", "venue": "Краснодар",
                                     "admission": "roster", "organisation_id": str(tree.central)})
    assert response.status_code == 302
    event_id = int(response.headers["Location"].rstrip("/").split("/")[-1])
    book = Workbook()
    sheet = book.active
    sheet.append(["Номер билета", "Роль"])
    sheet.append([held[0].number, "делегат"])
    sheet.append([held[1].number, "гость"])
    sheet.append(["1234", "делегат"])
    sheet.append([held[2].number, "министр"])
    out = io.BytesIO()
    book.save(out)
    page = f"/events/{event_id}"
    response = web.post(f"{page}/roster", {"csrf_token": web.token(page),
                                           "file": (io.BytesIO(out.getvalue()), "roster.xlsx")},
                        content_type="multipart/form-data", follow_redirects=True)
    text = response.get_data(as_text=True)
    # A list with errors changes nothing (all or nothing) and names every bad row.
    assert "ничего не изменено" in text and "Строка 4" in text and "Строка 5" in text
    with session_factory() as s:
        from unioncard.checkin import services as checkin_services

        assert checkin_services.roster_size(s, event_id) == 0
    book = Workbook()
    sheet = book.active
    sheet.append(["Номер билета", "Роль"])
    sheet.append([held[0].number, "делегат"])
    sheet.append([held[1].number, "гость"])
    out = io.BytesIO()
    book.save(out)
    response = web.post(f"{page}/roster", {"csrf_token": web.token(page),
                                           "file": (io.BytesIO(out.getvalue()), "roster.xlsx")},
                        content_type="multipart/form-data", follow_redirects=True)
    assert "Добавлены в список 2 человека" in response.get_data(as_text=True)
    response = web.post(f"{page}/desks", {"csrf_token": web.token(page), "desk": "Стол 1"})
    desk_token = response.get_data(as_text=True).split("--token ")[1].split("<")[0].strip()
    desk = Station(tmp_path / "web-desk")
    sync.enrol(desk, server, desk_token)
    desk.scan(Scan(Source.WEDGE, text=held[0].credential))
    other = _desk(tmp_path, make_uow, event_id, server, "Стол 2")
    other.scan(Scan(Source.WEDGE, text=held[0].credential))
    sync.sync_once(desk)
    sync.sync_once(other)
    live = web.get(f"{page}/live.json").get_json()
    assert (live["arrived"], live["expected"], live["duplicates"]) == (1, 2, 1)
    assert ["delegate", 1, 1] in live["by_role"] and ["guest", 0, 1] in live["by_role"]
    assert "Дубли" in web.get(page).get_data(as_text=True)
    duplicates = web.get(f"{page}/duplicates").get_data(as_text=True)
    assert "Делегатова" in duplicates and "повтор" in duplicates
    sheet = load_workbook(io.BytesIO(web.get(f"{page}/checkins.xlsx").data)).active
    rows = list(sheet.iter_rows(values_only=True))
    assert rows[0][0] == "Номер карты" and len(rows) == 3
    status = rows[0].index("Состояние")
    assert sorted(r[status] for r in rows[1:]) == ["отмечен", "повтор"]
    # Another region's staff do not see the event at all.
    from tests.support import WebClient

    outsider = WebClient(web.app)
    outsider.login("region_b")
    assert outsider.get(page).status_code == 404
