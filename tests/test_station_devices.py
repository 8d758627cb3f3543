"""The desk on the real stand-ins: a serial scanner on a socat pty pair (pyserial), the chip reader
through pcscd + vpcd with the card emulator, and the desk page in Chromium driven by Playwright
with keyboard-wedge typing. Missing stand-ins fail (scripts/setup.sh --test installs them)."""

from __future__ import annotations

import shutil
import subprocess
import threading
import time

import pytest

from tests.station_support import export_trust, issued_cards, make_event, publish, root_public_key
from tests.support import union_keys
from tests.test_station import _clone, _personalised
from unioncard.hardware.emulator import UidCard, UnionCardChip
from unioncard.hardware.smartcard import open_reader
from unioncard.reader_station.app import create_station_app
from unioncard.reader_station.domain import Scan, Source
from unioncard.reader_station.inputs import ChipInput, SerialInput
from unioncard.reader_station.station import Station

READER = "pcsc:Virtual PCD 00 00"


@pytest.fixture
def desk(make_uow, tree, tmp_path):
    stores = union_keys(tmp_path)
    export_trust(make_uow, stores)
    held = issued_cards(make_uow, tree, 5, stores.operational)
    event_id = make_event(make_uow, tree, stores, roster=[c.number for c in held[:4]])
    station = Station(tmp_path / "desk")
    station.pin(root_public_key=root_public_key(stores), station_id="1", desk="Стол 1", event_id=event_id,
                server=None, token=None)
    station.accept_bundle(publish(make_uow, event_id, stores))
    yield station, stores, held
    station.close()


def _verdicts(station, count: int, after: int = 0, seconds: float = 10.0) -> list[dict]:
    deadline = time.monotonic() + seconds
    found: list[dict] = []
    while len(found) < count and time.monotonic() < deadline:
        found = [v for v in station.wait_feed(after, 0.2) if v.get("code") != "status"]
    return found


@pytest.fixture
def serial_pair(tmp_path):
    assert shutil.which("socat"), "socat not installed: run scripts/setup.sh --test"
    scanner, desk_end = tmp_path / "scanner", tmp_path / "desk-port"
    process = subprocess.Popen(["socat", f"pty,raw,echo=0,link={scanner}", f"pty,raw,echo=0,link={desk_end}"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        if scanner.exists() and desk_end.exists():
            break
        time.sleep(0.05)
    assert scanner.exists(), "socat did not make the pty pair"
    yield scanner, desk_end
    process.terminate()
    process.wait(5)


def test_serial_scanner_through_a_socat_pty(desk, serial_pair):
    import serial

    station, _stores, held = desk
    scanner_path, desk_path = serial_pair
    reader = SerialInput(station, f"serial:{desk_path}@115200")
    reader.start()
    scanner = serial.Serial(str(scanner_path), 115200)
    try:
        scanner.write(held[0].credential.encode() + b"\r\n")          # a good QR
        scanner.write(b"\x00\xff\xfe garbage \x07\r\n")                # line noise
        scanner.write(held[1].credential[:40].encode())                 # cut off mid-scan
        scanner.flush()
        time.sleep(0.8)
        scanner.write(held[1].number.encode() + b"\r")                  # the barcode: just the number
        scanner.write(held[4].credential.encode() + b"\n")              # not on the list
        scanner.flush()
        codes = [v["code"] for v in _verdicts(station, 5)]
    finally:
        reader.stop()
        scanner.close()
    assert codes == ["admitted", "unreadable", "partial_scan", "admitted", "not_on_roster"]
    assert station.journal.counts()["here"] == 2


def test_chip_reader_through_pcscd_and_vpcd(desk, virtual_card):
    station, stores, held = desk
    virtual_card.auto_blank = False
    virtual_card.take_off()
    genuine = _personalised(held[0], stores)
    clone = _clone(_personalised(held[1], stores))
    reader = ChipInput(station, open_reader(READER), poll=0.2)
    reader.start()
    try:
        codes = []
        for card in (genuine, clone, UidCard(), UnionCardChip()):
            seen = station.seq
            virtual_card.put(card)
            verdict = _verdicts(station, 1, after=seen, seconds=15)
            codes.append(verdict[0]["code"] if verdict else None)
            virtual_card.take_off()
            time.sleep(0.6)
        # Pulled off the reader in the middle of the read.
        pulled = _personalised(held[2], stores)
        virtual_card.pull_after = 2
        seen = station.seq
        virtual_card.put(pulled)
        verdict = _verdicts(station, 1, after=seen, seconds=15)
        codes.append(verdict[0]["code"] if verdict else None)
    finally:
        reader.stop()
        reader.join(5)
    assert codes == ["admitted", "clone", "not_a_union_chip", "not_a_union_chip", "card_removed"]
    assert station.journal.counts()["here"] == 1


@pytest.fixture
def desk_page(desk):
    from werkzeug.serving import make_server

    station = desk[0]
    server = make_server("127.0.0.1", 0, create_station_app(station), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", desk
    server.shutdown()
    thread.join(5)


def test_wedge_typing_on_the_verdict_page(desk_page, browser):
    url, (station, _stores, held) = desk_page
    page = browser.new_page()
    page.goto(url)
    verdict = page.locator("#verdict")
    assert "Приложите билет" in verdict.inner_text()
    # A wedge scanner: the whole QR in a burst, then Enter.
    page.keyboard.type(held[0].credential, delay=3)
    page.keyboard.press("Enter")
    page.wait_for_selector("#verdict.green")
    assert "Делегатова" in page.locator("#name").inner_text()
    assert page.locator("#role").inner_text() == "Делегат"
    # The same card again: amber, already in.
    page.keyboard.type(held[0].credential, delay=3)
    page.keyboard.press("Enter")
    page.wait_for_selector("#verdict.amber[data-code=already_checked_in]")
    # A scan cut off (no Enter): amber after a moment, and the field is empty again.
    page.keyboard.type(held[1].credential[:30], delay=3)
    page.wait_for_selector("#verdict.amber[data-code=partial_scan]", timeout=5000)
    assert page.locator("#scan").input_value() == ""
    # A person typing a number with a typo: red.
    wrong = held[1].number[:-1] + str((int(held[1].number[-1]) + 1) % 10)
    page.keyboard.type(wrong, delay=120)
    page.keyboard.press("Enter")
    page.wait_for_selector("#verdict.red[data-code=number_typo]")
    assert "опечатка" in page.locator("#reason").inner_text()
    # Undo the last check-in from the keyboard.
    page.keyboard.press("Control+z")
    page.wait_for_selector("#verdict.amber[data-code=undone]")
    assert station.journal.counts()["here"] == 0
    # A verdict from another input (a serial scanner or the chip reader) reaches the page.
    station.scan(Scan(Source.SERIAL, text=held[2].credential))
    page.wait_for_selector("#verdict.green")
    assert "Делегатова" in page.locator("#name").inner_text()
    page.close()
