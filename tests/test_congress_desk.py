"""The congress desk, complete: a delegate found by name offline and checked in by document, days
(green again tomorrow, amber twice today), badges and mandates through CUPS with a queue that
survives a printer that is away, the quorum and the credentials committee's report."""

from __future__ import annotations

import shutil
import subprocess
import time
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from tests.station_support import (block, enrol, export_trust, issued_cards, make_event, publish,
                                   root_public_key)
from tests.support import union_keys
from unioncard.checkin import quorum
from unioncard.checkin import services as checkin
from unioncard.checkin.models import CheckIn, Event
from unioncard.clock import today as union_today
from unioncard.reader_station import bundle as eb
from unioncard.reader_station import sync
from unioncard.reader_station.domain import NAME_SEARCH_MIN, Scan, Source, find_by_name
from unioncard.reader_station.printing import PrintWorker, page_values, render
from unioncard.reader_station.station import OperatorRequired, Station
from unioncard.registry.actor import Actor


class Clock:
    def __init__(self, at: datetime | None = None):
        self.at = at

    def __call__(self) -> datetime:
        return self.at or datetime.now(timezone.utc)


@pytest.fixture
def union(make_uow, tree, tmp_path):
    stores = union_keys(tmp_path)
    export_trust(make_uow, stores)
    return stores


@pytest.fixture
def served(app, live_server, union):
    app.extensions["unioncard"]._signer = union.operational
    return live_server, union


def _delegates(make_uow, tree, stores, count=3, prefix="Ёлкина"):
    return issued_cards(make_uow, tree, count, stores.operational, prefix=prefix)


def test_quorum_rules_parse_or_are_named():
    assert quorum.parse("2/3").needed(100) == 67 and quorum.parse("2/3").needed(99) == 66
    assert quorum.parse(">1/2").needed(100) == 51 and quorum.parse("больше 1/2").needed(7) == 4
    assert quorum.parse("50 %").needed(9) == 5 and quorum.parse("66,7%").needed(3) == 3
    assert quorum.parse("120").needed(500) == 120
    assert quorum.parse("") is None and quorum.parse("  ") is None
    for bad in ("две трети", "3/2", "0/3", "1/0", "150 %", "0", "2/3/4", "x" * 60, "2\x00/3", ">1/1", ">100 %"):
        with pytest.raises(quorum.QuorumRuleInvalid):
            quorum.parse(bad)


def test_an_unparsable_quorum_rule_is_refused_when_the_event_is_saved(make_uow, tree):
    from unioncard.errors import ValidationError

    with make_uow() as uow:
        with pytest.raises(ValidationError) as refused:
            checkin.create_event(uow, Actor.system("test"), code="Q1", name="Съезд", kind="congress",
                                 organisation_id=tree.central, starts_on=union_today(), ends_on=union_today(),
                                 venue="Москва", admission="roster", quorum_rule="две трети")
        assert refused.value.code == "quorum_rule_invalid" and "две трети" in refused.value.render()
        with pytest.raises(ValidationError):
            checkin.create_event(uow, Actor.system("test"), code="Q2", name="Съезд", kind="congress",
                                 organisation_id=tree.central, starts_on=union_today(), ends_on=union_today(),
                                 venue="Москва", admission="roster", badge_modes={"delegate": "sometimes"})


def test_find_by_name_offline_and_check_in_by_document(make_uow, tree, union, tmp_path):
    held = _delegates(make_uow, tree, union, 4)
    others = issued_cards(make_uow, tree, 2, union.operational, prefix="Петрова")
    event_id = make_event(make_uow, tree, union, roster=[c.number for c in held + others])
    block(make_uow, [held[3].id])
    station = Station(tmp_path / "desk")
    station.accept_bundle(publish(make_uow, event_id, union), root_public_key(union))
    bundle = station.bundle
    # ё/е, case, and the part of a double surname: «елкин» finds every «Ёлкина-…».
    found = find_by_name(bundle, "елкин")
    assert found.state == "ok" and len(found.matches) == 4
    assert all(m.name.startswith("Ёлкина") and m.organisation for m in found.matches)
    assert all(m.masked_number.startswith("•••• •••• ••••") and m.masked_number[-4:].isdigit() for m in found.matches)
    assert find_by_name(bundle, "ЁЛКИНА").matches == found.matches
    assert find_by_name(bundle, "ел").state == "too_short" and NAME_SEARCH_MIN == 3
    assert find_by_name(bundle, "Сидоров").matches == ()
    blocked = [m for m in found.matches if m.blocked]
    assert len(blocked) == 1 and blocked[0].masked_number.endswith(held[3].number[-4:])
    # A check-in by document names the person at the desk: refused until they say who they are.
    with pytest.raises(OperatorRequired):
        station.check_in_by_document(found.matches[0].person)
    station.set_operator("Смирнова Ольга")
    person = next(m.person for m in found.matches if not m.blocked)
    shown = station.check_in_by_document(person)
    assert (shown["colour"], shown["code"], shown["source"]) == ("green", "admitted_by_document", "document")
    assert shown["number"].startswith("••••")
    entry = station.journal.entry(shown["nonce"])
    assert (entry["source"], entry["operator"], entry["verdict"]) == ("document", "Смирнова Ольга",
                                                                     "admitted_by_document")
    # Again today, by document or by the card: amber.
    assert station.check_in_by_document(person)["code"] == "already_checked_in"
    card = next(c for c in held if bundle.roster[c.number].person == person)
    assert station.scan(Scan(Source.WEDGE, text=card.credential))["code"] == "already_checked_in"
    # Found by name with a blocked card: red, with the reason.
    refused = station.check_in_by_document(blocked[0].person)
    assert refused["colour"] == "red" and refused["code"] == "revoked" and "заблок" in refused["reason"]
    assert station.check_in_by_document("no-such-person")["code"] == "not_on_roster"
    # An «any member» event carries no names on the desk: nothing to search, and the desk says so.
    open_id = make_event(make_uow, tree, union, admission="members", code="OPEN")
    other = Station(tmp_path / "open-desk")
    other.accept_bundle(publish(make_uow, open_id, union), root_public_key(union))
    assert other.find("елкин") == {"state": "no_list", "more": False, "matches": []}
    assert not other.bundle.roster


def test_a_delegate_of_day_one_is_green_on_day_two(make_uow, tree, union, tmp_path):
    held = _delegates(make_uow, tree, union, 2)
    event_id = make_event(make_uow, tree, union, roster=[c.number for c in held])  # today and tomorrow
    clock = Clock()
    station = Station(tmp_path / "desk", clock=clock)
    station.accept_bundle(publish(make_uow, event_id, union), root_public_key(union))
    offset = timedelta(minutes=station.bundle.event.utc_offset)
    assert station.bundle.event.utc_offset == 180  # the organiser (central) is in Moscow time
    today_noon = datetime.combine(union_today(), datetime.min.time(), tzinfo=timezone.utc).replace(hour=12) - offset
    clock.at = today_noon
    assert station.scan(Scan(Source.WEDGE, text=held[0].credential))["code"] == "admitted"
    clock.at = today_noon + timedelta(hours=5)
    assert station.scan(Scan(Source.WEDGE, text=held[0].credential))["code"] == "already_checked_in"
    clock.at = today_noon + timedelta(days=1)  # noon of day 2 at the venue
    assert station.scan(Scan(Source.WEDGE, text=held[0].credential))["colour"] == "green"
    # Just before and just after the venue's midnight.
    midnight = datetime.combine(union_today() + timedelta(days=1), datetime.min.time(), tzinfo=timezone.utc) - offset
    clock.at = midnight - timedelta(minutes=1)
    assert station.scan(Scan(Source.WEDGE, text=held[1].credential))["code"] == "admitted"
    clock.at = midnight + timedelta(minutes=1)
    assert station.scan(Scan(Source.WEDGE, text=held[1].credential))["code"] == "admitted"


def test_two_desks_by_name_offline_give_one_check_in_and_the_quorum_counts_the_journal(
        served, make_uow, tree, session_factory, tmp_path, web):
    server, stores = served
    held = _delegates(make_uow, tree, stores, 6)
    guests = issued_cards(make_uow, tree, 1, stores.operational, prefix="Гостева")
    event_id = make_event(make_uow, tree, stores, roster=[c.number for c in held])
    with make_uow() as uow:
        checkin.import_roster(uow, Actor.system("test"), event_id, [(2, guests[0].number, "гость")])
        event = uow.session.get(Event, event_id)
        event.quorum_rule = "2/3"
        uow.commit()
    desks = []
    for name in ("Стол 1", "Стол 2"):
        _sid, token = enrol(make_uow, event_id, name)
        desk = Station(tmp_path / name)
        sync.enrol(desk, server, token)
        desk.set_operator(f"Оператор {name}")
        desks.append(desk)
    person = find_by_name(desks[0].bundle, "елкин").matches[0].person
    assert all(d.check_in_by_document(person)["code"] == "admitted_by_document" for d in desks)
    for card in held[1:4]:
        desks[1].scan(Scan(Source.WEDGE, text=card.credential))
    desks[0].scan(Scan(Source.WEDGE, text=guests[0].credential))
    for desk in desks:
        sync.sync_once(desk)
    with session_factory() as s:
        rows = s.execute(select(CheckIn.number, CheckIn.duplicate, CheckIn.operator, CheckIn.source,
                                CheckIn.event_day).where(CheckIn.event_id == event_id,
                                                         CheckIn.kind == "checkin")).all()
    by_document = [r for r in rows if r.source == "document"]
    assert len(by_document) == 2 and sorted(r.duplicate for r in by_document) == [False, True]
    assert {r.operator for r in by_document} == {"Оператор Стол 1", "Оператор Стол 2"}
    assert all(r.event_day == union_today() for r in rows)
    # The quorum: four of six elected delegates present (the guest is not counted), 2/3 of 6 = 4.
    with session_factory() as s:
        event = s.get(Event, event_id)
        status = checkin.quorum_status(s, event, day=union_today())
        from_journal = len({r.number for r in rows if not r.duplicate and r.number in {c.number for c in held}})
    assert (status.elected, status.present, status.needed, status.reached) == (6, from_journal, 4, True)
    assert from_journal == 4
    web.login("admin")
    page = web.client.get(f"/events/{event_id}")
    assert page.status_code == 200
    from tests.test_web import text_of

    text = text_of(page)
    days = text[text.index("По дням"):text.index("Мандатная комиссия")]
    assert "4 / 6" in days and "кворум есть" in days and "нужно 4 по правилу «2/3»" in days, days
    assert "Кворум: нужно 4 по правилу «2/3»" in days
    # The committee's report, now and at a moment before anyone came: reproducible from the journal.
    absent = held[4]
    with make_uow() as uow:
        checkin.record_absence(uow, Actor.system("test"), event_id, absent.person_id, "болезнь")
        uow.commit()
    pdf = web.client.get(f"/events/{event_id}/committee.pdf?day={union_today().isoformat()}")
    assert pdf.status_code == 200 and pdf.data.startswith(b"%PDF")
    text = _pdf_text(pdf.data, tmp_path / "committee.pdf")
    assert "мандатной комиссии" in text and "болезнь" in text and "Ёлкина" in text
    assert "Избрано делегатов" in text or "Избранных делегатов" in text
    with session_factory() as s:
        early = checkin.committee_report(s, Actor.system("test"), event_id, day=union_today(),
                                         at=datetime.now(timezone.utc).replace(tzinfo=None) - timedelta(hours=3))
        now_report = checkin.committee_report(s, Actor.system("test"), event_id, day=union_today())
    assert early.quorum.present == 0 and len(early.absent) == 6
    assert now_report.quorum.present == 4 and {d.person_id for d in now_report.absent} >= {absent.person_id}
    assert sum(e for _c, _n, e, _r in now_report.by_region) == 6
    assert {group for group, _e, _r in now_report.by_age} <= {"young", "older"}
    xlsx = web.client.get(f"/events/{event_id}/committee.xlsx?day=all")
    assert xlsx.status_code == 200
    from io import BytesIO

    from openpyxl import load_workbook

    book = load_workbook(BytesIO(xlsx.data))
    cells = [str(c.value) for sheet in book.worksheets for row in sheet.iter_rows() for c in row if c.value]
    assert "болезнь" in cells and any("Ёлкина" in c for c in cells)
    # Who checked her in by document is in the check-ins export.
    sheet = load_workbook(BytesIO(web.client.get(f"/events/{event_id}/checkins.xlsx").data)).active
    exported = [[str(c.value or "") for c in row] for row in sheet.iter_rows()]
    by_document_rows = [r for r in exported if "по документу, без билета" in r]
    assert len(by_document_rows) == 2 and {r[-1] for r in by_document_rows} == {"Оператор Стол 1", "Оператор Стол 2"}
    summary = book.worksheets[0]
    assert any(c.value == 6 for row in summary.iter_rows() for c in row)  # figures are numbers, not text
    committee = web.client.get(f"/events/{event_id}/committee")
    assert committee.status_code == 200 and 'value="болезнь"' in committee.data.decode()


def _pdf_text(data: bytes, path) -> str:
    path.write_bytes(data)
    return subprocess.run(["pdftotext", "-layout", str(path), "-"], capture_output=True, text=True, check=True).stdout


def _qr_of(pdf_path, tmp_path) -> str:
    subprocess.run(["pdftoppm", "-r", "300", "-png", "-singlefile", str(pdf_path), str(tmp_path / "page")], check=True)
    found = subprocess.run(["zbarimg", "--quiet", "--raw", "-Sdisable", "-Sqrcode.enable", str(tmp_path / "page.png")],
                           capture_output=True, text=True)
    return found.stdout.strip()


def _wait_for(paths, count, seconds=20.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        files = sorted(paths())
        if len(files) >= count:
            return files
        time.sleep(0.1)
    return sorted(paths())


def test_badge_and_mandate_through_cups_and_a_printer_that_is_away(make_uow, tree, union, tmp_path, cups_queue):
    assert shutil.which("pdftotext") and shutil.which("zbarimg"), "poppler-utils and zbar-tools are needed"
    held = _delegates(make_uow, tree, union, 2, prefix="Ёлкина-Салтыкова-Щедрина-Преображенская")
    event_id = make_event(make_uow, tree, union, roster=[c.number for c in held])
    station = Station(tmp_path / "desk")
    station.accept_bundle(publish(make_uow, event_id, union), root_public_key(union))
    station.set_operator("Смирнова")
    assert station.bundle.event.badge_mode("delegate") == "auto"
    # The printer is away (no such queue): the check-in goes through, the prints wait.
    away = PrintWorker(station, "cups:no-such-queue", retry_seconds=0.1)
    station.printer_worker = away
    shown = station.scan(Scan(Source.WEDGE, text=held[0].credential))
    assert shown["code"] == "admitted" and shown["print_mode"] == "auto"
    assert away.work_once() is False
    counts = station.journal.print_counts()
    assert counts["queued"] == 2 and counts["error"] and "no-such-queue" in counts["error"]
    assert station.status()["prints"]["queued"] == 2
    # The printer comes back: the queue is printed, badge and mandate, each once.
    out = cups_queue["out"]
    before = set(out.glob("*.pdf"))
    worker = PrintWorker(station, f"cups:{cups_queue['queue']}", retry_seconds=0.1)
    station.printer_worker = worker
    started = time.monotonic()
    assert worker.work_once() is True
    printed = [p for p in _wait_for(lambda: set(out.glob("*.pdf")) - before, 2)]
    elapsed = time.monotonic() - started
    assert len(printed) == 2, printed
    assert station.journal.print_counts() == {"queued": 0, "printed": 2, "error": None}
    badge = next(p for p in printed if "-badge-" in p.name)
    mandate = next(p for p in printed if "-mandate-" in p.name)
    # What the printer made keeps the digits as text (cups-pdf's conversion drops the Cyrillic, as
    # for cards: test_bureau_devices); the PDF the desk sends keeps the name as text.
    assert held[0].number[-6:] in _pdf_text(mandate.read_bytes(), tmp_path / "copy.pdf")
    entry = station.journal.entry(shown["nonce"])
    sent_badge, _page = render("badge", page_values(entry, station.bundle, "badge"))
    sent_mandate, _page = render("mandate", page_values(entry, station.bundle, "mandate"))
    badge_text = " ".join(_pdf_text(sent_badge, tmp_path / "badge.pdf").split())
    assert "ЁЛКИНА-" in badge_text and "ДЕЛЕГАТ" in badge_text and "съезд" in badge_text.lower(), badge_text
    mandate_text = " ".join(_pdf_text(sent_mandate, tmp_path / "mandate.pdf").split())
    assert "МАНДАТ ДЕЛЕГАТА" in mandate_text and "Анна Сергеевна" in mandate_text, mandate_text
    # The badge's QR re-scans to her card at the desk.
    code = _qr_of(badge, tmp_path)
    assert code == held[0].number
    assert station.scan(Scan(Source.WEDGE, text=code))["code"] == "already_checked_in"
    # A long name shrank and wrapped inside the badge: the page is 90 × 55 mm.
    sizes = subprocess.run(["pdfinfo", str(badge)], capture_output=True, text=True).stdout
    assert "255.12 x 155.9" in sizes or "255.1 x 155.9" in sizes, sizes
    # A reprint needs its reason, and is queued with it.
    from unioncard.errors import ValidationError

    with pytest.raises(ValidationError) as refused:
        station.print_for(shown["nonce"])
    assert refused.value.code == "reprint_reason_required"
    assert station.print_for(shown["nonce"], "бейдж испорчен")["queued"] == 2
    assert worker.work_once() is True
    assert [j["reason"] for j in station.journal.prints(shown["nonce"])][:2] == ["бейдж испорчен"] * 2
    print(f"\nbadge + mandate through CUPS (cups-pdf): {elapsed:.2f} s")


def test_the_kiosk_prints_on_green_and_calls_staff_otherwise(make_uow, tree, union, tmp_path):
    from unioncard.reader_station.app import create_station_app

    held = _delegates(make_uow, tree, union, 4)
    event_id = make_event(make_uow, tree, union, roster=[c.number for c in held[:2]] + [held[3].number])
    block(make_uow, [held[1].id])  # after the list was made: the desk data carry it as blocked
    station = Station(tmp_path / "kiosk")
    station.accept_bundle(publish(make_uow, event_id, union), root_public_key(union))
    app = create_station_app(station, kiosk=True)
    client = app.test_client()
    page = client.get("/")
    token = page.data.decode().split('data-token="')[1].split('"')[0]
    headers = {"X-Station-Token": token}

    def scan(text):
        return client.post("/scan", json={"text": text, "source": "wedge"}, headers=headers).get_json()

    green = scan(held[0].credential)
    assert green["colour"] == "green" and not green["kiosk_call_staff"]
    assert station.journal.print_counts()["queued"] == 2  # badge + mandate, whatever the event's setting
    again = scan(held[0].credential)
    assert again["kiosk_call_staff"] and again["nonce"] is None
    assert scan(held[1].credential)["kiosk_call_staff"]          # blocked
    assert scan(held[2].credential)["kiosk_call_staff"]          # not on the list
    # A typed number, or a badge's QR (the bare number), proves nothing at a kiosk: staff are called.
    typed = scan(held[3].number)
    assert typed["kiosk_call_staff"] and typed["nonce"] is None
    assert station.journal.counts()["here"] == 1 and station.journal.print_counts()["queued"] == 2
    # Another web site pointing its name at this computer (DNS rebinding) gets nothing.
    assert client.get("/", headers={"Host": "attacker.example:8765"}).status_code == 403
    assert client.post("/scan", json={"text": held[3].credential}, headers={**headers, "Host": "evil.test"}
                       ).status_code == 403
    assert client.get("/status", headers={"Host": "evil.test:8765"}).status_code == 403
    assert client.get("/status", headers={"Host": "127.0.0.1:8765"}).status_code == 200
    # No search, no undo, no reprint at the kiosk.
    for path in ("/find", "/document", "/undo", "/print", "/operator", "/bundle"):
        assert client.post(path, json={}, headers=headers).status_code == 404, path
    assert "Самостоятельная" in page.data.decode() or "бейдж" in page.data.decode()


@pytest.mark.browser
def test_desk_finds_a_delegate_by_name_checks_her_in_by_document_and_prints_her_badge(
        make_uow, tree, union, tmp_path, browser, cups_queue):
    """In Chromium: «елкин» finds «Ёлкина», staff check her in by document, her badge comes out of
    cups-pdf (her card's number in its QR), and the page fits a narrow window."""
    import threading

    from playwright.sync_api import expect
    from werkzeug.serving import make_server

    from unioncard.reader_station.app import create_station_app

    held = _delegates(make_uow, tree, union, 1)
    guests = issued_cards(make_uow, tree, 1, union.operational, prefix="Гостева")
    event_id = make_event(make_uow, tree, union, roster=[held[0].number])
    with make_uow() as uow:
        checkin.import_roster(uow, Actor.system("test"), event_id, [(2, guests[0].number, "гость")])
        uow.commit()
    station = Station(tmp_path / "desk")
    station.accept_bundle(publish(make_uow, event_id, union), root_public_key(union))
    worker = PrintWorker(station, f"cups:{cups_queue['queue']}", retry_seconds=0.2)
    station.printer_worker = worker
    worker.start()
    server = make_server("127.0.0.1", 0, create_station_app(station), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    out = cups_queue["out"]
    before = set(out.glob("*.pdf"))
    try:
        page = browser.new_page(viewport={"width": 390, "height": 844})
        page.goto(f"http://127.0.0.1:{server.server_port}/")
        page.fill("#operator", "Смирнова Ольга")
        page.click("#operatorform button")
        # The saved operator hands the focus back to the scan box: wait for that answer, or the
        # letters typed next may land there instead of in the name search.
        expect(page.locator("#scan")).to_be_focused()
        page.fill("#find", "ел")
        expect(page.locator("#findnote")).to_contain_text("3 букв")
        page.fill("#find", "елкин")
        page.wait_for_selector("#found li")
        item = page.locator("#found li").first
        assert "Ёлкина" in item.inner_text() and "••••" in item.inner_text()
        item.locator("button").click()
        page.wait_for_selector("#verdict.green")
        assert page.get_attribute("#verdict", "data-code") == "admitted_by_document"
        assert "без билета" in page.inner_text("#reason")
        width = page.evaluate("() => document.documentElement.scrollWidth")
        assert width <= 390, width
        printed = _wait_for(lambda: set(out.glob("*.pdf")) - before, 2)
        badge = next(p for p in printed if "-badge-" in p.name)
        assert _qr_of(badge, tmp_path) == held[0].number
        # A guest's badge waits for the button (the event's default for guests).
        page.fill("#scan", guests[0].credential)
        page.press("#scan", "Enter")
        page.wait_for_selector("#printbutton")
        page.click("#printbutton")
        printed = _wait_for(lambda: set(out.glob("*.pdf")) - before, 3)
        assert len(printed) == 3  # her badge and mandate, the guest's badge
        entry = station.journal.recent(2)[1]
        assert (entry["source"], entry["verdict"]) == ("document", "admitted_by_document")
        # The same desk becomes the plenary's entrance (the session came with newer desk data).
        with make_uow() as uow:
            checkin.add_session(uow, Actor.system("test"), event_id, day=union_today(), name="Пленарное заседание")
            uow.commit()
        station.accept_bundle(publish(make_uow, event_id, union))
        page.reload()
        page.select_option("#mode", label=f"{union_today():%d.%m} · Пленарное заседание")
        page.click("#modeform button")
        expect(page.locator("#modeinfo")).to_contain_text("Пленарное заседание")
        page.fill("#scan", held[0].credential)
        page.press("#scan", "Enter")
        expect(page.locator("#verdict")).to_have_attribute("data-code", "session_in")
        expect(page.locator("#modeinfo")).to_contain_text("в зале 1")
        assert page.evaluate("() => document.documentElement.scrollWidth") <= 390
        page.screenshot(path=str(tmp_path / "desk.png"), full_page=True)
    finally:
        worker.stop()
        server.shutdown()
        thread.join(5)


def test_every_desk_page_action_needs_the_page_token_and_bad_input_is_named(make_uow, tree, union, tmp_path):
    """The desk's own routes: another web site in the same browser cannot post to them, and what
    they take is bounded (an unknown check-in, a reprint without reason, an operator of NUL)."""
    from unioncard.reader_station.app import create_station_app

    held = _delegates(make_uow, tree, union, 1)
    event_id = make_event(make_uow, tree, union, roster=[held[0].number])
    station = Station(tmp_path / "desk")
    station.accept_bundle(publish(make_uow, event_id, union), root_public_key(union))
    app = create_station_app(station)
    client = app.test_client()
    token = client.get("/").data.decode().split('data-token="')[1].split('"')[0]
    posts = sorted(rule.rule for rule in app.url_map.iter_rules() if "POST" in rule.methods)
    assert {"/find", "/document", "/operator", "/print", "/scan", "/undo", "/bundle", "/sync"} <= set(posts)
    for path in posts:
        assert client.post(path, json={"text": "елкин", "name": "Чужой", "person": "1"}).status_code == 403, path
    assert station.operator == "" and station.journal.counts()["here"] == 0
    headers = {"X-Station-Token": token}
    refused = client.post("/operator", json={"name": "Смир\x00нова"}, headers=headers)
    assert refused.status_code == 400 and refused.get_json()["error"]["code"] == "operator_required"
    assert client.post("/operator", json={"name": "  Смирнова   Ольга "}, headers=headers).get_json() == {
        "operator": "Смирнова Ольга"}
    missing = client.post("/print", json={"nonce": "f" * 32}, headers=headers)
    assert missing.status_code == 404 and missing.get_json()["error"]["code"] == "checkin_not_found"
    assert client.post("/find", json={"text": "\x00" * 3000}, headers=headers).get_json()["state"] == "too_short"
    assert client.post("/find", json=["not", "an", "object"], headers=headers).get_json()["state"] == "too_short"
    person = client.post("/find", json={"text": "елкин"}, headers=headers).get_json()["matches"][0]["person"]
    shown = client.post("/document", json={"person": person}, headers=headers).get_json()
    assert shown["code"] == "admitted_by_document"
    again = client.post("/print", json={"nonce": shown["nonce"]}, headers=headers)
    assert again.status_code == 400 and again.get_json()["error"]["code"] == "reprint_reason_required"
    # Bodies that are not objects, and fields that are not texts, are named, never a 500.
    assert client.post("/undo", data='"x"', content_type="application/json", headers=headers).status_code == 200
    for junk in (None, ["a"], {"a": 1}, 5):
        answer = client.post("/operator", json={"name": junk}, headers=headers)
        assert answer.status_code == 400 and answer.get_json()["error"]["code"] == "operator_required", junk
    assert station.operator == "Смирнова Ольга"


def test_session_doors_record_who_comes_in_and_leaves(served, make_uow, tree, session_factory, tmp_path, web):
    from tests.station_support import resign
    from unioncard.errors import ValidationError
    from unioncard.reader_station.station import NoSuchSession

    server, stores = served
    held = _delegates(make_uow, tree, stores, 3)
    event_id = make_event(make_uow, tree, stores, roster=[c.number for c in held])
    other_id = make_event(make_uow, tree, stores, code="OTHER")
    system = Actor.system("test")
    with make_uow() as uow:
        plenary = checkin.add_session(uow, system, event_id, day=union_today(), name="Пленарное заседание",
                                      room="Большой зал").id
        section = checkin.add_session(uow, system, event_id, day=union_today() + timedelta(days=1),
                                      name="Секция «Молодёжь»").id
        foreign = checkin.add_session(uow, system, other_id, day=union_today(), name="Чужое заседание").id
        with pytest.raises(ValidationError) as refused:
            checkin.add_session(uow, system, event_id, day=union_today() + timedelta(days=5), name="Потом")
        assert refused.value.code == "session_day"
        uow.commit()
    block(make_uow, [held[2].id])
    desks = []
    for name in ("Вход", "Выход"):
        _sid, token = enrol(make_uow, event_id, name)
        desk = Station(tmp_path / name)
        sync.enrol(desk, server, token)
        desks.append(desk)
    entrance, exit_ = desks
    assert [s.name for s in entrance.bundle.event.sessions] == ["Пленарное заседание", "Секция «Молодёжь»"]
    with pytest.raises(NoSuchSession):
        entrance.set_mode(foreign, "in")
    with pytest.raises(NoSuchSession):
        entrance.set_mode(plenary, "sideways")
    assert entrance.set_mode(plenary, "in")["name"] == "Пленарное заседание"
    exit_.set_mode(str(plenary), "out")

    def scan(desk, card):
        return desk.scan(Scan(Source.WEDGE, text=card.credential))

    first = scan(entrance, held[0])
    assert (first["colour"], first["code"]) == ("green", "session_in") and "Пленарное" in first["reason"]
    assert scan(entrance, held[0])["code"] == "already_in_session"
    assert scan(entrance, held[1])["code"] == "session_in"
    assert scan(entrance, held[2])["code"] == "revoked"
    time.sleep(1.1)  # desks keep whole seconds: the exit comes a moment after the entrance
    assert scan(exit_, held[0])["code"] == "session_out"
    # The session doors do not register anyone for the day.
    assert entrance.journal.counts()["here"] == 0 and entrance.status()["mode"]["inside"] == 2
    for desk in desks:
        sync.sync_once(desk)
    with session_factory() as s:
        attendance = {a.session.id: a for a in checkin.session_attendance(s, s.get(Event, event_id))}
        assert (attendance[plenary].entered, attendance[plenary].inside, attendance[plenary].delegates) == (2, 1, 2)
        assert attendance[section].entered == 0
        assert checkin.counts(s, s.get(Event, event_id)).arrived == 0
    # A desk switched to tomorrow's session is told so, and records nothing.
    entrance.set_mode(section, "in")
    assert scan(entrance, held[1])["code"] == "session_not_today"
    # A session removed while a desk still has it: the desk's scans there are taken, not refused,
    # and its later uploads go on (the session no longer counts).
    with make_uow() as uow:
        evening = checkin.add_session(uow, system, event_id, day=union_today(), name="Вечернее").id
        uow.commit()
    entrance.accept_bundle(publish(make_uow, event_id, stores))
    entrance.set_mode(evening, "in")
    with make_uow() as uow:
        checkin.remove_session(uow, system, event_id, evening)
        uow.commit()
    assert scan(entrance, held[1])["code"] == "session_in"
    assert sync.sync_once(entrance)["pushed"] == 1
    with session_factory() as s:
        assert evening not in {a.session.id for a in checkin.session_attendance(s, s.get(Event, event_id))}
    # Back to registration: the same card is a day check-in now.
    entrance.set_mode(None)
    assert scan(entrance, held[0])["code"] == "admitted"
    # A check-in dated years ahead counts from its arrival; an undo by another desk takes nothing back.
    sync.sync_once(entrance)
    with make_uow() as uow:
        stations_rows = {st.desk: st for st in checkin.stations(uow.session, event_id)}
        mine = uow.session.scalar(select(CheckIn).where(CheckIn.event_id == event_id, CheckIn.kind == "checkin",
                                                        CheckIn.number == held[0].number))
        checkin.take_journal(uow, stations_rows["Выход"], [
            {"nonce": "b" * 32, "kind": "undo", "ref_nonce": mine.nonce, "station_clock": "2026-12-04T10:00:00Z"},
            {"nonce": "c" * 32, "kind": "checkin", "number": held[1].number, "station_clock": "2099-01-01T10:00:00Z"}])
        uow.commit()
    with session_factory() as s:
        rows = {r.nonce: r for r in s.scalars(select(CheckIn).where(CheckIn.event_id == event_id))}
        assert rows[mine.nonce].undone is False
        assert rows["c" * 32].effective_at <= datetime.now(timezone.utc).replace(tzinfo=None) + timedelta(seconds=5)
        assert rows["c" * 32].event_day == union_today()
    # An upload naming another event's session is refused whole.
    with make_uow() as uow:
        station_row = checkin.stations(uow.session, event_id)[0]
        entry = {"nonce": "a" * 32, "kind": "session", "number": held[1].number, "session_id": foreign,
                 "direction": "in", "station_clock": "2026-12-04T10:00:00Z"}
        with pytest.raises(ValidationError) as bad:
            checkin.take_journal(uow, station_row, [entry])
        assert bad.value.code == "journal_entry_invalid"
        with pytest.raises(ValidationError):
            checkin.take_journal(uow, station_row, [dict(entry, session_id=plenary, direction="up")])
    # A signed bundle whose session lies outside the event's days is a bad header.
    data = publish(make_uow, event_id, stores)

    def late_session(header):
        header["event"]["sessions"][0]["day"] = "2099-01-01"

    with pytest.raises(eb.BundleBadHeader):
        eb.check(resign(data, stores.operational, late_session), root_public_key(stores), datetime.now(timezone.utc))
    # The event page shows the sessions; one with scans is kept, an empty one can go.
    web.login("admin")
    from tests.test_web import text_of

    page = text_of(web.client.get(f"/events/{event_id}"))
    assert "Пленарное заседание (Большой зал)" in page
    token = web.token(f"/events/{event_id}")
    web.client.post(f"/events/{event_id}/sessions/{plenary}/remove", data={"csrf_token": token})
    web.client.post(f"/events/{event_id}/sessions/{foreign}/remove", data={"csrf_token": token})
    with session_factory() as s:
        assert [x.id for x in checkin.event_sessions(s, event_id)] == [plenary, section]
        assert [x.id for x in checkin.event_sessions(s, other_id)] == [foreign]
    web.client.post(f"/events/{event_id}/sessions/{section}/remove", data={"csrf_token": token})
    web.client.post(f"/events/{event_id}/sessions", data={"csrf_token": token, "day": "2001-01-01", "name": "Рано"})
    with session_factory() as s:
        assert [x.id for x in checkin.event_sessions(s, event_id)] == [plenary]
