"""``unioncard jobs …``: the worker that runs long work (exports, mailings) from the RQ queue."""

from __future__ import annotations

import logging

import click
from rich.console import Console

from unioncard.i18n import N_, translate
from unioncard.jobs import domain as d

console = Console()


@click.group("jobs", help=N_("Long work (exports, mailings): the workers that run it."))
def jobs_group() -> None:
    pass


@jobs_group.command("worker", help=N_("Run jobs from the queue named by UNIONCARD_JOB_QUEUE (rq+redis://…); "
                                      "start as many as there are cores to spare, on any machine."))
@click.option("--burst", is_flag=True, help=N_("Stop when the queue is empty instead of waiting for more."))
@click.option("--lane", default=None, help=N_("Run only the jobs of this lane: «bureau» on the bureau's "
                                               "workstation, whose printer and reader the runs need."))
def worker(burst: bool, lane: str | None) -> None:
    from sqlalchemy.pool import NullPool

    import unioncard.models  # noqa: F401 - every part's job handlers, to know each lane's kinds
    from unioncard import db
    from unioncard.config import load_settings
    from unioncard.jobs import services

    settings = load_settings()
    if lane and not services.kinds_on(lane):
        raise click.UsageError(translate(N_("There is no lane «%(lane)s»; lanes: %(lanes)s"), lane=lane,
                                         lanes=", ".join(sorted(services.lanes())) or "—"))
    try:
        address = d.parse_queue(settings.job_queue)
    except d.QueueAddressInvalid as exc:
        raise click.UsageError(translate(N_("The job queue «%(queue)s» is not valid: %(why)s"),
                                         queue=settings.job_queue, why=str(exc)))
    if not isinstance(address, d.RqQueue):
        raise click.UsageError(translate(N_("Workers run jobs from Redis: set UNIONCARD_JOB_QUEUE=rq+redis://"
                                            "host:6379/0 (with %(queue)s the web app runs jobs itself)"),
                                         queue=settings.job_queue or "thread:"))
    from redis import Redis
    from redis.exceptions import ConnectionError as RedisConnectionError
    from rq import Worker

    from unioncard.jobs.queues import RqJobQueue

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # NullPool: nothing of the parent's connections is shared with the processes RQ forks per job.
    session_factory = db.make_session_factory(db.make_engine(settings.database_url, poolclass=NullPool))
    job_queue = RqJobQueue(settings, session_factory, address)

    def requeue_abandoned() -> None:
        """Jobs whose worker died (killed, machine lost) or whose queue entry was lost: again to
        the queue, where one worker claims each and carries on from its checkpoint."""
        for job_id in services.waiting_or_abandoned(session_factory, settings.job_lease_seconds,
                                                     kinds=services.kinds_on(lane)):
            job_queue.enqueue(job_id, lane)

    class UnionCardWorker(Worker):
        def run_maintenance_tasks(self):
            super().run_maintenance_tasks()
            requeue_abandoned()

    try:
        connection = Redis.from_url(address.redis_url)
        connection.ping()
        requeue_abandoned()
        rq_worker = UnionCardWorker([job_queue.queue_name(lane)], connection=connection,
                                    maintenance_interval=max(5, int(settings.job_lease_seconds / 2)))
        rq_worker.work(burst=burst, with_scheduler=False)
    except RedisConnectionError as exc:
        raise click.ClickException(translate(N_("Redis is not answering at %(url)s: %(why)s"),
                                             url=address.redis_url, why=str(exc)))
