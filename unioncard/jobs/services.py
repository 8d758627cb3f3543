"""Submitting, running and watching jobs. A part registers what a kind of job does with
:func:`handler`; the runner claims the job's row, calls the handler with a :class:`JobContext`
and records how it ended. Handlers make their work resumable: each step commits together with
the checkpoint it reached (:meth:`JobContext.step`), so a job taken up after its worker died
carries on from there and nothing is done twice."""

from __future__ import annotations

import json
import logging
import os
import socket
import uuid
from dataclasses import asdict, dataclass, field
from typing import Callable

from sqlalchemy import or_, select, true, update
from sqlalchemy.orm import Session

from unioncard import clock
from unioncard.db import UnitOfWork
from unioncard.errors import NotFound, UnionCardError
from unioncard.i18n import N_, translate
from unioncard.jobs import domain as d
from unioncard.jobs.models import Job
from unioncard.registry.actor import Actor

log = logging.getLogger(__name__)

_HANDLERS: dict[str, Callable] = {}
# Kinds that run only on workers of a lane: a bureau run needs the bureau's printer and reader,
# so only a worker started on that workstation (unioncard jobs worker --lane bureau) takes it.
_LANES: dict[str, str] = {}

INTERNAL_ERROR = N_("an internal error; the administrator finds its details in the worker's log")
GAVE_UP = N_("it was taken up %(attempts)s times and never finished; the administrator finds why in the workers' logs")


def handler(kind: str, lane: str | None = None):
    """Register ``fn(context) -> dict`` as what a job of ``kind`` does; with ``lane``, only the
    workers of that lane run it (and the other workers never see it)."""
    def register(fn):
        _HANDLERS[kind] = fn
        if lane:
            _LANES[kind] = lane
        return fn
    return register


def lane_of(kind: str) -> str | None:
    return _LANES.get(kind)


def lanes() -> set[str]:
    return set(_LANES.values())


def kinds_on(lane: str | None) -> list[str]:
    """The kinds a worker of ``lane`` runs (None: the general workers)."""
    return sorted(kind for kind in _HANDLERS if _LANES.get(kind) == lane)


@dataclass(frozen=True)
class JobSubmitted:
    """After commit: a job waits to be queued (on its lane's queue, if its kind has one)."""
    job_id: int
    lane: str | None = None


class JobLost(Exception):
    """Another worker has taken this job over (this one was presumed dead): stop, write nothing."""


def submit(uow: UnitOfWork, actor: Actor, kind: str, params: dict, org_path: str) -> Job:
    """A job in the submitting transaction; it is queued once that commits (a rolled-back
    submission runs nothing)."""
    if kind not in _HANDLERS:
        raise ValueError(f"no job handler for {kind!r}")
    job = Job(kind=kind, status=d.Status.QUEUED, params=json.dumps(params), actor=json.dumps(asdict(actor)),
              org_path=org_path, created_by=actor.user_id, created_at=clock.now(), attempts=0, done=0)
    uow.session.add(job)
    uow.session.flush()
    uow.announce(JobSubmitted(job.id, lane_of(kind)))
    return job


def get_job(session: Session, actor: Actor, job_id: int, kind: str | None = None) -> Job:
    """A job of the user who submitted it (its files hold personal data: nobody else's to see)."""
    job = session.get(Job, job_id)
    if job is None or job.created_by is None or job.created_by != actor.user_id or (kind and job.kind != kind):
        raise NotFound(N_("Job not found"), code="job_not_found")
    return job


def result_of(job: Job) -> dict:
    return json.loads(job.result) if job.result else {}


def params_of(job: Job) -> dict:
    return json.loads(job.params)


# --- running ---------------------------------------------------------------------------------

def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


@dataclass
class JobContext:
    job_id: int
    kind: str
    params: dict
    actor: Actor
    settings: object
    session_factory: Callable[[], Session]
    worker: str
    checkpoint: dict = field(default_factory=dict)
    attempt: int = 1

    def uow(self) -> UnitOfWork:
        return UnitOfWork(self.session_factory)

    def step(self, session: Session, *, done: int, total: int | None = None, checkpoint: dict | None = None) -> None:
        """Record progress (and the checkpoint) in ``session``'s transaction, the one doing the
        step's work, so both commit or neither does. Raises JobLost if another worker owns the job."""
        values = {"done": done, "heartbeat_at": clock.now()}
        if total is not None:
            values["total"] = total
        if checkpoint is not None:
            values["checkpoint"] = json.dumps(checkpoint)
            self.checkpoint = checkpoint
        changed = session.execute(update(Job).where(Job.id == self.job_id, Job.worker == self.worker,
                                                    Job.status == d.Status.RUNNING).values(**values)).rowcount
        if changed != 1:
            raise JobLost(self.job_id)

    def pause(self) -> None:
        """Between committed steps: leave the database to others for a moment if the installation
        asks for it (UNIONCARD_JOB_STEP_PAUSE_SECONDS; SQLite has one writer at a time)."""
        seconds = getattr(self.settings, "job_step_pause_seconds", 0) or 0
        if seconds > 0:
            import time

            time.sleep(seconds)



def claim(session_factory, job_id: int, worker: str, lease_seconds: float, settings=None) -> Job | None:
    """Take the job if it waits, or if its worker has not been heard of for the lease. One
    UPDATE decides: of two workers, exactly one gets it."""
    now = clock.now()
    with session_factory() as session:
        claimed = session.execute(
            update(Job).where(Job.id == job_id, or_(
                Job.status == d.Status.QUEUED,
                (Job.status == d.Status.RUNNING) & (Job.heartbeat_at < d.abandoned_before(now, lease_seconds))))
            .values(status=d.Status.RUNNING, worker=worker, heartbeat_at=now, attempts=Job.attempts + 1)
        ).rowcount
        if claimed != 1:
            session.rollback()
            return None
        job = session.get(Job, job_id)
        if job.started_at is None:
            job.started_at = now
        if job.attempts > d.MAX_ATTEMPTS:
            _finish(job, d.Status.FAILED, error=translate(GAVE_UP, getattr(settings, "default_locale", "ru"),
                                                          attempts=d.MAX_ATTEMPTS))
            session.commit()
            return None
        session.commit()
        return job


def _finish(job: Job, status: d.Status, *, result: dict | None = None, error: str | None = None) -> None:
    job.status = status
    job.finished_at = clock.now()
    job.heartbeat_at = job.finished_at
    job.result = json.dumps(result, ensure_ascii=False) if result is not None else None
    job.error = error[:500] if error else None


def run(job_id: int, *, settings, session_factory, lease_seconds: float | None = None,
        worker: str | None = None) -> str | None:
    """Run one job if it can be claimed; answers its final status (None: not ours to run)."""
    worker = worker or worker_name()
    lease = lease_seconds if lease_seconds is not None else settings.job_lease_seconds
    job = claim(session_factory, job_id, worker, lease, settings)
    if job is None:
        return None
    context = JobContext(job_id=job.id, kind=job.kind, params=json.loads(job.params),
                         actor=Actor(**json.loads(job.actor)), settings=settings, session_factory=session_factory,
                         worker=worker, checkpoint=json.loads(job.checkpoint) if job.checkpoint else {},
                         attempt=job.attempts)
    try:
        result = _HANDLERS[job.kind](context)
        status, error = d.Status.DONE, None
    except JobLost:
        log.warning("job %s was taken over by another worker; %s stops", job_id, worker)
        return None
    except UnionCardError as refused:
        result, status, error = None, d.Status.FAILED, refused.render(settings.default_locale)
    except Exception:  # noqa: BLE001 - a job's failure is recorded, never lost with the worker
        log.exception("job %s (%s) failed", job_id, job.kind)
        result, status = None, d.Status.FAILED
        error = translate(INTERNAL_ERROR, settings.default_locale)
    with session_factory() as session:
        row = session.get(Job, job_id)
        if row.worker != worker or row.status != d.Status.RUNNING:
            return None
        _finish(row, status, result=result, error=error)
        session.commit()
    return status


def waiting_or_abandoned(session_factory, lease_seconds: float, kinds: list[str] | None = None) -> list[int]:
    """Jobs to (re)queue: ones waiting for longer than the lease (their queue entry was lost with a
    queue or a process), and running ones whose worker has been silent for the lease; only of
    ``kinds`` if given (a worker requeues only what its own lane runs)."""
    now = clock.now()
    only = Job.kind.in_(kinds) if kinds is not None else true()
    with session_factory() as session:
        return list(session.scalars(select(Job.id).where(only, or_(
            (Job.status == d.Status.QUEUED) & (Job.created_at < d.abandoned_before(now, lease_seconds)),
            (Job.status == d.Status.RUNNING) & (Job.heartbeat_at < d.abandoned_before(now, lease_seconds))))
            .order_by(Job.id)))
