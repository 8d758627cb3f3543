"""An offline desk takes only its own event's data (issue 13, defects 5, 7, 8 and 15): nothing from
a bundle is used before its signature verifies, a bound desk refuses other events whatever the
flags, switching events is explicit, the desk warns before its data expire, and a wedge scanner
typing in the Russian keyboard layout still reads cards."""

from __future__ import annotations

from datetime import timedelta

import pytest
from click.testing import CliRunner

from tests.station_support import (
    export_trust, issued_cards, make_event, publish, resign, root_pem, root_public_key,
)
from tests.support import union_keys
from unioncard import clock
from unioncard.cli import main
from unioncard.hsm.trust import utc
from unioncard.reader_station import bundle as eb
from unioncard.reader_station.app import create_station_app
from unioncard.reader_station.inputs import US_TO_RUSSIAN, keyboard_text
from unioncard.reader_station.station import Station, StationOtherEvent


@pytest.fixture
def union(make_uow, tree, tmp_path):
    stores = union_keys(tmp_path)
    export_trust(make_uow, stores)
    held = issued_cards(make_uow, tree, 3, stores.operational)
    return stores, held


def station_cli(home, *args, input=None):
    return CliRunner().invoke(main, ["station", *args, "--home", str(home)], input=input, catch_exceptions=False)


SETTINGS = ("root_public_key", "event_id", "desk", "station_id", "server", "token", "bundle_version", "bundle_sha256")


def settings(home) -> dict:
    station = Station(home)
    try:
        return {name: station.journal.get(name) for name in SETTINGS}
    finally:
        station.close()


# --- defect 5: a header without an event --------------------------------------------------------

def test_a_header_without_event_is_a_coded_refusal_not_a_traceback(make_uow, tree, union, tmp_path):
    stores, held = union
    event_id = make_event(make_uow, tree, stores, roster=[held[0].number])
    good = publish(make_uow, event_id, stores)
    # Signed by the union's own key, so only the missing field is wrong.
    no_event = resign(good, stores.operational, lambda header: header.pop("event"))
    (tmp_path / "no-event.ucb").write_bytes(no_event)
    pem = root_pem(stores, tmp_path / "root.pem")

    with pytest.raises(eb.BundleBadHeader) as info:
        eb.check(no_event, root_public_key(stores), clock.now())
    assert info.value.code == "bundle_bad_header"
    fresh = station_cli(tmp_path / "desk", "load-bundle", str(tmp_path / "no-event.ucb"), "--root-key", pem)
    assert fresh.exit_code == 2 and "Заголовок пакета данных мероприятия повреждён" in fresh.output, fresh.output
    assert settings(tmp_path / "desk")["root_public_key"] is None  # nothing pinned by a refused file


# --- defect 7: another event's data ---------------------------------------------------------------

def test_a_bound_desk_refuses_another_events_bundle_whatever_the_flags(make_uow, tree, union, tmp_path):
    stores, held = union
    ours = make_event(make_uow, tree, stores, roster=[held[0].number], code="OURS")
    theirs = make_event(make_uow, tree, stores, roster=[held[1].number], code="THEIRS")
    (tmp_path / "ours.ucb").write_bytes(publish(make_uow, ours, stores))
    for _ in range(3):  # the other event's bundle has a higher version than ours
        other = publish(make_uow, theirs, stores)
    (tmp_path / "theirs.ucb").write_bytes(other)
    pem = root_pem(stores, tmp_path / "root.pem")
    home = tmp_path / "desk"

    assert station_cli(home, "load-bundle", str(tmp_path / "ours.ucb"), "--root-key", pem).exit_code == 0
    before = settings(home)
    assert before["event_id"] == str(ours)
    for flags in ([], ["--root-key", pem], ["--root-key", pem, "--desk", "7"]):
        refused = station_cli(home, "load-bundle", str(tmp_path / "theirs.ucb"), *flags)
        assert refused.exit_code == 2 and "для другого мероприятия" in refused.output, refused.output
        assert settings(home) == before
    station = Station(home)
    with pytest.raises(eb.BundleOtherEvent):
        station.accept_bundle(other)
    assert station.bundle.event.id == ours
    # Enrolling the desk with the server for another event is refused the same way.
    with pytest.raises(StationOtherEvent):
        station.pin(root_public_key=root_public_key(stores), station_id="5", desk="Стол 5", event_id=theirs,
                    server="http://127.0.0.1:9", token="5.x")
    station.close()
    assert settings(home) == before


def test_a_refused_load_changes_nothing_on_the_desk(make_uow, tree, union, tmp_path):
    stores, held = union
    event_id = make_event(make_uow, tree, stores, roster=[held[0].number])
    good = publish(make_uow, event_id, stores)
    home = tmp_path / "desk"
    station = Station(home)
    station.pin(root_public_key=root_public_key(stores), station_id="12", desk="Стол 12", event_id=event_id,
                server="https://unioncard.example.org", token="12.secret")
    station.accept_bundle(good)
    station.close()
    before = settings(home)
    # Altered in the header only: claims another event, a new version and another desk's world.
    forged = bytearray(resign(good, stores.operational, lambda header: header.update(version=99)))
    forged[-3] ^= 0x40
    (tmp_path / "forged.ucb").write_bytes(bytes(forged))
    pem = root_pem(stores, tmp_path / "root.pem")
    refused = station_cli(home, "load-bundle", str(tmp_path / "forged.ucb"), "--root-key", pem, "--desk", "X")
    assert refused.exit_code == 2 and "подпись" in refused.output.lower(), refused.output
    assert settings(home) == before  # the server, token, desk and event are the enrolled ones


def test_a_fresh_desk_cannot_be_bound_to_event_zero(make_uow, tree, union, tmp_path):
    stores, held = union
    event_id = make_event(make_uow, tree, stores, roster=[held[0].number])
    zero = resign(publish(make_uow, event_id, stores), stores.operational,
                  lambda header: header["event"].update(id=0))
    station = Station(tmp_path / "desk")
    with pytest.raises(eb.BundleBadHeader):
        station.accept_bundle(zero, root_public_key(stores))
    assert station.event_id is None and station.root_public_key is None and station.bundle is None
    station.close()


def test_switching_events_is_explicit_confirmed_and_keeps_the_old_journal(make_uow, tree, union, tmp_path):
    from unioncard.reader_station.domain import Scan, Source

    stores, held = union
    first = make_event(make_uow, tree, stores, roster=[held[0].number], code="FIRST")
    second = make_event(make_uow, tree, stores, roster=[held[1].number], code="SECOND")
    (tmp_path / "first.ucb").write_bytes(publish(make_uow, first, stores))
    (tmp_path / "second.ucb").write_bytes(publish(make_uow, second, stores))
    pem = root_pem(stores, tmp_path / "root.pem")
    home = tmp_path / "desk"
    assert station_cli(home, "load-bundle", str(tmp_path / "first.ucb"), "--root-key", pem, "--desk", "Стол 4").exit_code == 0
    station = Station(home)
    assert station.scan(Scan(Source.WEDGE, text=held[0].credential))["code"] == "admitted"
    station.close()

    declined = station_cli(home, "switch-event", str(tmp_path / "second.ucb"), "--root-key", pem, input="n\n")
    assert declined.exit_code != 0
    assert "не отправлено на сервер 1" in declined.output and "journal-event-" in declined.output, declined.output
    assert settings(home)["event_id"] == str(first)
    # A file that does not verify is refused before anything is asked or moved.
    (tmp_path / "cut.ucb").write_bytes((tmp_path / "second.ucb").read_bytes()[:-1])
    assert station_cli(home, "switch-event", str(tmp_path / "cut.ucb"), "--yes").exit_code == 2
    assert not list(home.glob("journal-event-*"))

    switched = station_cli(home, "switch-event", str(tmp_path / "second.ucb"), "--yes")
    assert switched.exit_code == 0, switched.output
    archives = list(home.glob(f"journal-event-{first}-*.sqlite3"))
    assert len(archives) == 1
    station = Station(home)
    assert station.bundle.event.id == second and station.journal.counts()["here"] == 0
    assert station.journal.get("desk") == "Стол 4"
    assert station.scan(Scan(Source.WEDGE, text=held[1].credential))["code"] == "admitted"
    with pytest.raises(eb.BundleOtherEvent):  # and now the first event's data are the foreign ones
        station.accept_bundle((tmp_path / "first.ucb").read_bytes())
    station.close()
    from unioncard.reader_station.journal import Journal

    old = Journal(archives[0])
    assert old.counts()["here"] == 1 and old.unsynced()[0]["number"] == held[0].number
    old.close()


def test_switching_waits_for_a_running_desk_to_stop(make_uow, tree, union, tmp_path):
    """A desk still running (another connection to its journal) keeps the journal in WAL mode: its
    pages would follow the file's name into the new event's journal, so nothing is moved."""
    from unioncard.reader_station.domain import Scan, Source
    from unioncard.reader_station.station import StationBusy

    stores, held = union
    first = make_event(make_uow, tree, stores, roster=[held[0].number], code="FIRST")
    second = make_event(make_uow, tree, stores, roster=[held[1].number], code="SECOND")
    running = Station(tmp_path / "desk")
    running.accept_bundle(publish(make_uow, first, stores), root_public_key(stores))
    assert running.scan(Scan(Source.WEDGE, text=held[0].credential))["code"] == "admitted"
    operator = Station(tmp_path / "desk")
    with pytest.raises(StationBusy):
        operator.switch_event(publish(make_uow, second, stores))
    assert not list((tmp_path / "desk").glob("journal-event-*"))
    assert running.journal.counts()["here"] == 1 and running.event_id == first
    running.close()
    operator.close()
    switched = Station(tmp_path / "desk")
    switched.switch_event(publish(make_uow, second, stores))
    assert switched.event_id == second and switched.journal.counts()["here"] == 0
    switched.close()


def test_an_embedded_trust_bundle_cannot_go_back_either(make_uow, tree, union, tmp_path):
    """formats.md §2.3: the rollback rule covers the trust bundle inside event bundles."""
    from unioncard.checkin.services import _event_info
    from unioncard.checkin.models import Event

    stores, held = union
    event_id = make_event(make_uow, tree, stores, roster=[held[0].number])
    old_trust = export_trust(make_uow, stores)  # version 2
    export_trust(make_uow, stores)  # version 3
    station = Station(tmp_path / "desk")
    station.accept_bundle(publish(make_uow, event_id, stores), root_public_key(stores))  # trust v3 inside
    with make_uow() as uow:
        event = _event_info(uow.session, uow.session.get(Event, event_id))
    now = clock.now()
    newer_with_old_trust = eb.build(stores.operational, event, version=5, issued_at=now,
                                    expires_at=now + timedelta(hours=6), trust_bundle=old_trust, roster=[],
                                    revoked_numbers=[], revocation_feed_version=0)
    with pytest.raises(eb.TrustBundleError) as info:
        station.accept_bundle(newer_with_old_trust)
    assert info.value.code == "trust_bundle_rollback"
    assert station.bundle.version == 1
    station.close()


# --- defect 8: the desk warns a day before its data expire ----------------------------------------

def test_the_desk_warns_a_day_before_its_data_expire(make_uow, tree, union, tmp_path):
    stores, held = union
    event_id = make_event(make_uow, tree, stores, roster=[held[0].number])
    data = publish(make_uow, event_id, stores)
    expires = utc(eb.check(data, root_public_key(stores), clock.now()).valid_until)
    moment = {"now": utc(clock.now())}
    station = Station(tmp_path / "desk", clock=lambda: moment["now"])
    station.accept_bundle(data, root_public_key(stores))
    if expires - moment["now"] > timedelta(hours=24):
        status = station.status()
        assert status["bundle"]["expires_soon"] is False and status["expiry_warning"] is None
    moment["now"] = expires - timedelta(hours=23)
    status = station.status()
    assert status["bundle"]["expires_soon"] is True
    assert "Данные мероприятия истекают" in status["expiry_warning"]
    assert expires.strftime("%d.%m.%Y %H:%M") in status["expiry_warning"]
    page = create_station_app(station).test_client().get("/").get_data(as_text=True)
    assert "Данные мероприятия истекают" in page and 'id="warning" class="warning">' in page
    moment["now"] = expires + timedelta(minutes=1)
    status = station.status()
    assert status["bundle"]["expired"] and "истекли" in status["expiry_warning"]
    station.close()


# --- defect 15: a wedge scanner typing in the Russian layout ----------------------------------------

def test_a_qr_scanned_in_the_russian_layout_is_read(make_uow, tree, union, tmp_path):
    stores, held = union
    event_id = make_event(make_uow, tree, stores, roster=[held[0].number, held[1].number])
    station = Station(tmp_path / "desk")
    station.accept_bundle(publish(make_uow, event_id, stores), root_public_key(stores))
    client = create_station_app(station).test_client()
    token = client.get("/").get_data(as_text=True).split('data-token="')[1].split('"')[0]

    russian = held[0].credential.translate(US_TO_RUSSIAN)
    assert russian.startswith("ГС1Ж") and russian != held[0].credential
    shown = client.post("/scan", json={"text": russian, "source": "wedge"}, headers={"X-Station-Token": token}).json
    assert (shown["colour"], shown["code"], shown["number"]) == ("green", "admitted", held[0].number)
    # Caps Lock on as well: the lower-case Russian letters of the same keys.
    lower = held[1].credential.lower().translate(US_TO_RUSSIAN)
    shown = client.post("/scan", json={"text": lower, "source": "wedge"}, headers={"X-Station-Token": token}).json
    assert shown["code"] == "admitted" and shown["number"] == held[1].number
    station.close()


def test_the_layout_is_undone_only_when_the_text_is_not_readable_as_it_is():
    assert keyboard_text("9643 0123 0000 0014") == "9643 0123 0000 0014"
    assert keyboard_text("9643.0123.0000.0014") == "9643.0123.0000.0014"  # «.» is «/» in the other layout
    assert keyboard_text("Иванов") == "Иванов"  # mapped it is still nothing: shown as typed
    # Every printable key of the US layout comes back from the Russian one, both cases.
    keys = "`1234567890-=qwertyuiop[]\\asdfghjkl;'zxcvbnm,./~!@#$%^&*()_+QWERTYUIOP{}|ASDFGHJKL:\"ZXCVBNM<>?"
    typed = keys.translate(US_TO_RUSSIAN)
    assert typed.startswith("ё1234567890-=йцукенгшщзхъ\\фывапролджэячсмитьбю.Ё!\"№;%:?*()_+ЙЦУКЕН")
    from unioncard.reader_station.inputs import RUSSIAN_TO_US

    assert typed.translate(RUSSIAN_TO_US) == keys
