"""Where a submitted job goes to be run, by the config string UNIONCARD_JOB_QUEUE (see
``domain.parse_queue``): RQ on Redis for an installation, a thread of the app for the demo, or
at once in the submitting process for tests."""

from __future__ import annotations

import logging
import queue as stdlib_queue
import threading

from unioncard.jobs import domain as d
from unioncard.jobs import services

log = logging.getLogger(__name__)

RQ_FUNCTION = "unioncard.jobs.worker.perform"


class JobQueue:
    def __init__(self, settings, session_factory):
        self.settings = settings
        self.session_factory = session_factory

    def enqueue(self, job_id: int, lane: str | None = None) -> None:
        raise NotImplementedError

    def subscriber(self, event) -> None:
        """An after-commit subscriber of the unit of work: queue what was just submitted."""
        if isinstance(event, services.JobSubmitted):
            try:
                self.enqueue(event.job_id, event.lane)
            except Exception:  # noqa: BLE001 - the job stays queued in the database for recovery
                log.exception("job %s could not be queued now; a worker will take it up later", event.job_id)


class InlineJobQueue(JobQueue):
    """Every lane in the submitting process (tests): the app's own devices and keys."""

    def enqueue(self, job_id: int, lane: str | None = None) -> None:
        services.run(job_id, settings=self.settings, session_factory=self.session_factory)


class ThreadJobQueue(JobQueue):
    """One worker thread in the app's process. It also looks for waiting or abandoned jobs (a
    demo stopped in the middle of one) when it starts and every half lease."""

    def __init__(self, settings, session_factory):
        super().__init__(settings, session_factory)
        self._queue: stdlib_queue.Queue[int] = stdlib_queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def _ensure_thread(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._work, name="unioncard-jobs", daemon=True)
                self._thread.start()

    def enqueue(self, job_id: int, lane: str | None = None) -> None:
        # The demo's one thread runs every lane: its bureau is the same laptop (file:, sim:).
        self._ensure_thread()
        self._queue.put(job_id)

    def start(self) -> None:
        self._ensure_thread()

    def _work(self) -> None:
        lease = self.settings.job_lease_seconds
        while True:
            try:
                for job_id in services.waiting_or_abandoned(self.session_factory, lease):
                    self._queue.put(job_id)
            except Exception:  # noqa: BLE001 - a database away for a moment: look again later
                log.exception("looking for waiting jobs failed")
            try:
                job_id = self._queue.get(timeout=max(1.0, lease / 2))
            except stdlib_queue.Empty:
                continue
            try:
                services.run(job_id, settings=self.settings, session_factory=self.session_factory)
            except Exception:  # noqa: BLE001 - the thread outlives any one job
                log.exception("job %s could not be run", job_id)


class RqJobQueue(JobQueue):
    def __init__(self, settings, session_factory, address: d.RqQueue):
        super().__init__(settings, session_factory)
        self.address = address
        self._rq_queues: dict = {}

    def queue_name(self, lane: str | None = None) -> str:
        """The RQ queue of a lane: «unioncard» for the general workers, «unioncard-bureau» for the
        bureau's."""
        return f"{self.address.name}-{lane}" if lane else self.address.name

    def rq_queue(self, lane: str | None = None):
        if lane not in self._rq_queues:
            from redis import Redis
            from rq import Queue

            self._rq_queues[lane] = Queue(self.queue_name(lane), connection=Redis.from_url(self.address.redis_url))
        return self._rq_queues[lane]

    def enqueue(self, job_id: int, lane: str | None = None) -> None:
        # The job's row is the truth: RQ only carries its id. No RQ timeout: a 4 M-member job
        # takes what it takes, and a dead worker is found by the row's lease instead.
        self.rq_queue(lane).enqueue(RQ_FUNCTION, job_id, job_timeout=-1, result_ttl=3600, failure_ttl=7 * 86400,
                                    description=f"unioncard job {job_id}")


def open_queue(settings, session_factory) -> JobQueue:
    address = d.parse_queue(settings.job_queue)
    if isinstance(address, d.InlineQueue):
        return InlineJobQueue(settings, session_factory)
    if isinstance(address, d.ThreadQueue):
        return ThreadJobQueue(settings, session_factory)
    return RqJobQueue(settings, session_factory, address)
