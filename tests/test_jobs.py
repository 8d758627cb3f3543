"""Long work on a real job queue: a big member export and a mailing's queueing run as jobs with
their progress on a page, on RQ workers over the Redis server (``unioncard jobs worker``), on the
app's own thread (the demo), and a worker killed half-way leaves its job to another worker, which
carries on from the last committed step: nobody gets a message twice."""

from __future__ import annotations

import io
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from datetime import date, timedelta

import pytest
from openpyxl import load_workbook
from sqlalchemy import func, select

from unioncard import clock
from unioncard.jobs import domain as jd
from unioncard.jobs.models import Job
from unioncard.messaging import mailings
from unioncard.messaging.models import Mailing, OutboxMessage
from unioncard.registry import services
from unioncard.registry.actor import Actor
from unioncard.registry.models import AuditEntry
from unioncard.registry.services import NewMember
from tests.support import letters, person

REDIS_URL = os.environ.get("UNIONCARD_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture
def redis_queue():
    """A queue of its own on the machine's Redis (a missing Redis fails the test, never skips it)."""
    from redis import Redis

    connection = Redis.from_url(REDIS_URL)
    connection.ping()
    name = f"test-{uuid.uuid4().hex[:10]}"
    yield f"rq+{REDIS_URL}?queue={name}"
    for key in connection.scan_iter(f"rq:*{name}*"):
        connection.delete(key)


def _members(make_uow, tree, count: int, *, organisation="primary_a2", email=False) -> None:
    entries = [NewMember(person(f"Задачин-{letters(index)}", "Анна", "Сергеевна", date(1970, 1, 1) + timedelta(days=index),
                                sex="female", email=f"m{index}@school.example" if email else None),
                         "working", date(2015, 9, 1),
                         (("processing", date(2020, 1, 10), "paper"), ("messaging", date(2020, 1, 10), "paper")))
               for index in range(count)]
    with make_uow() as uow:
        services.register_new_members(uow, Actor.system("test"), getattr(tree, organisation), entries)
        uow.commit()


def _worker(database_url, queue, instance_dir, *, burst: bool, step_rows: int = 20_000, lease: float = 2,
            pause: float = 0):
    env = {**os.environ, "UNIONCARD_DATABASE_URL": database_url, "UNIONCARD_JOB_QUEUE": queue,
           "UNIONCARD_INSTANCE_DIR": str(instance_dir), "UNIONCARD_SECRET_KEY": "test-secret",
           "UNIONCARD_JOB_LEASE_SECONDS": str(lease), "UNIONCARD_JOB_STEP_ROWS": str(step_rows),
           "UNIONCARD_JOB_STEP_PAUSE_SECONDS": str(pause)}
    command = [sys.executable, "-m", "unioncard", "jobs", "worker"] + (["--burst"] if burst else [])
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)


def _kill_with_its_work_horses(pid: int) -> None:
    """SIGKILL a worker and the processes it forked to run jobs (RQ puts each in a session of its
    own, so killing the worker's group alone would leave the job running): a machine lost."""
    children = []
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/children") as listing:
            children += [int(child) for child in listing.read().split()]
    for child in children:
        os.kill(child, signal.SIGKILL)
    os.killpg(pid, signal.SIGKILL)


def _job(session_factory, job_id: int) -> Job:
    with session_factory() as s:
        return s.get(Job, job_id)


def _download_rows(web, job_id: int) -> list[tuple]:
    response = web.get(f"/jobs/{job_id}/file")
    assert response.status_code == 200, response.status_code
    sheet = load_workbook(io.BytesIO(response.data), read_only=True).active
    return list(sheet.iter_rows(values_only=True))


def _start_export(web, organisation_id: int) -> int:
    token_page = f"/registry/org/{organisation_id}"
    response = web.post(f"/registry/org/{organisation_id}/export", token_from=token_page)
    assert response.status_code == 302, response.status_code
    return int(re.search(r"/jobs/(\d+)$", response.headers["Location"]).group(1))


def test_a_big_export_is_a_job_with_its_page_and_file_for_its_owner_only(tree, make_uow, web, session_factory,
                                                                          monkeypatch):
    from unioncard.checkin_web import jobs_views

    _members(make_uow, tree, 30)
    monkeypatch.setattr(jobs_views, "EXPORT_DIRECT_MAX", 10)
    web.login("region_a")
    page = web.get(f"/registry/org/{tree.region_a}").get_data(as_text=True)
    assert f'action="/registry/org/{tree.region_a}/export"' in page  # a job, not a direct download
    # The direct download of so long a list sends the user to that button instead.
    assert web.get(f"/registry/org/{tree.region_a}/export.xlsx").status_code == 302
    job_id = _start_export(web, tree.region_a)
    html = web.get(f"/jobs/{job_id}").get_data(as_text=True)
    assert "Файл готов: 33 члена Профсоюза" in html and 'id="download"' in html
    rows = _download_rows(web, job_id)
    assert rows[0][0] == "Фамилия" and len(rows) == 1 + 33
    assert sorted(r[0] for r in rows[1:]) == [r[0] for r in rows[1:]]  # sorted by name, as the list
    job = _job(session_factory, job_id)
    assert (job.status, job.done, job.total, job.attempts) == ("done", 33, 33, 1)
    with session_factory() as s:
        assert s.scalar(select(func.count()).select_from(AuditEntry).where(
            AuditEntry.action == "member.export", AuditEntry.object_id == str(tree.region_a))) == 1
    # Another user, even one who sees the organisation, does not see the job or its file.
    web.client.post("/logout", data={"csrf_token": web.token("/")})
    web.login("admin")
    assert web.get(f"/jobs/{job_id}").status_code == 404
    assert web.get(f"/jobs/{job_id}/file").status_code == 404
    web.client.post("/logout", data={"csrf_token": web.token("/")})
    web.login("region_b")
    assert web.post(f"/registry/org/{tree.region_a}/export", token_from="/").status_code == 404
    assert web.get(f"/jobs/{job_id}").status_code == 404


def test_jobs_run_on_rq_workers_and_the_page_follows_them(tree, make_uow, app, web, session_factory, redis_queue,
                                                          database_url, tmp_path):
    from unioncard.jobs.queues import open_queue

    runtime = app.extensions["unioncard"]
    runtime.settings = settings = runtime.settings.with_overrides(job_queue=redis_queue)
    runtime.subscribers.remove(runtime.jobs.subscriber)
    runtime.jobs = open_queue(settings, runtime.session_factory)
    runtime.subscribers.append(runtime.jobs.subscriber)
    _members(make_uow, tree, 25)
    web.login("region_a")
    job_id = _start_export(web, tree.region_a)
    html = web.get(f"/jobs/{job_id}").get_data(as_text=True)
    assert "Ждёт своей очереди" in html and 'http-equiv="refresh"' in html
    assert _job(session_factory, job_id).status == "queued"
    worker = _worker(database_url, redis_queue, settings.instance_dir, burst=True, step_rows=5)
    output = worker.communicate(timeout=120)[0].decode()
    assert worker.returncode == 0, output
    assert _job(session_factory, job_id).status == "done", output
    html = web.get(f"/jobs/{job_id}").get_data(as_text=True)
    assert 'http-equiv="refresh"' not in html and "Файл готов: 28 членов Профсоюза" in html
    assert len(_download_rows(web, job_id)) == 1 + 28


def test_the_demo_runs_jobs_on_its_own_thread(tree, make_uow, app, web, session_factory):
    from unioncard.jobs.queues import ThreadJobQueue

    runtime = app.extensions["unioncard"]
    runtime.subscribers.remove(runtime.jobs.subscriber)
    runtime.jobs = ThreadJobQueue(runtime.settings.with_overrides(job_queue="thread:"), runtime.session_factory)
    runtime.subscribers.append(runtime.jobs.subscriber)
    web.login("chair_a2")
    job_id = _start_export(web, tree.primary_a2)
    deadline = time.monotonic() + 30
    while _job(session_factory, job_id).status != "done":
        assert time.monotonic() < deadline, "the app's job thread did not run the job"
        time.sleep(0.05)
    assert len(_download_rows(web, job_id)) == 1 + 1


def test_a_killed_worker_s_mailing_is_taken_up_and_nobody_gets_two(tree, make_uow, session_factory, redis_queue,
                                                                   database_url, tmp_path, system):
    _members(make_uow, tree, 1000, email=True)
    region = tree.actors["region_a"]
    with make_uow() as uow:
        uow.subscribers = []
        mailing = mailings.start_mailing(uow, region, mailings.Audience(tree.region_a), "Слёт", "Приходите",
                                         expected=1000)
    job_id = mailing.job_id
    assert _job(session_factory, job_id).status == "queued"
    from unioncard.jobs.queues import RqJobQueue

    RqJobQueue(None, session_factory, jd.parse_queue(redis_queue)).enqueue(job_id)
    # Steps of two people with a breath between them (as an installation on SQLite may ask): the
    # test then finds the job in the middle, between two committed steps.
    first = _worker(database_url, redis_queue, tmp_path, burst=False, step_rows=2, lease=2, pause=0.01)
    try:
        deadline = time.monotonic() + 60
        while True:
            # The job's row read under a lock (FOR UPDATE; SQLite's BEGIN IMMEDIATE): while the test
            # holds it the worker cannot commit another step, so it is killed in the middle.
            with session_factory() as s:
                job = s.execute(select(Job).where(Job.id == job_id).with_for_update()).scalar_one()
                assert job.status != "done", "the job ended before the test could kill its worker"
                queued = s.scalar(select(func.count()).select_from(OutboxMessage).where(
                    OutboxMessage.mailing_id == mailing.id))
                if queued > 0:
                    _kill_with_its_work_horses(first.pid)
                    first.wait(10)
                    break
            assert time.monotonic() < deadline, "the first worker never started the job"
            time.sleep(0.002)
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
    killed = _job(session_factory, job_id)
    assert killed.status == "running" and 0 < killed.done < killed.total, (killed.done, killed.total)
    checkpoint = killed.checkpoint
    with session_factory() as s:
        queued_before = s.scalar(select(func.count()).select_from(OutboxMessage).where(
            OutboxMessage.mailing_id == mailing.id))
    assert 0 < queued_before < 1000
    time.sleep(2.5)  # the lease of the dead worker runs out
    second = _worker(database_url, redis_queue, tmp_path, burst=True, step_rows=2, lease=2)
    output = second.communicate(timeout=180)[0].decode()
    job = _job(session_factory, job_id)
    assert job.status == "done" and job.attempts == 2, output
    import json

    assert json.loads(job.result)["resumed_after_person"] == json.loads(checkpoint)["after"]
    with session_factory() as s:
        people = s.execute(select(OutboxMessage.person_id).where(OutboxMessage.mailing_id == mailing.id)).scalars().all()
        assert len(people) == len(set(people)) == 1000  # everyone once, nobody twice
        assert s.get(Mailing, mailing.id).recipients == 1000


def test_a_job_claimed_twice_runs_once(tree, make_uow, session_factory, app):
    """Two workers handed the same job (a requeue racing a slow worker): one UPDATE decides."""
    from unioncard.jobs import services as jobs

    _members(make_uow, tree, 5, email=True)
    with make_uow() as uow:
        mailing = mailings.start_mailing(uow, tree.actors["region_a"], mailings.Audience(tree.region_a), "Слёт",
                                         "Текст")
    settings = app.extensions["unioncard"].settings
    assert jobs.claim(session_factory, mailing.job_id, "one", 60) is not None
    assert jobs.claim(session_factory, mailing.job_id, "two", 60) is None
    assert jobs.run(mailing.job_id, settings=settings, session_factory=session_factory) is None
    assert _job(session_factory, mailing.job_id).worker == "one"


def test_queue_addresses_are_named():
    assert isinstance(jd.parse_queue("thread:"), jd.ThreadQueue)
    assert jd.parse_queue("rq+redis://127.0.0.1:6379/2?queue=bureau") == jd.RqQueue("redis://127.0.0.1:6379/2", "bureau")
    for bad in ("redis://x", "rq+redis:///0", "rq+redis://h/0?queue=a;b", "celery://"):
        with pytest.raises(jd.QueueAddressInvalid):
            jd.parse_queue(bad)


def test_the_worker_command_names_a_wrong_setting(tmp_path):
    env = {**os.environ, "UNIONCARD_JOB_QUEUE": "thread:", "UNIONCARD_INSTANCE_DIR": str(tmp_path)}
    done = subprocess.run([sys.executable, "-m", "unioncard", "jobs", "worker"], env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2 and "rq+redis://" in done.stderr and "Traceback" not in done.stderr
    env["UNIONCARD_JOB_QUEUE"] = "rq+redis://127.0.0.1:1/0"
    done = subprocess.run([sys.executable, "-m", "unioncard", "jobs", "worker"], env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 1 and "Redis" in done.stderr and "Traceback" not in done.stderr


def test_a_failing_job_is_recorded_in_plain_russian(tree, make_uow, session_factory, app):
    """A job whose work breaks ends as «failed» with a Russian reason for its page; the worker
    goes on (the traceback is in its log, not on a volunteer's screen)."""
    from unioncard.jobs import services as jobs
    from unioncard.registry.models import Organisation

    @jobs.handler("test_breaks")
    def _breaks(context):
        raise RuntimeError("disk full")

    with make_uow() as uow:
        path = uow.session.get(Organisation, tree.region_a).path
        job_id = jobs.submit(uow, tree.actors["region_a"], "test_breaks", {}, path).id
        uow.commit()
    settings = app.extensions["unioncard"].settings
    assert jobs.run(job_id, settings=settings, session_factory=session_factory) == "failed"
    job = _job(session_factory, job_id)
    assert job.status == "failed" and "внутренняя ошибка" in job.error and "disk" not in job.error
