"""The bureau on the real stand-ins: pcscd with the vpcd virtual reader (a card emulator behind
it), a private cupsd with a cups-pdf queue, and independent checkers of what came out
(pdfinfo, pdftoppm + zbarimg, pdftotext)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import func, select

from tests.support import approved_cards, signing_keys
from unioncard.card_layouts.model import builtin
from unioncard.card_layouts.render import CardFace, CardRenderer
from unioncard.hardware import cardapp
from unioncard.hardware.emulator import UidCard, UnionCardChip
from unioncard.hardware.errors import NoReader, PrintFailed, PrinterNotFound
from unioncard.hardware.printers import open_printer
from unioncard.hardware.smartcard import open_reader
from unioncard.hsm.base import open_keystore
from unioncard.hsm.domain import KeyRole
from unioncard.issuer import card_certificate, credential
from unioncard.issuer.models import Card, Revocation
from unioncard.personalization import services as bureau
from unioncard.personalization.models import BatchItem, PrintJob

READER = "pcsc:Virtual PCD 00 00"
NUMBER_ON_FACE = re.compile(r"9643 \d{4} \d{4} \d{4}")


@pytest.fixture
def keys(tmp_path):
    return signing_keys(tmp_path)


def outputs(cups_queue, since: set) -> list[Path]:
    return sorted(set(cups_queue["out"].glob("*job_*.pdf")) - since)


def numbers_printed(paths) -> Counter:
    """How many times each card was printed, read from what the printer produced: a card
    prints its number on both faces. (cups-pdf's conversion keeps digits as text, not Cyrillic.)"""
    found = Counter()
    for path in paths:
        text = subprocess.run(["pdftotext", str(path), "-"], capture_output=True, text=True, check=True).stdout
        for page in text.split("\f"):
            numbers = set(NUMBER_ON_FACE.findall(page))
            for number in numbers:
                found[number.replace(" ", "")] += 1
    # Both faces carry the number; the converted back face may or may not keep it as text.
    return Counter({number: (count + 1) // 2 for number, count in found.items()})


def test_a_thousand_cards_through_cups_and_the_virtual_reader(make_uow, tree, session_factory, keys, cups_queue,
                                                              virtual_card, tmp_path):
    store, bundle = keys
    approved_cards(make_uow, tree, 1000)
    with make_uow() as uow:
        batch = bureau.create_batches(uow, tree.actors["bureau"], max_size=1000)[0]
        uow.commit()
    before = set(cups_queue["out"].glob("*"))
    printer = open_printer(f"cups:{cups_queue['queue']}")
    waited = []
    original_wait = printer.wait

    def timed_wait(job, timeout):
        begin = time.monotonic()
        try:
            return original_wait(job, timeout)
        finally:
            waited.append(time.monotonic() - begin)

    printer.wait = timed_wait
    started = time.monotonic()
    report = bureau.BatchRun(make_uow, tree.actors["bureau"], batch.id, signer=store, printer=printer,
                             reader=open_reader(READER), renderer=CardRenderer(builtin()), chunk_size=100,
                             card_timeout=10).run()
    elapsed = time.monotonic() - started
    print(f"1000 cards: {elapsed:.1f} s (of which waiting for CUPS {sum(waited):.1f} s), "
          f"{report.apdus / 1000:.1f} APDUs per card")
    assert report.made == 1000 and report.spoiled == 0 and report.print_jobs == 10
    with session_factory() as s:
        made = {c.number: c for c in s.scalars(select(Card).where(Card.status == "produced"))}
        assert len(made) == 1000
        assert s.scalar(select(func.count()).select_from(PrintJob).where(PrintJob.status == "completed")) == 10
    # What CUPS printed: every card once, at card size.
    printed = outputs(cups_queue, before)
    assert len(printed) == 10
    info = subprocess.run(["pdfinfo", str(printed[0])], capture_output=True, text=True, check=True).stdout
    assert re.search(r"Pages:\s+200\b", info) and "242.65 x 153.01 pts" in info
    assert numbers_printed(printed) == Counter({number: 1 for number in made})
    # An independent reader scans the first printed face: barcode = number, QR = a credential
    # that verifies with the published keys and names the same card and person.
    first = printed[0]
    subprocess.run(["pdftoppm", "-r", "300", "-png", "-f", "1", "-l", "1", str(first), str(first.with_suffix(""))],
                   check=True)
    png = next(first.parent.glob(first.stem + "*.png"))
    scanned = subprocess.run(["zbarimg", "-q", "--raw", "-Sbinary=0", str(png)], capture_output=True,
                             text=True).stdout.split("\n")
    barcode = next(line for line in scanned if line.isdigit())
    qr = next(line for line in scanned if line.startswith("UC1:"))
    assert barcode in made
    checked = credential.verify(qr, bundle)
    assert checked.number == barcode
    person = made[barcode].person
    assert checked.full_name.startswith(person.surname)
    # The PDF the bureau sends keeps the Cyrillic as text (the printer's own copy is rasterised).
    with session_factory() as s:
        card = s.scalar(select(Card).where(Card.number == barcode))
        face = CardFace(bureau.face_values(card, "Краснодарская краевая организация", "Профсоюз"))
        sent = tmp_path / "sent.pdf"
        sent.write_bytes(CardRenderer(builtin()).pdf([face]))
    text = subprocess.run(["pdftotext", str(sent), "-"], capture_output=True, text=True).stdout
    assert person.surname.upper() in text and "Анна Сергеевна" in text and "Краснодарская" in text
    # The chips: each holds its own card's credential and a certificate the union signed.
    chips = virtual_card.done
    assert len(chips) == 1000
    chip = chips[0]
    record = credential.check_signature(credential.decode_record(chip.file_content(cardapp.FID_CREDENTIAL)), bundle)
    certificate = card_certificate.check_signature(
        card_certificate.decode(chip.file_content(cardapp.FID_CERTIFICATE)), bundle)
    assert certificate.number == record.number and record.number in made
    assert made[record.number].chip_uid == chip.uid.hex().upper()


def test_faults_on_the_real_reader_and_printer(make_uow, tree, session_factory, keys, cups_queue, virtual_card):
    store, _ = keys
    approved_cards(make_uow, tree, 3)
    with make_uow() as uow:
        batch = bureau.create_batches(uow, tree.actors["bureau"])[0]
        uow.commit()
    printer = open_printer(f"cups:{cups_queue['queue']}")

    def run():
        return bureau.BatchRun(make_uow, tree.actors["bureau"], batch.id, signer=store, printer=printer,
                               reader=open_reader(READER), renderer=CardRenderer(builtin()), card_timeout=5).run()

    # A card of another kind on the reader: nothing is written, nothing lost, the run stops.
    virtual_card.put(UidCard())
    with pytest.raises(cardapp.NotOurCard):
        run()
    virtual_card.take_off()
    # The queue refuses jobs: the chips are written, the cards wait to be printed again.
    subprocess.run(["cupsreject", "-h", cups_queue["server"], cups_queue["queue"]], check=True)
    virtual_card.pull_after = 5             # the first card is pulled off mid-write
    broken = UnionCardChip()
    broken.corrupt_writes = True            # the next one keeps a wrong byte
    virtual_card.waiting.append(broken)
    with pytest.raises(PrintFailed):
        run()
    with session_factory() as s:
        stages = Counter(i.stage for i in s.scalars(select(BatchItem).where(BatchItem.batch_id == batch.id)))
        # The remakes of the two spoiled cards wait at the end of the queue.
        assert stages == Counter({"encoded": 1, "spoiled": 2, "queued": 2})
        assert s.scalar(select(func.count()).select_from(Revocation)) == 2
    encoded_chips = len(virtual_card.done)
    subprocess.run(["cupsaccept", "-h", cups_queue["server"], cups_queue["queue"]], check=True)
    report = run()
    # The encoded card is printed again, not encoded again; only the two remakes get chips now.
    assert report.made == 3 and len(virtual_card.done) == encoded_chips + 2
    with session_factory() as s:
        produced = list(s.scalars(select(Card).where(Card.status == "produced")))
        assert len({c.person_id for c in produced}) == 3


def test_missing_devices_get_clear_errors(pcscd, cups_queue):
    with pytest.raises(PrinterNotFound) as info:
        open_printer("cups:nosuchqueue")
    assert cups_queue["queue"] in info.value.render("en")
    with pytest.raises(NoReader) as info:
        open_reader("pcsc:Reader that is not there")
    assert "Virtual PCD 00 00" in info.value.render("en")


def _cli(env, *args, **kw):
    return subprocess.Popen([sys.executable, "-m", "unioncard", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, **kw)


def test_kill_9_at_any_moment_and_resume(make_uow, tree, session_factory, database_url, tmp_path, cups_queue,
                                         virtual_card):
    members = 120
    approved_cards(make_uow, tree, members)
    with make_uow() as uow:
        batch = bureau.create_batches(uow, tree.actors["bureau"])[0]
        uow.commit()
    env = dict(os.environ, UNIONCARD_DATABASE_URL=database_url, UNIONCARD_INSTANCE_DIR=str(tmp_path / "instance"),
               UNIONCARD_KEYSTORE=f"software:{tmp_path / 'keys'}", UNIONCARD_KEYSTORE_SECRET="kill test",
               UNIONCARD_BUREAU_PRINTER=f"cups:{cups_queue['queue']}", UNIONCARD_BUREAU_READER=READER,
               UNIONCARD_PROGRESS_LINES="1", CUPS_SERVER=cups_queue["server"])
    store = open_keystore(env["UNIONCARD_KEYSTORE"], "kill test", create=True)
    store.generate(KeyRole.CARD_CREDENTIAL)
    store.generate(KeyRole.CARD_CERTIFICATE)
    before = set(cups_queue["out"].glob("*"))
    kills = 0
    # Kill the run at different moments (early, mid-chip, mid-print), then let one finish.
    for delay in (0.9, 1.7, 2.3, 3.1, None):
        process = _cli(env, "bureau", "run", str(batch.id), "--chunk", "20", "--card-timeout", "10")
        if delay is None:
            output, _ = process.communicate(timeout=600)
            assert process.returncode == 0, output
            break
        time.sleep(delay)
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
            kills += 1
        process.wait()
    assert kills >= 3
    with session_factory() as s:
        items = list(s.scalars(select(BatchItem).where(BatchItem.batch_id == batch.id)))
        cards = {c.id: c for c in s.scalars(select(Card).where(Card.id.in_([i.card_id for i in items])))}
        done = [cards[i.card_id] for i in items if i.stage == "done"]
        spoiled = [cards[i.card_id] for i in items if i.stage == "spoiled"]
        revoked = {r.number for r in s.scalars(select(Revocation))}
        jobs = list(s.scalars(select(PrintJob).where(PrintJob.batch_id == batch.id)))
    # Every member has exactly one finished card; no number twice; every spoiled number revoked.
    assert len(done) == members and len({c.person_id for c in done}) == members
    all_numbers = [c.number for c in cards.values()]
    assert len(all_numbers) == len(set(all_numbers))
    assert {c.status for c in done} == {"produced"} and {c.status for c in spoiled} <= {"void"}
    assert {c.number for c in spoiled} <= revoked
    # Printed once each, and any card printed twice is in a job recorded as failed.
    printed = numbers_printed(outputs(cups_queue, before))
    wrong = {c.number: printed[c.number] for c in done if printed[c.number] != 1}
    assert not wrong, (wrong, [(j.id, j.title, j.status, j.printer_job, j.detail) for j in jobs])
    recorded_failures = sum(j.cards for j in jobs if j.status == "failed")
    assert sum(count - 1 for count in printed.values() if count > 1) <= recorded_failures
    print(f"kills: {kills}, spoiled by interruption: {len(spoiled)}, print jobs: {len(jobs)}")
