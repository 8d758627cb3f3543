"""Two app server processes (gunicorn, as in docs/deploy.md) against one database and one Redis,
requests alternating between them as a load balancer would: a login holds on both, a logout on
one ends it on both, the partner API's limits are counted once for both, and desks syncing to
either server give one journal."""

from __future__ import annotations

import http.cookiejar
import json
import os
import random
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.station_support import enrol, export_trust, issued_cards, make_event
from tests.support import PASSWORD, union_keys
from unioncard.checkin.models import CheckIn
from unioncard.partner import services as partners
from unioncard.reader_station import sync
from unioncard.reader_station.domain import Scan, Source
from unioncard.reader_station.station import Station

REDIS_LIMITS = os.environ.get("UNIONCARD_TEST_REDIS_LIMITS_URL", "redis://127.0.0.1:6379/13")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def two_servers(database_url, tree, tmp_path, make_uow):
    from redis import Redis

    limits = Redis.from_url(REDIS_LIMITS)
    limits.flushdb()  # counters of an earlier run (same key ids in a new database) start from zero
    stores = union_keys(tmp_path / "union")
    export_trust(make_uow, stores)
    servers, processes = [], []
    gunicorn = Path(sys.executable).with_name("gunicorn")
    for name in ("a", "b"):
        port = _free_port()
        # Each process its own instance folder: nothing is shared through local files, only
        # through the database and Redis, as on two machines.
        env = {**os.environ, "UNIONCARD_DATABASE_URL": database_url, "UNIONCARD_SECRET_KEY": "two-servers-secret",
               "UNIONCARD_INSTANCE_DIR": str(tmp_path / f"instance-{name}"),
               "UNIONCARD_RATE_LIMIT_STORAGE": REDIS_LIMITS,
               "UNIONCARD_KEYSTORE": f"software:{tmp_path / 'union' / 'keys'}", "UNIONCARD_KEYSTORE_SECRET": "test keys"}
        processes.append(subprocess.Popen(
            [str(gunicorn), "-w", "1", "--threads", "4", "-b", f"127.0.0.1:{port}", "--log-level", "warning",
             "unioncard.checkin_web:create_app()"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
        servers.append(f"http://127.0.0.1:{port}")
    try:
        for server, process in zip(servers, processes):
            deadline = time.monotonic() + 60
            while True:
                try:
                    urllib.request.urlopen(server + "/login", timeout=10).read()
                    break
                # The socket is open before the worker has imported the app (two seconds here): a
                # read that times out meanwhile means "not yet", as a refused connection does.
                except (urllib.error.URLError, ConnectionError, TimeoutError):
                    assert process.poll() is None, process.stdout.read().decode()
                    assert time.monotonic() < deadline, "the app server did not start"
                    time.sleep(0.2)
        yield servers, stores
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(20)


class Browser:
    """One browser whose requests a balancer sends to either server (cookies are per host, so
    the same session cookie goes to both, as behind one name)."""

    def __init__(self):
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar),
                                                  _NoRedirect())

    def get(self, url: str) -> tuple[int, str]:
        try:
            with self.opener.open(url, timeout=20) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()

    def post(self, url: str, data: dict) -> int:
        try:
            with self.opener.open(url, urllib.parse.urlencode(data).encode(), timeout=20) as response:
                return response.status
        except urllib.error.HTTPError as error:
            return error.code

    @staticmethod
    def token(html: str) -> str:
        return re.search(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"', html).group(1)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def test_a_login_holds_on_both_and_a_logout_on_one_ends_it_on_both(two_servers):
    (a, b), _stores = two_servers
    browser = Browser()
    _status, page = browser.get(a + "/login")
    assert browser.post(a + "/login", {"csrf_token": browser.token(page), "login": "region_a",
                                       "password": PASSWORD}) == 302
    own_page = "/mailings"  # a page only a signed-in user gets (anyone else is sent to /login)
    status, page_b = browser.get(b + own_page)
    assert status == 200 and "region_a" in page_b  # signed in on the other server too
    status, page_a = browser.get(a + own_page)
    assert status == 200 and "region_a" in page_a
    # A form from one server is accepted by the other (one secret, CSRF tokens alike).
    assert browser.post(b + "/logout", {"csrf_token": browser.token(page_a)}) == 302
    for server in (a, b):
        status, _page = browser.get(server + own_page)
        assert status == 302, "the session survived a logout on the other server"


def test_partner_limits_are_counted_once_for_both_servers(two_servers, make_uow, system):
    (a, b), _stores = two_servers
    with make_uow() as uow:
        _key, text = partners.create_key(uow.session, system, "Магазин", "general", per_minute=4)
        uow.commit()
    from stdnum import luhn

    number = "964301000000123" + luhn.calc_check_digit("964301000000123")  # well-formed, never issued
    answers = []
    for index in range(6):
        server = (a, b)[index % 2]
        request = urllib.request.Request(server + "/api/v1/partner/verify", method="POST",
                                         data=json.dumps({"card_number": number,
                                                          "surname": "Иванов"}).encode(),
                                         headers={"Authorization": f"Bearer {text}",
                                                  "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=20) as response:
                answers.append(response.status)
        except urllib.error.HTTPError as error:
            answers.append(error.code)
    # Four a minute for the key in all: each server alone would have let six through.
    assert answers[:4] == [200, 200, 200, 200] and answers[4:] == [429, 429], answers


def test_desks_syncing_to_either_server_give_one_journal(two_servers, make_uow, tree, session_factory, tmp_path):
    (a, b), stores = two_servers
    held = issued_cards(make_uow, tree, 40, stores.operational)
    event_id = make_event(make_uow, tree, stores, roster=[c.number for c in held])
    desks = []
    for index in range(4):
        _station_id, token = enrol(make_uow, event_id, f"Стол {index + 1}")
        station = Station(tmp_path / f"desk-{index}")
        sync.enrol(station, (a, b)[index % 2], token)
        desks.append(station)
    rng = random.Random(7)
    scanned = set()
    for desk in desks:
        for card in rng.sample(held, 20):
            desk.scan(Scan(Source.WEDGE, text=card.credential))
            scanned.add(card.number)
    for desk in desks:
        sync.sync_once(desk)
    # Each desk then sends its whole journal again, to the other server: nothing changes.
    with session_factory() as s:
        before = sorted(s.execute(select(CheckIn.number, CheckIn.duplicate).where(CheckIn.event_id == event_id)).all())
    for index, desk in enumerate(desks):
        desk.journal.set(server=(b, a)[index % 2])
        desk.journal._db.execute("UPDATE entry SET synced = 0")
        sync.sync_once(desk)
    with session_factory() as s:
        rows = s.execute(select(CheckIn.number, CheckIn.duplicate).where(CheckIn.event_id == event_id)).all()
    assert sorted(rows) == before
    primaries = [number for number, duplicate in rows if not duplicate]
    assert len(primaries) == len(set(primaries)) == len(scanned)


def _gunicorn_worker_of(server: str) -> int:
    """The worker process (not the master) of the gunicorn serving ``server``."""
    port = server.rsplit(":", 1)[1]
    pids = [int(pid) for pid in subprocess.run(["pgrep", "-f", f"127.0.0.1:{port}"], capture_output=True,
                                                text=True).stdout.split()]
    parents = {pid: int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1]) for pid in pids}
    workers = [pid for pid, parent in parents.items() if parent in parents]
    assert len(workers) == 1, parents
    return workers[0]


def test_every_answered_partner_query_is_in_the_log_when_a_server_s_worker_is_killed(two_servers, make_uow,
                                                                                     session_factory, system):
    """Partners query both servers from eight threads; one server's worker is killed with SIGKILL
    in the middle. Every answer a partner got names a reference that is in the query log: the log
    row is committed before the answer leaves."""
    import signal
    import threading

    from stdnum import luhn

    from unioncard.partner.models import PartnerQuery

    (a, b), _stores = two_servers
    with make_uow() as uow:
        _key, text = partners.create_key(uow.session, system, "Касса", "general", per_minute=partners.MAX_PER_MINUTE)
        uow.commit()
    body = "964301000000123"
    payload = json.dumps({"card_number": body + luhn.calc_check_digit(body), "surname": "Иванов"}).encode()
    answered, failures, stop = [], [], threading.Event()

    def partner(index: int) -> None:
        while not stop.is_set():
            request = urllib.request.Request((a, b)[index % 2] + "/api/v1/partner/verify", method="POST",
                                             data=payload, headers={"Authorization": f"Bearer {text}",
                                                                    "Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(request, timeout=20) as response:
                    answered.append(json.loads(response.read())["reference"])
            except (urllib.error.URLError, ConnectionError, OSError) as error:  # the killed worker's
                failures.append(repr(error))

    threads = [threading.Thread(target=partner, args=(index,)) for index in range(8)]
    for thread in threads:
        thread.start()
    time.sleep(1.5)
    os.kill(_gunicorn_worker_of(a), signal.SIGKILL)
    time.sleep(2.5)
    stop.set()
    for thread in threads:
        thread.join(30)
    assert len(answered) > 50, (len(answered), failures[:3])
    with session_factory() as session:
        logged = set(session.scalars(select(PartnerQuery.reference)))
    assert set(answered) <= logged, len(set(answered) - logged)
    assert len(logged) >= len(answered)
