"""The bureau's pages: make batches, start a run from the web (its own process, sim: reader and
file: printer), follow the progress, download manifests, ship; the region marks delivery."""

from __future__ import annotations

import io
import time

from openpyxl import load_workbook

from tests.support import WebClient, approved_cards
from unioncard.hsm.base import open_keystore
from unioncard.hsm.domain import KeyRole


def test_the_bureau_journey_on_the_web(database_url, tree, tmp_path, monkeypatch, make_uow):
    from unioncard.checkin_web import create_app
    from unioncard.config import Settings

    monkeypatch.setenv("UNIONCARD_KEYSTORE_SECRET", "web bureau")
    store = open_keystore(f"software:{tmp_path / 'keys'}", "web bureau", create=True)
    store.generate(KeyRole.CARD_CREDENTIAL)
    store.generate(KeyRole.CARD_CERTIFICATE)
    app = create_app(Settings(instance_dir=tmp_path / "instance", database_url=database_url, secret_key="t",
                              keystore_url=f"software:{tmp_path / 'keys'}", bureau_reader="sim:",
                              bureau_printer=f"file:{tmp_path / 'printed'}"))
    web = WebClient(app)
    approved_cards(make_uow, tree, 4)
    web.login("bureau")
    page = web.get("/bureau/")
    assert page.status_code == 200 and "Бюро изготовления карт" in page.get_data(as_text=True)
    assert "23 — Краснодарская краевая организация" in page.get_data(as_text=True)
    preview = web.get("/bureau/layout/preview.png")
    assert preview.mimetype == "image/png" and preview.data[:8] == b"\x89PNG\r\n\x1a\n"
    bad = web.post("/bureau/batches", {"region": "23", "size": "0", "encoding": "chip"}, token_from="/bureau/")
    assert "В партии может быть от 1 до 5000 карт" in web.get("/bureau/").get_data(as_text=True)
    del bad
    web.post("/bureau/batches", {"region": "23", "size": "10", "encoding": "chip"}, token_from="/bureau/")
    with app.extensions["unioncard"].session_factory() as s:
        from unioncard.personalization.models import Batch

        batch_id = s.query(Batch).one().id
    assert "Партия № %d" % batch_id in web.get(f"/bureau/batches/{batch_id}").get_data(as_text=True)
    web.post(f"/bureau/batches/{batch_id}/run", {}, token_from=f"/bureau/batches/{batch_id}")
    deadline = time.monotonic() + 60
    while True:
        state = web.get(f"/bureau/batches/{batch_id}/progress.json").get_json()
        if state["status"] == "produced" or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert state == {"done": 4, "to_make": 4, "spoiled": 0, "percent": 100, "status": "produced",
                     "running": False, "error": None}, (tmp_path / "instance" / "bureau").glob("*.log")
    assert len(list((tmp_path / "printed").glob("*.pdf"))) == 1
    batch_page = web.get(f"/bureau/batches/{batch_id}").get_data(as_text=True)
    assert "напечатано" in batch_page and "completed" not in batch_page  # the print job's state, in Russian
    sheet = load_workbook(io.BytesIO(web.get(f"/bureau/batches/{batch_id}/manifest.xlsx").data)).active
    rows = [r for r in sheet.iter_rows(values_only=True) if r and isinstance(r[0], int)]
    assert len(rows) == 4 and {r[1] for r in rows} == {"ППО школы № 1"} or len(rows) == 4
    assert web.get(f"/bureau/batches/{batch_id}/manifest.pdf").data[:5] == b"%PDF-"
    web.post(f"/bureau/batches/{batch_id}/ship", {}, token_from=f"/bureau/batches/{batch_id}")
    web.client.post("/logout", data={"csrf_token": web.token("/")})
    web.login("region_a")
    page = web.get(f"/bureau/batches/{batch_id}").get_data(as_text=True)
    assert "Передача в организации" in page
    web.post(f"/bureau/batches/{batch_id}/deliver", {"organisation_id": str(tree.primary_a)},
             token_from=f"/bureau/batches/{batch_id}")
    assert "Отмечены полученными 4 карты" in web.get(f"/bureau/batches/{batch_id}").get_data(as_text=True)
    app.extensions["unioncard"].engine.dispose()


def test_a_run_started_on_the_web_waits_for_the_bureau_s_worker_and_only_that_worker_runs_it(
        database_url, tree, tmp_path, monkeypatch, make_uow):
    """With a real queue (RQ on Redis) the web only queues the run, on the «bureau» lane: a general
    worker leaves it, the bureau workstation's worker (its own printer and reader settings) makes
    the cards; the page says it waits meanwhile, and a second start is refused."""
    import os
    import subprocess
    import sys
    import uuid

    from redis import Redis

    from unioncard.checkin_web import create_app
    from unioncard.config import Settings
    from unioncard.jobs.models import Job
    from unioncard.personalization.models import Batch

    redis_url = os.environ.get("UNIONCARD_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    Redis.from_url(redis_url).ping()
    queue_name = f"test-{uuid.uuid4().hex[:10]}"
    queue = f"rq+{redis_url}?queue={queue_name}"
    monkeypatch.setenv("UNIONCARD_KEYSTORE_SECRET", "web bureau")
    store = open_keystore(f"software:{tmp_path / 'keys'}", "web bureau", create=True)
    store.generate(KeyRole.CARD_CREDENTIAL)
    store.generate(KeyRole.CARD_CERTIFICATE)
    app = create_app(Settings(instance_dir=tmp_path / "web", database_url=database_url, secret_key="t",
                              keystore_url=f"software:{tmp_path / 'keys'}", job_queue=queue,
                              bureau_reader="sim:", bureau_printer=f"file:{tmp_path / 'not-the-web'}"))
    web = WebClient(app)
    approved_cards(make_uow, tree, 3)
    web.login("bureau")
    web.post("/bureau/batches", {"region": "23", "size": "10", "encoding": "chip"}, token_from="/bureau/")
    with app.extensions["unioncard"].session_factory() as s:
        batch_id = s.query(Batch).one().id
    web.post(f"/bureau/batches/{batch_id}/run", {}, token_from=f"/bureau/batches/{batch_id}")
    page = web.get(f"/bureau/batches/{batch_id}").get_data(as_text=True)
    assert "Ждёт, когда рабочее место бюро возьмёт её в работу" in page
    assert f"/bureau/batches/{batch_id}/run" not in page  # no second start offered while it waits
    web.post(f"/bureau/batches/{batch_id}/run", {}, token_from=f"/bureau/batches/{batch_id}")
    assert "Изготовление этой партии уже ждёт рабочее место бюро" in web.get(
        f"/bureau/batches/{batch_id}").get_data(as_text=True)

    def worker(*lane, printed):
        env = {**os.environ, "UNIONCARD_DATABASE_URL": database_url, "UNIONCARD_JOB_QUEUE": queue,
               "UNIONCARD_INSTANCE_DIR": str(tmp_path / "station"), "UNIONCARD_SECRET_KEY": "t",
               "UNIONCARD_KEYSTORE": f"software:{tmp_path / 'keys'}", "UNIONCARD_KEYSTORE_SECRET": "web bureau",
               "UNIONCARD_BUREAU_READER": "sim:", "UNIONCARD_BUREAU_PRINTER": f"file:{printed}"}
        done = subprocess.run([sys.executable, "-m", "unioncard", "jobs", "worker", "--burst", *lane], env=env,
                              capture_output=True, text=True, timeout=180)
        assert done.returncode == 0, done.stdout + done.stderr
        return done

    try:
        worker(printed=tmp_path / "general")
        with app.extensions["unioncard"].session_factory() as s:
            assert s.query(Job).one().status == "queued"
        worker("--lane", "bureau", printed=tmp_path / "bureau-desk")
        with app.extensions["unioncard"].session_factory() as s:
            job = s.query(Job).one()
            assert job.status == "done" and (job.done, job.total) == (3, 3)
        state = web.get(f"/bureau/batches/{batch_id}/progress.json").get_json()
        assert (state["status"], state["done"], state["running"]) == ("produced", 3, False)
        assert len(list((tmp_path / "bureau-desk").glob("*.pdf"))) == 1
        assert not (tmp_path / "general").exists() and not (tmp_path / "not-the-web").exists()
        page = web.get(f"/bureau/batches/{batch_id}").get_data(as_text=True)
        assert 'data-confirm="Отметить партию отправленной в регион? Отменить это будет нельзя."' in page
        wrong = subprocess.run([sys.executable, "-m", "unioncard", "jobs", "worker", "--lane", "nowhere"],
                               env={**os.environ, "UNIONCARD_DATABASE_URL": database_url,
                                    "UNIONCARD_JOB_QUEUE": queue, "UNIONCARD_INSTANCE_DIR": str(tmp_path / "x")},
                               capture_output=True, text=True, timeout=60)
        assert wrong.returncode != 0 and "Нет очереди «nowhere»; есть очереди: bureau" in wrong.stderr
        assert "Traceback" not in wrong.stderr
    finally:
        connection = Redis.from_url(redis_url)
        for key in connection.scan_iter(f"rq:*{queue_name}*"):
            connection.delete(key)
        app.extensions["unioncard"].engine.dispose()
