"""The personalisation bureau on the embedded devices (sim: reader, file: printer): batches,
the run, spoilage and remakes, crash recovery, shipment. The same paths on the real stack
(pcscd + vpcd, CUPS) are in test_bureau_devices.py."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from tests.support import approved_cards
from unioncard.card_layouts.model import builtin
from unioncard.card_layouts.render import CardRenderer
from unioncard.errors import Conflict, NotFound, PermissionDenied, ValidationError
from unioncard.hardware import cardapp
from unioncard.hardware.emulator import CardFeeder, SimReader, UidCard, UnionCardChip
from unioncard.hardware.errors import NoCard
from unioncard.hardware.printers import FilePrinter
from unioncard.hsm.base import open_keystore
from unioncard.hsm.domain import KeyRole
from unioncard.issuer import credential
from unioncard.issuer.models import Card, Revocation
from unioncard.personalization import services as bureau
from unioncard.personalization.domain import BatchStatus
from unioncard.personalization.models import BatchItem, PrintJob


@pytest.fixture
def signer(tmp_path):
    store = open_keystore(f"software:{tmp_path / 'keys'}", "pass", create=True)
    store.generate(KeyRole.CARD_CREDENTIAL)
    store.generate(KeyRole.CARD_CERTIFICATE)
    return store


@pytest.fixture
def renderer():
    return CardRenderer(builtin())


def new_batch(make_uow, tree, **kw):
    with make_uow() as uow:
        batches = bureau.create_batches(uow, tree.actors["bureau"], **kw)
        uow.commit()
    return batches


def runner(make_uow, tree, batch_id, signer, renderer, printer, reader, **kw):
    return bureau.BatchRun(make_uow, tree.actors["bureau"], batch_id, signer=signer, printer=printer, reader=reader,
                           renderer=renderer, card_timeout=kw.pop("card_timeout", 2), **kw)


def items(session_factory, batch_id):
    with session_factory() as s:
        return list(s.scalars(select(BatchItem).where(BatchItem.batch_id == batch_id).order_by(BatchItem.position)))


def test_batches_are_cut_by_region_and_size(make_uow, tree, session_factory):
    approved_cards(make_uow, tree, 5, "primary_a")
    approved_cards(make_uow, tree, 2, "primary_b", prefix="Другая")
    with pytest.raises(PermissionDenied):
        bureau.create_batches(None, tree.actors["chair_a"])
    batches = new_batch(make_uow, tree, max_size=2)
    assert [(b.region_code, len(items(session_factory, b.id))) for b in batches] == [
        ("21", 2), ("23", 2), ("23", 2), ("23", 1)]
    with session_factory() as s:
        assert s.scalar(select(func.count()).select_from(Card).where(Card.status == "in_production")) == 7
    with pytest.raises(ValidationError) as info:
        new_batch(make_uow, tree)
    assert info.value.code == "batch_nothing_to_do"


def test_a_run_makes_verified_chips_and_prints_every_card(make_uow, tree, session_factory, signer, renderer,
                                                          tmp_path):
    approved_cards(make_uow, tree, 7)
    batch = new_batch(make_uow, tree)[0]
    reader = SimReader("t1", CardFeeder())
    printer = FilePrinter(tmp_path / "printed")
    seen = []
    report = runner(make_uow, tree, batch.id, signer, renderer, printer, reader, chunk_size=3,
                    on_progress=lambda p: seen.append(p.done)).run()
    assert report.made == 7 and report.spoiled == 0 and report.print_jobs == 3
    assert seen[0] == 0 and seen[-1] == 7 and seen == sorted(seen)
    done = items(session_factory, batch.id)
    assert {i.stage for i in done} == {"done"}
    with session_factory() as s:
        made = [s.get(Card, i.card_id) for i in done]
        assert {c.status for c in made} == {"produced"}
        assert s.get(type(batch), batch.id).status == BatchStatus.PRODUCED
    # The chips hold each card's own credential and are locked.
    chips = reader.feeder.done
    assert len(chips) == 7 and all(c.state == cardapp.State.LOCKED for c in chips)
    assert sorted(credential.decode_record(c.file_content(cardapp.FID_CREDENTIAL)).number for c in chips) == sorted(
        c.number for c in made)
    assert {c.chip_uid for c in made} == {c.uid.hex().upper() for c in chips}
    assert len(list((tmp_path / "printed").glob("*.pdf"))) == 3


def test_pulled_card_and_bad_read_back_are_spoiled_and_remade(make_uow, tree, session_factory, signer, renderer,
                                                              tmp_path):
    approved_cards(make_uow, tree, 3)
    batch = new_batch(make_uow, tree)[0]
    feeder = CardFeeder()
    feeder.pull_after = 6                  # the first card is taken off mid-write
    broken = UnionCardChip()
    broken.corrupt_writes = True           # the second card stores a wrong byte
    feeder.waiting.append(broken)
    reader = SimReader("t2", feeder)
    report = runner(make_uow, tree, batch.id, signer, renderer, FilePrinter(tmp_path / "p"), reader).run()
    assert report.spoiled == 2 and report.made == 3
    all_items = items(session_factory, batch.id)
    spoiled = [i for i in all_items if i.stage == "spoiled"]
    assert spoiled[0].spoiled_reason == "Карту сняли со считывателя во время операции"
    assert spoiled[1].spoiled_reason == "Чип хранит не то, что в него записано (certificate): карта испорчена"
    with session_factory() as s:
        voided = [s.get(Card, i.card_id) for i in spoiled]
        assert {c.status for c in voided} == {"void"}
        assert {r.number for r in s.scalars(select(Revocation))} >= {c.number for c in voided}
        remakes = [i for i in all_items if i.remake_of in {x.id for x in spoiled}]
        assert len(remakes) == 2 and {s.get(Card, i.card_id).status for i in remakes} == {"produced"}
        for item in remakes:
            new, old = s.get(Card, item.card_id), s.get(Card, s.get(BatchItem, item.remake_of).card_id)
            assert new.person_id == old.person_id and new.number != old.number and new.replaces_card_id == old.id
        # Every member of the batch got exactly one produced card.
        persons = [s.get(Card, i.card_id).person_id for i in all_items if i.stage == "done"]
        assert len(persons) == len(set(persons)) == 3


def test_wrong_card_and_no_card_stop_the_run_and_lose_nothing(make_uow, tree, session_factory, signer, renderer,
                                                              tmp_path):
    approved_cards(make_uow, tree, 2)
    batch = new_batch(make_uow, tree)[0]
    feeder = CardFeeder(auto_blank=False)
    feeder.put(UidCard())
    reader = SimReader("t3", feeder)
    printer = FilePrinter(tmp_path / "p")
    with pytest.raises(cardapp.NotOurCard):
        runner(make_uow, tree, batch.id, signer, renderer, printer, reader).run()
    assert {i.stage for i in items(session_factory, batch.id)} == {"queued"}
    feeder.take_off()
    with pytest.raises(NoCard) as info:
        runner(make_uow, tree, batch.id, signer, renderer, printer, reader, card_timeout=0.2).run()
    assert "карт" in info.value.render().lower()
    assert {i.stage for i in items(session_factory, batch.id)} == {"queued"}
    feeder.auto_blank = True
    feeder.take_off()
    assert runner(make_uow, tree, batch.id, signer, renderer, printer, reader).run().made == 2


def killed_run_state(make_uow, session_factory, batch_id, printer, stages) -> PrintJob:
    """The batch's items in ``stages`` as a killed run leaves them, the «printing» ones in one
    print job recorded as being submitted (its printer id never written)."""
    from unioncard import clock

    batch_items = items(session_factory, batch_id)
    with make_uow() as uow:
        job = PrintJob(batch_id=batch_id, title=bureau.print_job_title(batch_id, 1), printer=printer.name,
                       status="submitting", cards=stages.count("printing"), created_at=clock.now())
        uow.session.add(job)
        uow.session.flush()
        for item, stage in zip(batch_items, stages):
            row = uow.session.get(BatchItem, item.id)
            row.stage = stage
            row.print_job_id = job.id if stage == "printing" else None
        uow.commit()
        return job


def test_crash_mid_encoding_and_unrecorded_print_job_are_recovered(make_uow, tree, session_factory, signer,
                                                                   renderer, tmp_path):
    approved_cards(make_uow, tree, 4)
    batch = new_batch(make_uow, tree)[0]
    printer = FilePrinter(tmp_path / "p")
    # State as a killed run leaves it: one card marked "encoding", two in a print job that the
    # printer received but whose id was never recorded.
    job = killed_run_state(make_uow, session_factory, batch.id, printer, ["encoding", "printing", "printing", "queued"])
    printer.submit(b"%PDF-1.4 already printed", job.title)
    report = runner(make_uow, tree, batch.id, signer, renderer, printer, SimReader("t4", CardFeeder())).run()
    final = items(session_factory, batch.id)
    assert [i.stage for i in final].count("spoiled") == 1 and report.spoiled == 1
    assert [i.stage for i in final].count("done") == 4
    # The job the printer had was adopted, not printed again.
    with session_factory() as s:
        jobs = list(s.scalars(select(PrintJob).where(PrintJob.batch_id == batch.id).order_by(PrintJob.id)))
    assert jobs[0].status == "completed" and jobs[0].printer_job == jobs[0].title
    assert sum(j.cards for j in jobs) == 4  # 2 adopted + the 2 others (one of them a remake)


def test_a_job_that_never_reached_the_printer_is_not_confused_with_another_databases(
        make_uow, tree, session_factory, signer, renderer, tmp_path):
    """A printer shared with another database (a test run, a reinstalled server) holds a finished
    job of the same batch and job numbers; our unsent job must still count as never printed."""
    approved_cards(make_uow, tree, 2)
    batch = new_batch(make_uow, tree)[0]
    printer = FilePrinter(tmp_path / "p")
    job = killed_run_state(make_uow, session_factory, batch.id, printer, ["printing", "printing"])
    stranger = bureau.print_job_title(batch.id, 1)
    assert stranger != job.title
    printer.submit(b"%PDF-1.4 someone else's cards", stranger)
    runner(make_uow, tree, batch.id, signer, renderer, printer, SimReader("t5", CardFeeder())).run()
    with session_factory() as s:
        jobs = list(s.scalars(select(PrintJob).where(PrintJob.batch_id == batch.id).order_by(PrintJob.id)))
    assert [j.status for j in jobs] == ["failed", "completed"]
    assert (tmp_path / "p" / f"{jobs[1].title}.pdf").exists()
    assert [i.stage for i in items(session_factory, batch.id)] == ["done", "done"]


def test_a_second_run_of_a_running_batch_is_refused(make_uow, tree, signer, renderer, tmp_path):
    approved_cards(make_uow, tree, 1)
    batch = new_batch(make_uow, tree)[0]
    with make_uow() as uow:
        from unioncard import clock
        from unioncard.personalization.models import Batch

        row = uow.session.get(Batch, batch.id)
        row.run_owner, row.run_heartbeat = "another-host:1", clock.now()
        uow.commit()
    with pytest.raises(Conflict) as info:
        runner(make_uow, tree, batch.id, signer, renderer, FilePrinter(tmp_path), SimReader("t5")).run()
    assert info.value.code == "batch_running"


def test_spoiled_after_print_ship_and_deliver(make_uow, tree, session_factory, signer, renderer, tmp_path):
    approved_cards(make_uow, tree, 3)
    approved_cards(make_uow, tree, 1, "primary_a2", prefix="Вторая")
    batch = new_batch(make_uow, tree)[0]
    reader, printer = SimReader("t6"), FilePrinter(tmp_path / "p")
    runner(make_uow, tree, batch.id, signer, renderer, printer, reader).run()
    bureau_actor = tree.actors["bureau"]
    with session_factory() as s:
        first = s.get(Card, items(session_factory, batch.id)[0].card_id)
    with pytest.raises(ValidationError):
        with make_uow() as uow:
            bureau.spoil_printed(uow, bureau_actor, batch.id, first.number, " ")
    with make_uow() as uow:
        remake = bureau.spoil_printed(uow, bureau_actor, batch.id, first.number, "смазана печать")
        uow.commit()
    assert remake is not None
    with pytest.raises(Conflict):
        with make_uow() as uow:
            bureau.ship(uow, bureau_actor, batch.id)
    runner(make_uow, tree, batch.id, signer, renderer, printer, reader).run()
    with make_uow() as uow:
        assert bureau.ship(uow, bureau_actor, batch.id) == 4
        uow.commit()
    with session_factory() as s:
        _, rows = bureau.manifest(s, bureau_actor, batch.id)
    assert len(rows) == 4 and first.number not in {r.number.replace(" ", "") for r in rows}
    # The region sees the parcel and marks each organisation's cards delivered; another region does not.
    with pytest.raises(NotFound):
        with session_factory() as s:
            bureau.get_batch(s, tree.actors["region_b"], batch.id)
    with make_uow() as uow:
        assert bureau.mark_delivered(uow, tree.actors["region_a"], batch.id, tree.primary_a) == 3
        uow.commit()
    with session_factory() as s:
        statuses = {s.get(Card, i.card_id).status for i in items(session_factory, batch.id) if i.stage == "done"}
    assert statuses == {"delivered", "shipped"}


def test_a_card_finished_by_a_killed_run_is_set_aside(make_uow, tree, session_factory, signer, renderer, tmp_path):
    """Killed after locking the chip but before recording it: on restart the item is spoiled, and
    the locked card still on the reader (its number now void) is put aside, not a reason to stop."""
    approved_cards(make_uow, tree, 2)
    batch = new_batch(make_uow, tree)[0]
    first = items(session_factory, batch.id)[0]
    with make_uow() as uow:
        from unioncard.issuer import services as cards
        from unioncard.personalization import chip as chip_module
        from unioncard.issuer import card_certificate as certificates

        card = uow.session.get(Card, first.card_id)
        cards.ensure_credential(uow, card, signer)
        uow.session.get(BatchItem, first.id).stage = "encoding"
        uow.commit()
        number, record = card.number, credential.parse(card.credential).record
    feeder = CardFeeder()
    leftover = feeder.current
    session = SimReader("t7", feeder).wait_for_card(1)
    chip_module.personalise(session, number, record, lambda p: certificates.issue(signer, number, p).record)
    assert leftover.state == cardapp.State.LOCKED and feeder.current is leftover  # never powered down
    report = runner(make_uow, tree, batch.id, signer, renderer, FilePrinter(tmp_path / "p"),
                    SimReader("t7", feeder)).run()
    assert report.made == 2 and report.spoiled == 1
    assert leftover in feeder.done
    with session_factory() as s:
        assert s.get(Card, first.card_id).status == "void"
