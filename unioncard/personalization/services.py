"""The bureau: batches from approved orders, the crash-safe run that encodes and prints them,
spoilage, shipment and delivery. Every status change of a card goes through the issuer's state
machine; this module only keeps the bureau's own records (batches, items, print jobs)."""

from __future__ import annotations

import os
import secrets
import socket
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import func, insert, select, update

from unioncard import clock
from unioncard.db import UnitOfWork, chunked
from unioncard.errors import Conflict, NotFound, PermissionDenied, ValidationError
from unioncard.hardware.errors import CardCommunicationError, CardRemoved, DeviceError, NoCard, PrintFailed
from unioncard.hardware import cardapp
from unioncard.i18n import N_, translate
from unioncard.issuer import card_certificate, cardnumber, credential
from unioncard.issuer import services as cards
from unioncard.issuer.domain import CardKind, CardStatus
from unioncard.issuer.models import Card
from unioncard.personalization import chip
from unioncard.personalization.domain import (BatchStatus, Encoding, JobStatus, Progress, Stage, can_move,
                                              plan_batches)
from unioncard.personalization.models import Batch, BatchItem, PrintJob
from unioncard.registry import audit
from unioncard.registry import domain as rd
from unioncard.registry.actor import Actor
from unioncard.registry.models import Organisation

HEARTBEAT_STALE = timedelta(seconds=60)


class BatchBusy(Conflict):
    code = "batch_running"
    message = N_("This batch is being run right now (%(owner)s)")


# --- reading ------------------------------------------------------------------------------------

def _check_bureau(actor: Actor) -> None:
    if not actor.can(rd.Permission.PRODUCE_CARDS):
        raise PermissionDenied()


def get_batch(session, actor: Actor, batch_id: int, *, for_update: bool = False) -> Batch:
    """The bureau sees its batches; a region sees the batches sent to it; nobody else sees any."""
    query = select(Batch).where(Batch.id == batch_id)
    if for_update:
        query = query.with_for_update()
    batch = session.scalar(query)
    if batch is None or not (actor.can(rd.Permission.PRODUCE_CARDS) and actor.sees(batch.region_path)
                             or actor.can(rd.Permission.APPROVE_CARDS) and actor.sees(batch.region_path)
                             and batch.status == BatchStatus.SHIPPED):
        raise NotFound(N_("Batch not found"), code="batch_not_found")
    return batch


def list_batches(session, actor: Actor, limit: int = 200) -> list[Batch]:
    query = select(Batch).order_by(Batch.id.desc()).limit(limit)
    if not actor.can(rd.Permission.PRODUCE_CARDS):
        query = query.where(Batch.status == BatchStatus.SHIPPED.value)
    return [b for b in session.scalars(query) if actor.sees(b.region_path)]


def progress(session, batch_id: int) -> Progress:
    counts = dict(session.execute(select(BatchItem.stage, func.count()).where(BatchItem.batch_id == batch_id)
                                  .group_by(BatchItem.stage)).all())
    return Progress(total=sum(counts.values()), by_stage=counts)


def progress_many(session, batch_ids) -> dict[int, Progress]:
    result = {batch_id: Progress() for batch_id in batch_ids}
    for chunk in chunked(list(batch_ids)):
        for batch_id, stage, count in session.execute(
                select(BatchItem.batch_id, BatchItem.stage, func.count()).where(BatchItem.batch_id.in_(chunk))
                .group_by(BatchItem.batch_id, BatchItem.stage)):
            result[batch_id].by_stage[stage] = count
            result[batch_id].total += count
    return result


def _region(session, region_code: str) -> Organisation | None:
    return session.scalar(select(Organisation).where(Organisation.level == rd.Level.REGIONAL.value,
                                                     Organisation.region_code == region_code,
                                                     Organisation.removed_on.is_(None)))


def waiting_by_region(session, actor: Actor) -> list[tuple[str, str, int]]:
    """Approved plastic cards not yet in a batch, per region: (code, region name, count)."""
    _check_bureau(actor)
    in_batch = select(BatchItem.card_id)
    rows = session.execute(select(Card.region_code, func.count()).where(
        Card.kind == CardKind.PLASTIC.value, Card.status == CardStatus.APPROVED.value, Card.id.not_in(in_batch))
        .group_by(Card.region_code).order_by(Card.region_code)).all()
    result = []
    for code, count in rows:
        region = _region(session, code)
        result.append((code, region.name if region else code, count))
    return result


# --- creating batches ---------------------------------------------------------------------------

def create_batches(uow: UnitOfWork, actor: Actor, *, region_codes=None, max_size: int = 500,
                   encoding: Encoding = Encoding.CHIP, layout: str = "union") -> list[Batch]:
    """Cut the approved plastic cards (of the given regions, or all) into batches of at most
    ``max_size`` per region; their cards go into production."""
    _check_bureau(actor)
    encoding = Encoding(encoding)
    session = uow.session
    query = (select(Card).where(Card.kind == CardKind.PLASTIC.value, Card.status == CardStatus.APPROVED.value,
                                Card.id.not_in(select(BatchItem.card_id)))
             .order_by(Card.region_code, Card.org_path, Card.id).with_for_update(of=Card))
    if region_codes:
        query = query.where(Card.region_code.in_(list(region_codes)))
    found = [card for card in session.scalars(query) if actor.sees(card.org_path)]
    if not found:
        raise ValidationError(N_("There are no approved cards waiting for production"), code="batch_nothing_to_do")
    by_region: dict[str, list[Card]] = {}
    for card in found:
        by_region.setdefault(card.region_code, []).append(card)
    try:
        plan = plan_batches({code: [c.id for c in cards_] for code, cards_ in by_region.items()}, max_size)
    except ValueError:
        raise ValidationError(N_("A batch holds from 1 to 5000 cards"), code="batch_size_invalid") from None
    cards.transition_many(uow, actor, found, CardStatus.IN_PRODUCTION)
    now = clock.now()
    batches = []
    for region_code, card_ids in plan:
        region = _region(session, region_code)
        batch = Batch(region_code=region_code, region_organisation_id=region.id if region else None,
                      region_path=region.path if region else "/", status=BatchStatus.OPEN.value,
                      encoding=encoding.value, layout=layout, created_at=now, created_by=actor.user_id)
        session.add(batch)
        session.flush()
        session.execute(insert(BatchItem), [
            dict(batch_id=batch.id, card_id=card_id, position=index, stage=Stage.QUEUED.value, updated_at=now)
            for index, card_id in enumerate(card_ids, 1)])
        audit.record(session, actor, "bureau.batch_created", "batch", batch.id, batch.region_organisation_id,
                     cards=len(card_ids), encoding=encoding, region=region_code)
        batches.append(batch)
    return batches


# --- what a card prints -------------------------------------------------------------------------

def face_values(card: Card, region_name: str, union_name: str) -> dict:
    person = card.person
    made = credential.parse(card.credential)
    return {"surname": person.surname, "given_names": " ".join(filter(None, [person.given_name, person.patronymic])),
            "full_name": " ".join(filter(None, [person.surname, person.given_name, person.patronymic])),
            "number": cardnumber.format(card.number), "credential": card.credential, "region_name": region_name,
            "issued_on": made.issued_on.strftime("%d.%m.%Y"), "union_name": union_name}


def region_name(session, batch: Batch) -> str:
    org = session.get(Organisation, batch.region_organisation_id) if batch.region_organisation_id else None
    return org.name if org else batch.region_code


def union_name(session) -> str:
    central = session.scalar(select(Organisation).where(Organisation.level == rd.Level.CENTRAL.value)
                             .order_by(Organisation.id))
    return central.name if central else ""


# --- the run --------------------------------------------------------------------------------------

@dataclass
class RunReport:
    made: int = 0
    spoiled: int = 0
    print_jobs: int = 0
    apdus: int = 0


def _owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _owner_is_dead(owner: str) -> bool:
    host, _, pid = owner.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def print_job_title(batch_id: int, job_id: int) -> str:
    """The name a print job carries on the printer, by which a restarted run finds it again.
    The random part keeps it unique across databases sharing a printer (a test database, a
    reinstalled server): batch and job ids alone repeat, and a stranger's finished job with our
    name would count our unprinted cards as printed."""
    return f"unioncard-b{batch_id}-j{job_id}-{secrets.token_hex(4)}"


def require_open(batch: Batch) -> None:
    """Only an open batch is run (a finished one again is refused, not made twice)."""
    if batch.status != BatchStatus.OPEN.value:
        raise Conflict(N_("This batch has already been produced"), code="batch_not_open")


class BatchRun:
    """Runs one batch to the end, or until a device needs a person; safe to kill at any moment
    and start again. Each step is committed before the next device action."""

    def __init__(self, uow_factory, actor: Actor, batch_id: int, *, signer, printer, reader=None,
                 renderer=None, chunk_size: int = 50, card_timeout: float = 30.0, print_timeout: float = 120.0,
                 on_progress=None, issuer_prefix: str = cardnumber.DEFAULT_ISSUER_PREFIX):
        _check_bureau(actor)
        self.uow_factory = uow_factory
        self.actor = actor
        self.batch_id = batch_id
        self.signer = signer
        self.printer = printer
        self.reader = reader
        self.renderer = renderer
        self.chunk_size = chunk_size
        self.card_timeout = card_timeout
        self.print_timeout = print_timeout
        self.on_progress = on_progress or (lambda progress: None)
        self.issuer_prefix = issuer_prefix
        self.owner = _owner()
        self.report = RunReport()
        self._names: tuple[str, str] | None = None

    # -- ownership
    def _take(self, uow: UnitOfWork) -> Batch:
        batch = get_batch(uow.session, self.actor, self.batch_id, for_update=True)
        now = clock.now()
        if batch.run_owner and batch.run_owner != self.owner:
            fresh = batch.run_heartbeat and now - batch.run_heartbeat < HEARTBEAT_STALE
            if fresh and not _owner_is_dead(batch.run_owner):
                raise BatchBusy(owner=batch.run_owner)
        batch.run_owner = self.owner
        batch.run_heartbeat = now
        return batch

    def _beat(self, uow: UnitOfWork) -> None:
        uow.session.execute(update(Batch).where(Batch.id == self.batch_id)
                            .values(run_heartbeat=clock.now(), run_owner=self.owner))

    def _release(self, error: str | None) -> None:
        with self.uow_factory() as uow:
            uow.session.execute(update(Batch).where(Batch.id == self.batch_id, Batch.run_owner == self.owner)
                                .values(run_owner=None, run_heartbeat=None, last_error=error))
            uow.commit()

    def _progress(self) -> None:
        with self.uow_factory() as uow:
            state = progress(uow.session, self.batch_id)
        # Outside the read: a listener may write (a job records its progress), and SQLite has one
        # writer at a time.
        self.on_progress(state)

    def run(self) -> RunReport:
        with self.uow_factory() as uow:
            batch = self._take(uow)
            require_open(batch)
            self.encoding = Encoding(batch.encoding)
            if self.encoding != Encoding.NONE and self.reader is None:
                raise ValidationError(N_("This batch needs a card reader for the chips"), code="reader_required")
            self._names = (region_name(uow.session, batch), union_name(uow.session))
            uow.commit()
        try:
            self._recover()
            self._progress()
            while self._step():
                self._progress()
            self._finish()
        except DeviceError as exc:
            self._release(exc.render())
            raise
        except BaseException:
            self._release(None)
            raise
        self._release(None)
        return self.report

    # -- steps
    def _items(self, session, stages, limit=None, job_id=None) -> list[BatchItem]:
        query = (select(BatchItem).where(BatchItem.batch_id == self.batch_id,
                                         BatchItem.stage.in_([s.value for s in stages]))
                 .order_by(BatchItem.position))
        if job_id is not None:
            query = query.where(BatchItem.print_job_id == job_id)
        if limit:
            query = query.limit(limit)
        return list(session.scalars(query))

    def _move(self, item: BatchItem, target: Stage, **values) -> None:
        if not can_move(Stage(item.stage), target):
            raise Conflict(N_("A bureau card cannot go from %(from_stage)s to %(to_stage)s"),
                           code="bureau_stage_invalid", from_stage=item.stage, to_stage=target.value)
        item.stage = target.value
        item.updated_at = clock.now()
        for key, value in values.items():
            setattr(item, key, value)

    def _recover(self) -> None:
        """After a crash: a card caught mid-encoding is spoiled; print jobs not known to have
        finished are looked up on the printer (by title) before anything is printed again."""
        with self.uow_factory() as uow:
            for item in self._items(uow.session, [Stage.ENCODING]):
                self._spoil(uow, item, translate(N_("interrupted while the chip was being written")))
            uow.commit()
        with self.uow_factory() as uow:
            jobs = uow.session.execute(select(PrintJob.id, PrintJob.title, PrintJob.printer_job).where(
                PrintJob.batch_id == self.batch_id,
                PrintJob.status.in_([JobStatus.SUBMITTING.value, JobStatus.SUBMITTED.value])).order_by(PrintJob.id)).all()
        for job_id, title, recorded in jobs:
            printer_job = recorded or self.printer.find(title)
            if printer_job is None:
                self._job_failed(job_id, translate(N_("never reached the printer")))
                continue
            if not recorded:
                with self.uow_factory() as uow:
                    uow.session.execute(update(PrintJob).where(PrintJob.id == job_id).values(
                        printer_job=printer_job, status=JobStatus.SUBMITTED.value))
                    uow.commit()
            self._await_job(job_id, printer_job)

    def _step(self) -> bool:
        with self.uow_factory() as uow:
            ready = [i.id for i in self._items(uow.session, [Stage.ENCODED], limit=self.chunk_size)]
            queued = [i.id for i in self._items(uow.session, [Stage.QUEUED], limit=self.chunk_size - len(ready))] \
                if len(ready) < self.chunk_size else []
        if not ready and not queued:
            return False
        for item_id in queued:
            self._encode(item_id)
        with self.uow_factory() as uow:
            ready = [i.id for i in self._items(uow.session, [Stage.ENCODED], limit=self.chunk_size)]
        if ready:
            self._print(ready)
        return True

    def _encode(self, item_id: int) -> None:
        with self.uow_factory() as uow:
            item = uow.session.get(BatchItem, item_id)
            if self.encoding == Encoding.NONE:
                self._move(item, Stage.ENCODED)
                uow.commit()
                return
            card = uow.session.get(Card, item.card_id)
            cards.ensure_credential(uow, card, self.signer)
            number, record = card.number, credential.parse(card.credential).record
            self._move(item, Stage.ENCODING)
            self._beat(uow)
            uow.commit()
        session = None
        try:
            for attempt in (1, 2):
                session = self.reader.wait_for_card(self.card_timeout)
                if self.encoding != Encoding.CHIP:
                    result = chip.read_uid(session)
                    break
                try:
                    result = chip.personalise(session, number, record,
                                              lambda point: card_certificate.issue(self.signer, number, point).record)
                    break
                except cardapp.CardNotBlank:
                    if attempt == 2 or not self._left_by_interrupted_run(session):
                        raise
                    # Power it down (an encoder ejects it) and take the next card.
                    session.close()
                    session = None
                    self.reader.wait_for_removal(self.card_timeout)
        except (cardapp.NotOurCard, cardapp.CardNotBlank, NoCard):
            # Nothing was written: the card stays in the queue and a person must act.
            self._back_to_queue(item_id)
            raise
        except (CardRemoved, CardCommunicationError, chip.ReadBackFailed, card_certificate.CertificateError) as exc:
            with self.uow_factory() as uow:
                self._spoil(uow, uow.session.get(BatchItem, item_id), exc.render())
                uow.commit()
            return
        finally:
            if session is not None:
                session.close()
        self.report.apdus += result.apdus
        with self.uow_factory() as uow:
            item = uow.session.get(BatchItem, item_id)
            card = uow.session.get(Card, item.card_id)
            if uow.session.scalar(select(Card.id).where(Card.chip_uid == result.uid, Card.id != card.id)):
                uow.rollback()
                self._back_to_queue(item_id)
                raise chip.UidAlreadyBound()
            card.chip_uid, card.chip_key = result.uid, result.key_fingerprint
            self._move(item, Stage.ENCODED, chip_uid=result.uid, chip_key=result.key_fingerprint)
            uow.commit()

    def _left_by_interrupted_run(self, session) -> bool:
        """A locked card on the reader holding a number this bureau has since voided: the card a
        killed run finished writing but never recorded (its item was spoiled on recovery)."""
        try:
            number = credential.decode_record(cardapp.read_file(session, cardapp.FID_CREDENTIAL)).number
        except (credential.CredentialError, CardCommunicationError):
            return False
        with self.uow_factory() as uow:
            return uow.session.scalar(select(Card.status).where(Card.number == number)) == CardStatus.VOID.value

    def _back_to_queue(self, item_id: int) -> None:
        with self.uow_factory() as uow:
            item = uow.session.get(BatchItem, item_id)
            if item.stage == Stage.ENCODING.value:
                self._move(item, Stage.QUEUED)
            uow.commit()

    def _spoil(self, uow: UnitOfWork, item: BatchItem, reason: str) -> None:
        self._move(item, Stage.SPOILED)
        _spoil_and_remake(uow, self.actor, item, reason, self.issuer_prefix)
        self.report.spoiled += 1

    def _print(self, item_ids: list[int]) -> None:
        with self.uow_factory() as uow:
            items = [uow.session.get(BatchItem, item_id) for item_id in item_ids]
            card_rows = {c.id: c for c in uow.session.scalars(select(Card).where(
                Card.id.in_([i.card_id for i in items])))}
            cards.ensure_credentials(uow, list(card_rows.values()), self.signer)
            faces = [self._face(card_rows[item.card_id]) for item in items]
            job = PrintJob(batch_id=self.batch_id, title="", printer=self.printer.name,
                           status=JobStatus.SUBMITTING.value, cards=len(items), created_at=clock.now())
            uow.session.add(job)
            uow.session.flush()
            job.title = print_job_title(self.batch_id, job.id)
            for item in items:
                self._move(item, Stage.PRINTING, print_job_id=job.id)
            self._beat(uow)
            uow.commit()
            job_id, title = job.id, job.title
        pdf = self.renderer.pdf(faces)
        try:
            printer_job = self.printer.submit(pdf, title)
        except PrintFailed as exc:
            self._job_failed(job_id, exc.render())
            raise
        with self.uow_factory() as uow:
            uow.session.execute(update(PrintJob).where(PrintJob.id == job_id).values(
                printer_job=printer_job, status=JobStatus.SUBMITTED.value))
            uow.commit()
        self.report.print_jobs += 1
        self._await_job(job_id, printer_job)

    def _face(self, card: Card):
        from unioncard.card_layouts.render import CardFace

        return CardFace(face_values(card, *self._names))

    def _await_job(self, job_id: int, printer_job: str) -> None:
        state = self.printer.wait(printer_job, self.print_timeout)
        if not state.finished:
            raise PrintFailed(detail=translate(N_("job %(job)s is still %(state)s; run the batch again later"),
                                               job=printer_job, state=state.state))
        if not state.ok:
            self._job_failed(job_id, f"{state.state}: {state.message}"[:300])
            raise PrintFailed(detail=f"{state.state} {state.message}".strip())
        with self.uow_factory() as uow:
            items = self._items(uow.session, [Stage.PRINTING], job_id=job_id)
            card_rows = [uow.session.get(Card, item.card_id) for item in items]
            for item in items:
                self._move(item, Stage.DONE)
            cards.transition_many(uow, self.actor, card_rows, CardStatus.PRODUCED)
            uow.session.execute(update(PrintJob).where(PrintJob.id == job_id).values(
                status=JobStatus.COMPLETED.value, finished_at=clock.now()))
            self._beat(uow)
            uow.commit()
        self.report.made += len(items)

    def _job_failed(self, job_id: int, detail: str) -> None:
        """The job's cards go back to be printed again (their chips are already written)."""
        with self.uow_factory() as uow:
            for item in self._items(uow.session, [Stage.PRINTING], job_id=job_id):
                self._move(item, Stage.ENCODED, print_job_id=None)
            uow.session.execute(update(PrintJob).where(PrintJob.id == job_id).values(
                status=JobStatus.FAILED.value, detail=detail[:300], finished_at=clock.now()))
            uow.commit()

    def _finish(self) -> None:
        with self.uow_factory() as uow:
            state = progress(uow.session, self.batch_id)
            if state.finished:
                batch = uow.session.get(Batch, self.batch_id)
                batch.status = BatchStatus.PRODUCED.value
                batch.produced_at = clock.now()
                audit.record(uow.session, self.actor, "bureau.batch_produced", "batch", batch.id,
                             batch.region_organisation_id, cards=state.done, spoiled=state.spoiled)
            uow.commit()


def _spoil_and_remake(uow: UnitOfWork, actor: Actor, item: BatchItem, reason: str,
                      issuer_prefix: str = cardnumber.DEFAULT_ISSUER_PREFIX) -> BatchItem | None:
    """The item (already moved to «spoiled») gets its reason; its card is voided and, if the
    member can still have a card, a remake joins the end of the same batch."""
    reason = reason[:200]
    item.spoiled_reason, item.updated_at = reason, clock.now()
    card = uow.session.get(Card, item.card_id)
    remade, refusal = cards.void_and_remake(uow, actor, card, reason, issuer_prefix=issuer_prefix)
    new_item = None
    if remade is not None:
        last = uow.session.scalar(select(func.max(BatchItem.position)).where(BatchItem.batch_id == item.batch_id))
        new_item = BatchItem(batch_id=item.batch_id, card_id=remade.id, position=last + 1, stage=Stage.QUEUED.value,
                             remake_of=item.id, updated_at=clock.now())
        uow.session.add(new_item)
    audit.record(uow.session, actor, "bureau.card_spoiled", "card", card.id, card.organisation_id,
                 number=card.number, reason=reason, remade=remade.id if remade else None,
                 not_remade=refusal.code if refusal else None)
    return new_item


# --- after production ---------------------------------------------------------------------------

def spoil_printed(uow: UnitOfWork, actor: Actor, batch_id: int, number: str, reason: str) -> BatchItem | None:
    """An operator found a made card spoiled (smudged print, bent card): void it and queue a new one."""
    _check_bureau(actor)
    if not (reason or "").strip():
        raise ValidationError(N_("Please give a reason"), code="card_reason_required")
    batch = get_batch(uow.session, actor, batch_id, for_update=True)
    if batch.status == BatchStatus.SHIPPED.value:
        raise Conflict(N_("The batch has already been sent"), code="batch_shipped")
    number = cardnumber.validate(credential.number_from_scan(number))
    item = uow.session.scalar(select(BatchItem).join(Card, Card.id == BatchItem.card_id).where(
        BatchItem.batch_id == batch_id, Card.number == number))
    if item is None or item.stage != Stage.DONE.value:
        raise NotFound(N_("There is no finished card with this number in the batch"), code="batch_card_not_found")
    item.stage = Stage.SPOILED.value
    new_item = _spoil_and_remake(uow, actor, item, reason.strip())
    batch.status = BatchStatus.OPEN.value
    return new_item


@dataclass(frozen=True)
class ManifestRow:
    organisation_id: int
    organisation: str
    member: str
    number: str
    status: str


def manifest(session, actor: Actor, batch_id: int) -> tuple[Batch, list[ManifestRow]]:
    """The cards made in a batch, by organisation then surname: what goes in the parcel."""
    batch = get_batch(session, actor, batch_id)
    rows = session.execute(
        select(Organisation.id, Organisation.name, Card).join(Card, Card.organisation_id == Organisation.id)
        .join(BatchItem, BatchItem.card_id == Card.id)
        .where(BatchItem.batch_id == batch_id, BatchItem.stage == Stage.DONE.value)).all()
    result = []
    for org_id, org_name, card in rows:
        person = card.person
        result.append(ManifestRow(org_id, org_name, " ".join(filter(None, [person.surname, person.given_name,
                                                                          person.patronymic])),
                                  cardnumber.format(card.number), card.status))
    result.sort(key=lambda r: (r.organisation, r.member, r.number))
    audit.record(session, actor, "bureau.manifest_viewed", "batch", batch.id, batch.region_organisation_id,
                 rows=len(result))
    return batch, result


def ship(uow: UnitOfWork, actor: Actor, batch_id: int) -> int:
    _check_bureau(actor)
    batch = get_batch(uow.session, actor, batch_id, for_update=True)
    if batch.status != BatchStatus.PRODUCED.value:
        raise Conflict(N_("Only a produced batch can be sent"), code="batch_not_produced")
    done = list(uow.session.scalars(select(Card).join(BatchItem, BatchItem.card_id == Card.id).where(
        BatchItem.batch_id == batch_id, BatchItem.stage == Stage.DONE.value, Card.status == CardStatus.PRODUCED.value)
        .with_for_update(of=Card)))
    cards.transition_many(uow, actor, done, CardStatus.SHIPPED)
    batch.status, batch.shipped_at = BatchStatus.SHIPPED.value, clock.now()
    audit.record(uow.session, actor, "bureau.batch_shipped", "batch", batch.id, batch.region_organisation_id,
                 cards=len(done))
    return len(done)


def mark_delivered(uow: UnitOfWork, actor: Actor, batch_id: int, organisation_id: int) -> int:
    """The region passed an organisation its cards from this parcel."""
    batch = get_batch(uow.session, actor, batch_id)
    if batch.status != BatchStatus.SHIPPED.value:
        raise Conflict(N_("The batch has not been sent yet"), code="batch_not_shipped")
    shipped = [card for card in uow.session.scalars(select(Card).join(BatchItem, BatchItem.card_id == Card.id).where(
        BatchItem.batch_id == batch_id, Card.organisation_id == organisation_id,
        Card.status == CardStatus.SHIPPED.value).with_for_update(of=Card)) if actor.sees(card.org_path)]
    if not shipped:
        raise NotFound(N_("No cards of this organisation are waiting in the batch"), code="batch_org_not_found")
    cards.transition_many(uow, actor, shipped, CardStatus.DELIVERED)
    return len(shipped)
