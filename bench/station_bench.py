"""Reader-station benchmarks (issue 6):

(a) an event bundle for 4 M cards with 1 % revoked: its size and build time (and the same set as
    zlib/lzma of the sorted numbers, for the choice of encoding);
(b) the station loading that bundle (goal ≤ 1 s);
(c) scan → verdict in-process, p50 and p99: a QR (goal p99 ≤ 5 ms) and a chip on the emulated
    reader (sim:, and with --vpcd also through pcscd + vpcd);
(d) eight desks × 1 000 check-ins made offline, then synced to the server over HTTP: time and the
    number of double entries (goal 0).

    .venv/bin/python bench/station_bench.py [--cards 4000000] [--database sqlite|postgresql] [--vpcd]
"""

from __future__ import annotations

import argparse
import logging
import lzma
import random
import statistics
import tempfile
import threading
import time
import zlib
from datetime import date, timedelta
from pathlib import Path

from benchkit import add_database_arguments, report, scratch_database

from unioncard import clock, db
from unioncard.hsm import ceremony
from unioncard.hsm.base import open_keystore
from unioncard.hsm.domain import KeyRole
from unioncard.issuer import card_certificate, cardnumber, credential
from unioncard.reader_station import bundle as eb
from unioncard.reader_station.domain import Scan, Source
from unioncard.reader_station.station import Station


def keys(folder: Path) -> ceremony.KeyStores:
    operational = open_keystore(f"software:{folder / 'keys'}", "bench", create=True)
    for role in (KeyRole.CARD_CREDENTIAL, KeyRole.CARD_CERTIFICATE, KeyRole.EVENT_BUNDLE):
        operational.generate(role)
    root = open_keystore(f"software:{folder / 'root'}", "bench", roles={KeyRole.ROOT}, create=True)
    root.generate(KeyRole.ROOT)
    return ceremony.KeyStores(operational=operational, root=root)


def trust_bundle(stores) -> bytes:
    from unioncard.hsm import trust

    now = clock.now()
    return trust.build(stores.root, stores.operational.list(), version=1, issued_at=now,
                       expires_at=now + timedelta(days=30))


def union_numbers(cards: int, seed: int = 1) -> list[str]:
    """The 1 % revoked numbers of a union of ``cards`` cards (85 regions, serials dense per region)."""
    rng = random.Random(seed)
    per_region = cards // 85
    revoked = []
    for region in range(1, 86):
        for serial in rng.sample(range(1, per_region + 1), per_region // 100):
            revoked.append(cardnumber.build(cardnumber.DEFAULT_ISSUER_PREFIX, f"{region:02d}", serial))
    return revoked


def bench_bundle(stores, cards: int) -> bytes:
    revoked = union_numbers(cards)
    roster = [eb.RosterEntry(cardnumber.build(cardnumber.DEFAULT_ISSUER_PREFIX, "23", 500_000 + i),
                             f"Делегатова Анна Сергеевна {i}", "delegate", "23") for i in range(3000)]
    info = eb.EventInfo(1, "BENCH", "XI съезд", clock.today(), clock.today(), "Москва", "roster")
    now = clock.now()
    started = time.perf_counter()
    data = eb.build(stores.operational, info, version=1, issued_at=now, expires_at=now + timedelta(days=1),
                    trust_bundle=trust_bundle(stores), roster=roster, revoked_numbers=revoked,
                    revocation_feed_version=len(revoked))
    built = time.perf_counter() - started
    header = eb.peek(data)
    revoked_section = next(s["length"] for s in header["sections"] if s["name"] == "revoked")
    report(f"(a) bundle, {cards:,} cards, {len(revoked):,} revoked, 3,000 on roster", f"{len(data) / 1024:.1f} KiB",
           "goal ≤ 100 KiB")
    report("    of it: revoked set (exp-Golomb gaps)", f"{revoked_section / 1024:.1f} KiB",
           f"{revoked_section * 8 / len(revoked):.2f} bits/card")
    text = "\n".join(sorted(revoked)).encode()
    report("    same set as zlib -9 of sorted numbers", f"{len(zlib.compress(text, 9)) / 1024:.1f} KiB")
    report("    same set as xz of sorted numbers", f"{len(lzma.compress(text)) / 1024:.1f} KiB")
    report("    build time (encode + sign)", f"{built:.2f} s")
    return data


def bench_load(stores, data: bytes) -> None:
    root = stores.root.active_key(KeyRole.ROOT).public_key
    times = []
    for _ in range(5):
        started = time.perf_counter()
        eb.check(data, root, clock.now())
        times.append(time.perf_counter() - started)
    report("(b) station bundle load (check + decode), median of 5", f"{statistics.median(times) * 1000:.0f} ms",
           "goal ≤ 1 s")


def percentile(values, p):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))]


def bench_scans(stores, data: bytes, vpcd: bool) -> None:
    root = stores.root.active_key(KeyRole.ROOT).public_key
    folder = Path(tempfile.mkdtemp(prefix="unioncard-station-bench-"))
    station = Station(folder)
    header = eb.peek(data)
    station.pin(root_public_key=root, station_id="1", desk="bench", event_id=header["event"]["id"], server=None,
                token=None)
    station.accept_bundle(data)
    signer = stores.operational
    qrs = [credential.issue(signer, number, "Делегатова", "Анна", "Сергеевна", "23", date(2026, 1, 1)).qr_text
           for number in station.bundle.roster]
    timings = []
    for text in qrs[:2000]:
        started = time.perf_counter()
        shown = station.scan(Scan(Source.WEDGE, text=text))
        timings.append(time.perf_counter() - started)
        assert shown["code"] == "admitted", shown
    report("(c) QR scan → verdict (+ journal write), p50", f"{percentile(timings, 0.5) * 1000:.2f} ms")
    report("    QR scan → verdict (+ journal write), p99", f"{percentile(timings, 0.99) * 1000:.2f} ms",
           "goal p99 ≤ 5 ms")
    chip_cycle(station, signer, qrs[2000:2200], "sim:", None)
    if vpcd:
        from unioncard.hardware.emulator import CardFeeder
        from unioncard.hardware.vpcd import VpcdCardServer

        feeder = CardFeeder(auto_blank=False)
        server = VpcdCardServer(feeder).start()
        server.connected.wait(10)
        try:
            chip_cycle(station, signer, qrs[2200:2300], "pcsc:Virtual PCD 00 00", feeder)
        finally:
            server.stop()


def chip_cycle(station, signer, qrs, reader_config, feeder) -> None:
    from unioncard.hardware.emulator import CardFeeder, SimReader, SimSession, UnionCardChip
    from unioncard.hardware.smartcard import open_reader
    from unioncard.personalization import chip
    from unioncard.reader_station.inputs import read_chip

    chips = []
    for text in qrs:
        made = credential.parse(text)
        card = UnionCardChip()
        writer = CardFeeder(auto_blank=False)
        writer.put(card)
        chip.personalise(SimSession(writer, card), made.number, made.record,
                         lambda point, n=made.number: card_certificate.issue(signer, n, point).record)
        chips.append(card)
    if feeder is None:
        feeder = CardFeeder(auto_blank=False)
        reader = SimReader("bench-chip", feeder)
    else:
        reader = open_reader(reader_config)
    timings, apdus = [], []
    for card in chips:
        feeder.put(card)
        started = time.perf_counter()
        session = reader.wait_for_card(5)
        shown = station.scan(read_chip(session))
        timings.append(time.perf_counter() - started)
        apdus.append(session.apdu_count)
        session.close()
        feeder.take_off()
        assert shown["code"] == "admitted", shown
        if not reader_config.startswith("sim"):
            reader.wait_for_removal(2)
    report(f"    chip ({reader_config}) read + challenge → verdict, p50", f"{percentile(timings, 0.5) * 1000:.1f} ms",
           f"{statistics.median(apdus):.0f} APDUs")
    report(f"    chip ({reader_config}) read + challenge → verdict, p99", f"{percentile(timings, 0.99) * 1000:.1f} ms")


def bench_sync(args, stores, desks: int = 8, per_desk: int = 1000) -> None:
    from sqlalchemy import func, select
    from werkzeug.serving import make_server

    from unioncard.checkin import services as checkin
    from unioncard.checkin.models import CheckIn
    from unioncard.checkin_web import create_app
    from unioncard.config import Settings
    from unioncard.reader_station import sync
    from unioncard.registry import domain as d
    from unioncard.registry import services as registry
    from unioncard.registry.actor import Actor

    with scratch_database(args) as url:
        engine = db.make_engine(url)
        sessions = db.make_session_factory(engine)
        system = Actor.system("bench")
        with db.UnitOfWork(sessions) as uow:
            central = registry.create_organisation(uow, system, code="0", name="Профсоюз", level=d.Level.CENTRAL)
            uow.commit()
        with db.UnitOfWork(sessions) as uow:
            ceremony.export_trust(uow, system, stores, timedelta(days=30))
            event = checkin.create_event(uow, system, code="BENCH", name="Съезд", kind="congress",
                                         organisation_id=central.id, starts_on=clock.today(), ends_on=clock.today(),
                                         venue="Москва", admission="members")
            tokens = [checkin.enrol_station(uow, system, event.id, f"Стол {i + 1}")[1] for i in range(desks)]
            uow.commit()
        folder = Path(tempfile.mkdtemp(prefix="unioncard-sync-bench-"))
        app = create_app(Settings(instance_dir=folder / "instance", database_url=url, secret_key="bench"))
        app.extensions["unioncard"]._signer = stores.operational
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        server = make_server("127.0.0.1", 0, app, threaded=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        base = f"http://127.0.0.1:{server.server_port}"
        stations = []
        for i, token in enumerate(tokens):
            station = Station(folder / f"desk{i}")
            sync.enrol(station, base, token)
            stations.append(station)
        # 6 000 members; each desk admits 1 000 of them, offline: many reach two desks.
        rng = random.Random(3)
        numbers = [cardnumber.build(cardnumber.DEFAULT_ISSUER_PREFIX, "23", 100 + i) for i in range(6000)]
        qrs = {n: credential.issue(stores.operational, n, "Участникова", "Анна", None, "23", date(2026, 1, 1)).qr_text
               for n in numbers}
        admitted: dict[str, int] = {}
        started = time.perf_counter()
        for station in stations:
            for number in rng.sample(numbers, per_desk):
                if station.scan(Scan(Source.WEDGE, text=qrs[number]))["code"] == "admitted":
                    admitted[number] = admitted.get(number, 0) + 1
        offline = time.perf_counter() - started
        started = time.perf_counter()
        threads = [threading.Thread(target=sync.sync_once, args=(s,)) for s in stations]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        synced = time.perf_counter() - started
        # And everything again (answers lost in transit): must change nothing.
        for station in stations:
            station.journal._db.execute("UPDATE entry SET synced = 0")
        started = time.perf_counter()
        for station in stations:
            sync.sync_once(station)
        resent = time.perf_counter() - started
        with sessions() as s:
            primaries = s.execute(select(CheckIn.number, func.count()).where(
                CheckIn.kind == "checkin", CheckIn.undone.is_(False), CheckIn.duplicate.is_(False))
                .group_by(CheckIn.number)).all()
            stored = s.scalar(select(func.count()).select_from(CheckIn))
            flagged = s.scalar(select(func.count()).select_from(CheckIn).where(CheckIn.duplicate.is_(True)))
        doubles = sum(1 for _n, c in primaries if c > 1)
        report(f"(d) {desks} desks × {per_desk} offline check-ins", f"{offline:.1f} s",
               f"{sum(admitted.values())} admitted, {len(admitted)} people")
        report("    sync of all desks (in parallel, HTTP)", f"{synced:.2f} s", f"{stored} entries stored")
        report("    the same uploads again", f"{resent:.2f} s", f"stored still {stored}")
        report("    double entries (people counted twice)", f"{doubles}", "goal 0")
        report("    later check-ins flagged as duplicates", f"{flagged}",
               f"expected {sum(c - 1 for c in admitted.values())}")
        server.shutdown()
        engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cards", type=int, default=4_000_000)
    parser.add_argument("--vpcd", action="store_true", help="also read chips through pcscd + vpcd")
    add_database_arguments(parser)
    args = parser.parse_args()
    stores = keys(Path(tempfile.mkdtemp(prefix="unioncard-bench-keys-")))
    data = bench_bundle(stores, args.cards)
    bench_load(stores, data)
    bench_scans(stores, data, args.vpcd)
    bench_sync(args, stores)


if __name__ == "__main__":
    main()
