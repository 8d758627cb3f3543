"""A bureau run as a job on the bureau's lane: started from the batch's page, run by the worker on
the workstation that has the printer and the card reader (``unioncard jobs worker --lane bureau``
there, with its UNIONCARD_BUREAU_PRINTER, UNIONCARD_BUREAU_READER and keys). The run keeps its
own resumable state in the batch (each card's stage, committed before the next device action),
so a run taken up after its worker died carries on where the cards are."""

from __future__ import annotations

import json

from sqlalchemy import select

from unioncard.errors import Conflict
from unioncard.i18n import N_
from unioncard.jobs import domain as jd
from unioncard.jobs.models import Job
from unioncard.jobs.services import handler, submit
from unioncard.personalization import services as bureau

BUREAU_RUN = "bureau_run"
LANE = "bureau"


def _params(batch_id: int) -> dict:
    return {"batch_id": batch_id}


def start_run(uow, actor, batch_id: int):
    """A run of the batch, queued for the bureau's workstation (committed by the caller). A batch
    whose run is running or waiting for a workstation is refused."""
    batch = bureau.get_batch(uow.session, actor, batch_id, for_update=True)
    bureau.require_open(batch)
    waiting = last_run(uow.session, batch_id)
    if batch.run_owner:
        # Not BatchBusy: its message names the running process, which the page's reader needs not.
        raise Conflict(N_("This batch is being made right now; this page shows the progress"), code="batch_busy")
    if waiting is not None and waiting.status not in jd.FINISHED:
        raise Conflict(N_("A run of this batch is already waiting for the bureau's workstation"),
                       code="batch_run_waiting")
    return submit(uow, actor, BUREAU_RUN, _params(batch_id), batch.region_path)


def last_run(session, batch_id: int) -> Job | None:
    """The batch's latest run job, whoever started it: its page says whether it waits for a
    workstation or why it stopped."""
    # submit stores the parameters as json.dumps of the dict: the same text finds them.
    return session.scalar(select(Job).where(Job.kind == BUREAU_RUN, Job.params == json.dumps(_params(batch_id)))
                          .order_by(Job.id.desc()).limit(1))


@handler(BUREAU_RUN, lane=LANE)
def run_batch_job(context) -> dict:
    from unioncard.card_layouts.model import from_setting
    from unioncard.card_layouts.render import CardRenderer
    from unioncard.hardware.printers import open_printer
    from unioncard.hardware.smartcard import open_reader
    from unioncard.hsm.ceremony import open_operational
    from unioncard.personalization.domain import Encoding

    settings = context.settings
    batch_id = context.params["batch_id"]
    with context.uow() as uow:
        encoding = Encoding(bureau.get_batch(uow.session, context.actor, batch_id).encoding)
    printer = open_printer(settings.bureau_printer)
    reader = open_reader(settings.bureau_reader) if encoding != Encoding.NONE else None
    signer = open_operational(settings)

    def show(state) -> None:
        with context.uow() as uow:
            context.step(uow.session, done=state.done, total=state.to_make)
            uow.commit()

    try:
        report = bureau.BatchRun(context.uow, context.actor, batch_id, signer=signer, printer=printer, reader=reader,
                                 renderer=CardRenderer(from_setting(settings.bureau_layout)), on_progress=show,
                                 issuer_prefix=settings.card_issuer_prefix).run()
    finally:
        signer.close()
    return {"made": report.made, "spoiled": report.spoiled, "print_jobs": report.print_jobs}
