"""Bureau benchmarks (issue 5).

    .venv/bin/python bench/bureau_bench.py                   # PostgreSQL on 127.0.0.1
    .venv/bin/python bench/bureau_bench.py --database sqlite
    .venv/bin/python bench/bureau_bench.py --vpcd             # also the chip cycle through pcscd + vpcd

(a) numbers and signed credentials for 100 000 cards — goal ≥ 5 000 cards/s;
    and the same path through the database (make_credentials: one query per 5 000 cards,
    signing on --workers cores, COPY) for 100 000 approved cards — goal ≥ 20 000 cards/s, against bare Ed25519
    signing on as many cores in the same run;
(b) front and back faces of 10 000 cards into one PDF, one core — goal ≥ 500 cards/s; and the
    peer: glabels-3-batch (Debian's gLabels) merging the same card data from a CSV into a front
    face with the same texts, Code 128 barcode and QR code (bench/peers/card_front.glabels),
    against our front faces of the same rows, in the same run;
(c) one encode-and-verify cycle against the card emulator: APDUs and milliseconds per card
    (in-process sim: reader; with --vpcd also through the real pcscd and the vpcd reader).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import date

from benchkit import add_database_arguments, letters, one_primary_with_members, report, scratch_database

from unioncard import db
from unioncard.card_layouts.model import builtin
from unioncard.card_layouts.render import CardFace, CardRenderer
from unioncard.hsm.base import open_keystore
from unioncard.hsm.domain import KeyRole
from unioncard.issuer import card_certificate, cardnumber, credential
from unioncard.issuer import services as cards
from unioncard.personalization import chip
from unioncard.registry.actor import Actor


def chip_cycles(reader, signer, count: int) -> tuple[float, float, float]:
    made = credential.issue(signer, cardnumber.build("964301", "23", 1), "Иванова", "Мария", "Петровна", "23",
                            date(2026, 11, 22))
    times, apdus = [], []
    for _ in range(count):
        started = time.perf_counter()
        session = reader.wait_for_card(10)
        try:
            result = chip.personalise(session, made.number, made.record,
                                      lambda point: card_certificate.issue(signer, made.number, point).record)
        finally:
            session.close()
        times.append(time.perf_counter() - started)
        apdus.append(result.apdus)
    times.sort()
    return statistics.mean(apdus), 1000 * statistics.median(times), 1000 * times[int(0.99 * (len(times) - 1))]


def glabels_peer(faces, renderer) -> tuple[float, float] | None:
    """Median seconds of three paired runs: our front faces of ``faces``, and glabels-3-batch
    merging the same values from a CSV into bench/peers/card_front.glabels."""
    import csv
    import shutil
    import subprocess
    from pathlib import Path

    if not shutil.which("glabels-3-batch"):
        report("    gLabels peer", "glabels-3-batch is not installed (apt-get install glabels)")
        return None
    work = Path(tempfile.mkdtemp(prefix="unioncard-glabels-"))
    shutil.copy(Path(__file__).parent / "peers" / "card_front.glabels", work / "card.glabels")
    with open(work / "cards.csv", "w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["union_name", "surname", "given_names", "region_name", "number", "digits", "credential"])
        for face in faces:
            writer.writerow([face.value("union_name"), face.value("surname").upper(), face.value("given_names"),
                             face.value("region_name"), face.value("number"), face.value("number").replace(" ", ""),
                             face.value("credential")])
    ours, theirs = [], []
    for _ in range(3):
        started = time.perf_counter()
        renderer.pdf(faces, faces=("front",))
        ours.append(time.perf_counter() - started)
        started = time.perf_counter()
        subprocess.run(["glabels-3-batch", "-o", str(work / "out.pdf"), "-i", str(work / "cards.csv"),
                        str(work / "card.glabels")], cwd=work, check=True, capture_output=True)
        theirs.append(time.perf_counter() - started)
    shutil.rmtree(work, ignore_errors=True)
    return statistics.median(ours), statistics.median(theirs)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_database_arguments(parser)
    parser.add_argument("--cards", type=int, default=100_000)
    parser.add_argument("--db-cards", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=2, help="cores signing the credentials of the batch")
    parser.add_argument("--faces", type=int, default=10_000)
    parser.add_argument("--glabels-cards", type=int, default=2_000,
                        help="rows the gLabels peer merges (it is about 20× slower than we are)")
    parser.add_argument("--chips", type=int, default=200)
    parser.add_argument("--vpcd", action="store_true")
    args = parser.parse_args()
    keys = tempfile.TemporaryDirectory()
    signer = open_keystore(f"software:{keys.name}", "bench", create=True)
    signer.generate(KeyRole.CARD_CREDENTIAL)
    signer.generate(KeyRole.CARD_CERTIFICATE)

    with scratch_database(args) as url:
        engine = db.make_engine(url)
        sessions = db.make_session_factory(engine)
        # (a) numbers reserved in the database, credentials signed and encoded for the QR.
        started = time.perf_counter()
        with db.UnitOfWork(sessions) as uow:
            numbers = cards.assign_numbers(uow.session, "23", args.cards)
            uow.commit()
        texts = [credential.issue(signer, number, "Константинопольская", "Мария", "Петровна", "23",
                                  date(2026, 11, 22)).qr_text for number in numbers]
        elapsed = time.perf_counter() - started
        report(f"(a) numbers + signed credentials, {args.cards} cards", f"{args.cards / elapsed:,.0f} cards/s"
               .replace(",", " "), "goal ≥ 5 000/s")
        report("    credential QR text length", f"{max(len(t) for t in texts)} characters (QR v ≤ 10-M: 311)")

        region, primary, membership_ids = one_primary_with_members(sessions, args.db_cards)
        admin = Actor.system("bench")
        ordered = []
        for first in range(0, len(membership_ids), 10_000):
            with db.UnitOfWork(sessions) as uow:
                part = cards.order_cards(uow, admin, membership_ids[first:first + 10_000]).ordered
                cards.approve(uow, admin, [c.id for c in part])
                uow.commit()
            ordered += part
        started = time.perf_counter()
        with db.UnitOfWork(sessions) as uow:
            made = cards.make_credentials(uow.session, [c.id for c in ordered], signer, workers=args.workers)
            uow.commit()
        assert len(made) == len(ordered)
        elapsed = time.perf_counter() - started
        # The peer: bare Ed25519 signatures of the same payload size on one core (cryptography),
        # times the cores used: what signing alone would allow.
        from cryptography.hazmat.primitives.asymmetric import ed25519

        bare_key, payload = ed25519.Ed25519PrivateKey.generate(), bytes(100)
        bare_started = time.perf_counter()
        for _ in range(20_000):
            bare_key.sign(payload)
        bare_rate = 20_000 / (time.perf_counter() - bare_started) * args.workers
        ours = args.db_cards / elapsed
        report(f"(a) credentials made and stored for {args.db_cards} approved cards, {args.workers} cores",
               f"{ours:,.0f} cards/s".replace(",", " "),
               f"goal ≥ 20 000/s; {ours / bare_rate:.2f} of bare Ed25519 signing on {args.workers} cores "
               f"({bare_rate:,.0f}/s)".replace(",", " "))
        engine.dispose()

    # (b) faces into one PDF.
    renderer = CardRenderer(builtin())
    faces = [CardFace({"surname": f"Замеров{letters(i)}", "given_names": "Иван Петрович",
                       "number": cardnumber.format(numbers[i % len(numbers)]), "credential": texts[i % len(texts)],
                       "region_name": "Краснодарская краевая организация", "issued_on": "22.11.2026",
                       "union_name": "Общероссийский профессиональный союз работников"}) for i in range(args.faces)]
    started = time.perf_counter()
    pdf = renderer.pdf(faces)
    elapsed = time.perf_counter() - started
    report(f"(b) front + back faces of {args.faces} cards into one PDF",
           f"{args.faces / elapsed:,.0f} cards/s".replace(",", " "), "goal ≥ 500/s")
    report("    PDF size", f"{len(pdf) / args.faces / 1024:.1f} KiB per card")
    peer = glabels_peer(faces[:args.glabels_cards], renderer)
    if peer:
        ours_s, glabels_s = peer
        count = min(args.glabels_cards, len(faces))
        report(f"    front faces of the same {count} rows: ours / glabels-3-batch",
               f"{count / ours_s:,.0f} / {count / glabels_s:,.0f} cards/s".replace(",", " "),
               f"{glabels_s / ours_s:.1f}× gLabels (median of 3 paired runs)")

    # (c) chip cycle.
    from unioncard.hardware.emulator import SimReader

    apdus, p50, p99 = chip_cycles(SimReader("bench"), signer, args.chips)
    report("(c) encode + read back + challenge, sim: reader", f"{apdus:.0f} APDUs, p50 {p50:.1f} ms, p99 {p99:.1f} ms")
    if args.vpcd:
        from unioncard.hardware.emulator import CardFeeder
        from unioncard.hardware.smartcard import open_reader
        from unioncard.hardware.vpcd import VpcdCardServer

        server = VpcdCardServer(CardFeeder()).start()
        server.connected.wait(10)
        reader = open_reader("pcsc:Virtual PCD 00 00")
        reader.wait_for_card(10).close()
        apdus, p50, p99 = chip_cycles(reader, signer, args.chips)
        report("(c) the same through pcscd + vpcd", f"{apdus:.0f} APDUs, p50 {p50:.1f} ms, p99 {p99:.1f} ms")
        server.stop()
    signer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
