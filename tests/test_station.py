"""Reader station, offline: the revocation set, the event bundle (and every way a station refuses
one), the verdict rules for QR, typed numbers and chips, the serial line rules, the journal."""

from __future__ import annotations

import random
import time
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from tests.station_support import block, export_trust, issued_cards, make_event, publish, root_public_key
from tests.support import union_keys
from unioncard import clock
from unioncard.hardware.emulator import CardFeeder, SimReader, UidCard, UnionCardChip
from unioncard.hsm.domain import TrustBundleError
from unioncard.issuer import card_certificate, cardnumber, credential
from unioncard.personalization import chip
from unioncard.reader_station import bundle as eb
from unioncard.reader_station import revocations
from unioncard.reader_station.domain import Scan, Source, decide
from unioncard.reader_station.inputs import ChipInput, LineAssembler, read_chip
from unioncard.reader_station.station import Station, StationNotEnrolled


@pytest.fixture
def union(make_uow, tree, tmp_path):
    stores = union_keys(tmp_path)
    export_trust(make_uow, stores)
    held = issued_cards(make_uow, tree, 6, stores.operational)
    return stores, held


def test_revocation_set_is_exact_and_small():
    rng = random.Random(7)
    keys = set()
    for region in range(1, 86):
        base = int(f"964301{region:02d}0000000")
        keys.update(base + s for s in rng.sample(range(1, 4_700), 47))
    data, k, count = revocations.encode(keys)
    assert revocations.decode(data, k, count) == keys and count == len(keys)
    # ~1 % of a dense range: well under 12 bits a key (the region jumps included).
    assert len(data) * 8 / len(keys) < 12
    assert revocations.decode(*revocations.encode([])) == set()
    with pytest.raises(revocations.DecodeError):
        revocations.decode(data[:-3], k, count)
    with pytest.raises(revocations.DecodeError):
        revocations.decode(data + b"\xff", k, count)


def test_bundle_round_trip_and_every_refusal(make_uow, tree, union, tmp_path):
    stores, held = union
    event_id = make_event(make_uow, tree, stores, roster=[c.number for c in held[:4]])
    block(make_uow, [held[5].id])
    data = publish(make_uow, event_id, stores)
    root = root_public_key(stores)
    now = clock.now()
    opened = eb.check(data, root, now)
    assert opened.event.id == event_id and opened.version == 1
    assert set(opened.roster) == {c.number for c in held[:4]}
    assert opened.roster[held[0].number].role == "delegate"
    assert opened.is_revoked(held[5].number) and not opened.is_revoked(held[0].number)
    # Truncated anywhere: refused, and said so.
    for cut in (3, 10, 100, len(data) // 2, len(data) - 1):
        with pytest.raises(eb.BundleError) as info:
            eb.check(data[:cut], root, now)
        assert info.value.code == "bundle_truncated", cut
    with pytest.raises(eb.BundleTruncated):
        eb.check(data[:-1], root, now)
    # Damaged or tampered: a byte of the header, of the roster, of the signature; each says which.
    header_end = len(eb.MAGIC) + 4 + 20
    codes = []
    for position in (header_end, len(data) - 200, len(data) - 5):
        bad = bytearray(data)
        bad[position] ^= 0x01
        with pytest.raises(eb.BundleError) as info:
            eb.check(bytes(bad), root, now)
        codes.append(info.value.code)
    assert codes == ["bundle_bad_header", "bundle_section_mismatch", "bundle_bad_signature"]
    # Expired; issued "in the future" for a clock far behind; signed under another root.
    with pytest.raises(eb.BundleExpired) as info:
        eb.check(data, root, now + timedelta(days=4))  # the event ends tomorrow: valid to the day after
    assert "истёк" in info.value.render() or "expired" in info.value.render("en")
    with pytest.raises((eb.BundleFromFuture, TrustBundleError)) as info:
        eb.check(data, root, now - timedelta(hours=3))
    assert info.value.code.endswith("from_future") and "часы" in info.value.render()
    other = union_keys(tmp_path / "another-union")
    with pytest.raises(TrustBundleError):
        eb.check(data, root_public_key(other), now)
    # Rolled back: version 2 installed, version 1 offered again; a different version 2.
    newer = publish(make_uow, event_id, stores)
    assert eb.check(newer, root, now, current_version=1).version == 2
    with pytest.raises(eb.BundleRollback):
        eb.check(data, root, now, current_version=2)
    with pytest.raises(eb.BundleRollback):
        eb.check(newer, root, now, current_version=2, current_sha256="0" * 64)
    with pytest.raises(eb.BundleOtherEvent):
        eb.check(newer, root, now, event_id=event_id + 1)


def test_verdicts_for_qr_numbers_and_refusals(make_uow, tree, union):
    stores, held = union
    event_id = make_event(make_uow, tree, stores, roster=[c.number for c in held[:4]])
    block(make_uow, [held[3].id])
    bundle = eb.check(publish(make_uow, event_id, stores), root_public_key(stores), clock.now())
    now = clock.now()

    def verdict(text, source=Source.WEDGE, previous=lambda *asked: None):
        return decide(Scan(source, text=text), bundle, now, previous)

    ok = verdict(held[0].credential)
    assert (ok.colour, ok.code, ok.number, ok.role) == ("green", "admitted", held[0].number, "delegate")
    assert ok.name.startswith("Делегатова")
    typed = verdict(cardnumber.format(held[1].number), Source.TYPED)
    assert typed.colour == "green" and typed.name  # on the roster: the list gives the name
    assert verdict(held[3].credential).code == "revoked"
    assert verdict(held[4].credential).code == "not_on_roster"
    assert verdict(held[0].number[:-1] + str((int(held[0].number[-1]) + 1) % 10)).code == "number_typo"
    assert verdict(held[0].number[:12]).code == "number_incomplete"
    assert verdict("https://example.org/ticket/12345").code == "foreign_code"
    assert verdict("\x1b[2~garbage").code == "unreadable"
    forged = credential.parse(held[0].credential)
    altered = credential.Credential(forged.number, forged.full_name, forged.region_code, forged.issued_on, forged.kind,
                                    forged.key_id, forged.payload, bytes(64))
    assert verdict(altered.qr_text).code == "forged"
    from unioncard.reader_station.domain import PreviousCheckIn

    again = verdict(held[0].credential, previous=lambda *asked: PreviousCheckIn(now, "Стол 2"))
    assert again.colour == "amber" and again.code == "already_checked_in" and again.params["desk"] == "Стол 2"
    # An event open to every member: a typed number without the list is amber (check by eye).
    open_event = make_event(make_uow, tree, stores, admission="members", code="S2")
    open_bundle = eb.check(publish(make_uow, open_event, stores), root_public_key(stores), now)
    assert decide(Scan(Source.WEDGE, text=held[4].credential), open_bundle, now).code == "admitted"
    assert decide(Scan(Source.TYPED, text=held[4].number), open_bundle, now).code == "admitted_number_only"


def _personalised(card, stores) -> UnionCardChip:
    """A chip written by the bureau's own code."""
    from unioncard.hardware.emulator import SimSession

    feeder = CardFeeder(auto_blank=False)
    blank = UnionCardChip()
    feeder.put(blank)
    record = credential.parse(card.credential).record
    chip.personalise(SimSession(feeder, blank), card.number, record,
                     lambda point: card_certificate.issue(stores.operational, card.number, point).record)
    return blank


def _clone(original: UnionCardChip) -> UnionCardChip:
    """What a cloner can make: the same files on a chip with a key of its own."""
    clone = UnionCardChip()
    clone.files = {fid: bytearray(content) for fid, content in original.files.items()}
    clone.state, clone.key = original.state, ec.generate_private_key(ec.SECP256R1())
    return clone


def test_chip_verdicts_on_the_emulated_reader(make_uow, tree, union, tmp_path):
    stores, held = union
    event_id = make_event(make_uow, tree, stores, roster=[c.number for c in held[:4]])
    station = Station(tmp_path / "desk")
    station.pin(root_public_key=root_public_key(stores), station_id="9", desk="Стол 1", event_id=event_id,
                server=None, token=None)
    station.accept_bundle(publish(make_uow, event_id, stores))
    genuine = _personalised(held[0], stores)
    clone = _clone(_personalised(held[1], stores))
    feeder = CardFeeder(auto_blank=False)
    reader = SimReader("desk-test", feeder)
    verdicts = []
    for card in (genuine, clone, UidCard()):
        feeder.put(card)
        session = reader.wait_for_card(1)
        scan = read_chip(session)
        session.close()
        feeder.take_off()
        verdicts.append(station.scan(scan))
    assert [v["code"] for v in verdicts] == ["admitted", "clone", "not_a_union_chip"]
    assert verdicts[0]["name"].startswith("Делегатова") and verdicts[0]["colour"] == "green"
    # Pulled off mid-read: amber, nothing recorded.
    again = _personalised(held[2], stores)
    feeder.put(again)
    feeder.pull_after = 3
    session = reader.wait_for_card(1)
    assert station.scan(read_chip(session))["code"] == "card_removed"
    assert station.journal.counts()["here"] == 1
    # The thread: a card put on the reader is read once, however long it lies there.
    thread = ChipInput(station, reader, poll=0.1)
    thread.start()
    feeder.put(_personalised(held[3], stores))
    for _ in range(50):
        if station.journal.counts()["here"] == 2:
            break
        time.sleep(0.1)
    thread.stop()
    thread.join(2)
    assert station.journal.counts()["here"] == 2


def test_serial_lines_half_lines_and_garbage():
    lines = LineAssembler(line_timeout=0.3)
    scans = lines.feed(b"9643012300000014\r\nUC1:ABC", now=0.0)
    assert [s.text for s in scans] == ["9643012300000014"]
    assert lines.tick(0.1) == []
    cut = lines.tick(0.5)
    assert [s.problem for s in cut] == ["partial_scan"] and lines.buffer == bytearray()
    garbage = lines.feed(b"\xff\xfe\x00\x01\n", now=1.0)
    assert [s.problem for s in garbage] == ["unreadable"]
    assert lines.feed(b"\r\n\r\n", now=2.0) == []  # empty lines are no scans


def test_journal_undo_and_station_refusals(make_uow, tree, union, tmp_path):
    stores, held = union
    event_id = make_event(make_uow, tree, stores, roster=[c.number for c in held[:4]])
    station = Station(tmp_path / "desk")
    assert station.scan(Scan(Source.WEDGE, text=held[0].credential))["code"] == "no_bundle"
    with pytest.raises(StationNotEnrolled):
        station.accept_bundle(publish(make_uow, event_id, stores))  # not enrolled: no pinned root
    station.pin(root_public_key=root_public_key(stores), station_id="3", desk="Стол 3", event_id=event_id,
                server=None, token=None)
    first = publish(make_uow, event_id, stores)
    second = publish(make_uow, event_id, stores)
    station.accept_bundle(second)
    with pytest.raises(eb.BundleRollback):
        station.accept_bundle(first)
    assert station.bundle.version == eb.peek(second)["version"] == eb.peek(first)["version"] + 1
    shown = station.scan(Scan(Source.WEDGE, text=held[0].credential))
    assert shown["colour"] == "green" and shown["nonce"]
    assert station.scan(Scan(Source.WEDGE, text=held[0].credential))["code"] == "already_checked_in"
    station.undo(shown["nonce"])
    with pytest.raises(Exception) as info:
        station.undo(shown["nonce"])
    assert info.value.code == "checkin_already_undone"
    assert station.scan(Scan(Source.TYPED, text=held[0].number))["code"] == "admitted"
    # The stored bundle survives a restart; a damaged stored file is reported, not used.
    station.close()
    again = Station(tmp_path / "desk")
    assert again.bundle.version == eb.peek(second)["version"]
    again.bundle_path.write_bytes(second[:-10])
    third = Station(tmp_path / "desk")
    assert third.bundle is None and third.bundle_problem
    assert third.scan(Scan(Source.WEDGE, text=held[0].credential))["code"] == "no_bundle"


def test_station_cli_loads_a_bundle_file_and_refuses_a_damaged_one(make_uow, tree, union, tmp_path):
    import subprocess
    import sys

    from cryptography.hazmat.primitives import serialization

    from unioncard.hsm.domain import load_public_key

    stores, held = union
    event_id = make_event(make_uow, tree, stores, roster=[c.number for c in held[:2]])
    data = publish(make_uow, event_id, stores)
    (tmp_path / "root.pem").write_bytes(load_public_key(root_public_key(stores)).public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    (tmp_path / "cut.ucb").write_bytes(data[:len(data) // 2])
    (tmp_path / "good.ucb").write_bytes(data)
    home = tmp_path / "desk"

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "unioncard", "station", *args, "--home", str(home)],
                              capture_output=True, text=True, timeout=120)

    cut = cli("load-bundle", str(tmp_path / "cut.ucb"), "--root-key", str(tmp_path / "root.pem"))
    assert cut.returncode == 2 and "неполный" in cut.stdout
    good = cli("load-bundle", str(tmp_path / "good.ucb"), "--root-key", str(tmp_path / "root.pem"))
    assert good.returncode == 0 and "в списке 2" in good.stdout, good.stdout + good.stderr
    again = cli("load-bundle", str(tmp_path / "good.ucb"))
    assert again.returncode == 0
    status = cli("status")
    assert "данные версии 1" in status.stdout and "в списке 2" in status.stdout
    as_json = cli("status", "--json")
    assert '"version": 1' in as_json.stdout and '"roster": 2' in as_json.stdout
