"""Test set-up on a real database: SQLite by default, PostgreSQL with UNIONCARD_TEST_DB=postgresql.

Each run makes its own PostgreSQL database (unioncard_test_<pid>_<random>) from the server in
UNIONCARD_TEST_PG_URL, migrates it with Alembic and drops it afterwards, so parallel runs never
collide. Between tests every table is emptied (TRUNCATE on PostgreSQL; a fresh copy of the
migrated file on SQLite).
"""

from __future__ import annotations

import os
import secrets
import shutil

import pytest
from sqlalchemy import text

from unioncard import db
from unioncard.clock import today as union_today
from unioncard.models import metadata
from unioncard.registry.actor import Actor

DB_KIND = os.environ.get("UNIONCARD_TEST_DB", "sqlite")
PG_SERVER = os.environ.get("UNIONCARD_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture(autouse=True, scope="session")
def _fast_password_hashes():
    """scrypt at full cost takes ~50 ms a hash; tests make hundreds. Its use is tested on its own."""
    from unioncard.registry import services

    services.PASSWORD_HASH_METHOD = "pbkdf2:sha256:1000"
    yield


def pytest_report_header(config):
    return f"unioncard database: {DB_KIND}"


@pytest.fixture(scope="session")
def database_template(tmp_path_factory):
    if DB_KIND == "postgresql":
        import psycopg

        name = f"unioncard_test_{os.getpid()}_{secrets.token_hex(4)}"
        server = db.normalise_url(PG_SERVER).replace("postgresql+psycopg", "postgresql")
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        url = server.rsplit("/", 1)[0] + "/" + name
        db.upgrade(url)
        yield url
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    elif DB_KIND == "sqlite":
        path = tmp_path_factory.mktemp("db") / "template.db"
        url = f"sqlite:///{path}"
        db.upgrade(url)
        yield url
    else:
        raise pytest.UsageError(f"UNIONCARD_TEST_DB must be sqlite or postgresql, not {DB_KIND!r}")


@pytest.fixture
def database_url(database_template, tmp_path):
    if DB_KIND == "sqlite":
        source = database_template.removeprefix("sqlite:///")
        target = tmp_path / "unioncard.db"
        shutil.copyfile(source, target)
        yield f"sqlite:///{target}"
    else:
        yield database_template
        engine = db.make_engine(database_template)
        tables = ", ".join(f'"{t.name}"' for t in metadata.sorted_tables)
        with engine.begin() as conn:
            conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
        engine.dispose()


@pytest.fixture
def engine(database_url):
    engine = db.make_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def session_factory(engine):
    return db.make_session_factory(engine)


@pytest.fixture
def make_uow(session_factory):
    def factory(subscribers=None):
        return db.UnitOfWork(session_factory, subscribers)

    return factory


@pytest.fixture
def system():
    return Actor.system("test")


@pytest.fixture
def tree(make_uow, system):
    """A small union: central → two regions → territorial → primaries, with a few members."""
    from tests.support import build_tree

    return build_tree(make_uow, system)


@pytest.fixture
def today():
    return union_today()


@pytest.fixture
def app(database_url, tmp_path, tree):
    from unioncard.checkin_web import create_app
    from unioncard.config import Settings

    # Jobs run at once after the submitting commit, so a page shows their outcome deterministically;
    # tests/test_jobs.py runs them on the thread and on RQ workers as installations do.
    settings = Settings(instance_dir=tmp_path / "instance", database_url=database_url, secret_key="test-secret",
                        max_upload_bytes=256 * 1024, job_queue="inline:")
    app = create_app(settings)
    yield app
    app.extensions["unioncard"].engine.dispose()


@pytest.fixture
def web(app):
    from tests.support import WebClient

    return WebClient(app)


@pytest.fixture
def live_server(app):
    """The app on a real socket (127.0.0.1, a free port) for browser tests."""
    import threading

    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(5)


CHROMIUM = os.environ.get("UNIONCARD_CHROMIUM", "/usr/bin/chromium")


@pytest.fixture(scope="session")
def browser():
    """Debian's Chromium through Playwright. Missing Chromium is a failure, not a skip."""
    from playwright.sync_api import sync_playwright

    assert os.path.exists(CHROMIUM), f"Chromium not found at {CHROMIUM}: run scripts/setup.sh --test"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"])
        yield browser
        browser.close()


@pytest.fixture(autouse=True, scope="session")
def _fast_keystore_kdf():
    """A new software keystore costs scrypt N=2^16 (~0.2 s); tests open hundreds. The cost is
    stored in each keystore's header, so stores made here still open the normal way."""
    from unioncard.hsm import software

    software.SCRYPT_N = 2 ** 10
    yield


SOFTHSM_MODULE = os.environ.get("UNIONCARD_SOFTHSM_MODULE", "/usr/lib/softhsm/libsofthsm2.so")
HSM_PIN = "246810"
HSM_TOKENS = ("uc-ops", "uc-root")


@pytest.fixture(scope="session")
def softhsm(tmp_path_factory):
    """A real SoftHSM2 with two fresh tokens (operational, root). Missing SoftHSM2 fails the run."""
    import subprocess

    assert os.path.exists(SOFTHSM_MODULE), f"SoftHSM2 not found at {SOFTHSM_MODULE}: run scripts/setup.sh --test"
    base = tmp_path_factory.mktemp("softhsm")
    (base / "tokens").mkdir()
    conf = base / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {base / 'tokens'}\nobjectstore.backend = file\nlog.level = ERROR\n")
    # The library reads this when it is first loaded, which happens after this point.
    os.environ["SOFTHSM2_CONF"] = str(conf)
    for label in HSM_TOKENS:
        subprocess.run(["softhsm2-util", "--init-token", "--free", "--label", label, "--so-pin", "13579135",
                        "--pin", HSM_PIN], check=True, capture_output=True, env=dict(os.environ))
    return {"module": SOFTHSM_MODULE, "pin": HSM_PIN, "tokens": HSM_TOKENS}


def wipe_token(softhsm, label):
    import pkcs11

    from unioncard.hsm.pkcs11_store import _library

    token = _library(softhsm["module"]).get_token(token_label=label)
    with token.open(user_pin=softhsm["pin"], rw=True) as session:
        for obj in list(session.get_objects()):
            obj.destroy()
    del pkcs11


# --- real device stand-ins: pcscd + vpcd, CUPS with a PDF queue ------------------------------------

def _wait_until(check, seconds: float, what: str):
    import time

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.05)
    raise AssertionError(f"{what} did not become ready in {seconds} s")


@pytest.fixture(scope="session")
def pcscd():
    """pcscd with the vpcd virtual readers; missing packages fail the run (scripts/setup.sh --test)."""
    import subprocess

    assert shutil.which("pcscd"), "pcscd not installed: run scripts/setup.sh --test"
    assert os.path.exists("/usr/lib/pcsc/drivers/serial/libifdvpcd.so") or any(
        "vpcd" in name for _, _, files in os.walk("/usr/lib/pcsc") for name in files), \
        "vsmartcard-vpcd not installed: run scripts/setup.sh --test"
    started = None

    def readers():
        if started is not None:
            assert started.poll() is None, "pcscd exited"
        from smartcard.System import readers as list_readers

        try:
            return [str(r) for r in list_readers() if str(r).startswith("Virtual PCD")]
        except Exception:
            return []

    if subprocess.run(["pgrep", "-x", "pcscd"], capture_output=True).returncode == 0:
        try:  # someone's pcscd: use it if it has the virtual readers
            names = _wait_until(readers, 3, "the running pcscd's vpcd readers")
        except AssertionError:
            # A pcscd without them (one still shutting down, left by an earlier run): replace it.
            subprocess.run(["pkill", "-KILL", "-x", "pcscd"], capture_output=True)
            _wait_until(lambda: subprocess.run(["pgrep", "-x", "pcscd"], capture_output=True).returncode != 0,
                        5, "the old pcscd to exit")
            names = None
    else:
        names = None
    attempts = 3
    while names is None:
        attempts -= 1
        started = subprocess.Popen(["pcscd", "-f"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            names = _wait_until(readers, 20, "pcscd with the vpcd readers")
        except AssertionError:
            # Seen once right after the previous run's pcscd stopped: the new one came up without
            # the virtual readers for longer than 30 s. Started again it has them.
            started.kill()
            started.wait(5)
            started = None
            if not attempts:
                raise
            import time

            time.sleep(5)
    yield names
    if started is not None:
        started.terminate()
        try:
            started.wait(10)
        except subprocess.TimeoutExpired:  # never leave a half-stopped pcscd for the next run to find
            started.kill()
            started.wait(5)


@pytest.fixture
def virtual_card(pcscd):
    """A card feeder behind the real reader «Virtual PCD 00 00»: blank UnionCard chips, one after another."""
    from unioncard.hardware.emulator import CardFeeder
    from unioncard.hardware.vpcd import VpcdCardServer

    feeder = CardFeeder()
    server = VpcdCardServer(feeder).start()
    _wait_until(server.connected.is_set, 10, "the emulated card")
    yield feeder
    server.stop()
    assert server.error is None, server.error


@pytest.fixture(scope="session")
def cups_queue(tmp_path_factory):
    """A private cupsd (own config, spool and socket) with a cups-pdf queue writing into a folder."""
    import socket
    import subprocess

    assert shutil.which("cupsd") and os.path.exists("/usr/lib/cups/backend/cups-pdf"), \
        "CUPS or cups-pdf not installed: run scripts/setup.sh --test"
    import tempfile
    from pathlib import Path

    # Not under pytest's folder (0700): CUPS runs its filters as user lp, who must reach the spool.
    base = Path(tempfile.mkdtemp(prefix="unioncard-cups-"))
    os.chmod(base, 0o755)
    for name in ("spool", "cache", "state", "logs", "out", "tmp", "ppd"):
        (base / name).mkdir()
        os.chmod(base / name, 0o755)
    os.chmod(base / "tmp", 0o1777)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sock = base / "cups.sock"
    (base / "cupsd.conf").write_text(
        f"Listen 127.0.0.1:{port}\nListen {sock}\nLogLevel warn\nWebInterface No\nDefaultAuthType None\n"
        "<Location />\n  Order allow,deny\n  Allow all\n</Location>\n"
        "<Policy default>\n  <Limit All>\n    Order deny,allow\n  </Limit>\n</Policy>\n")
    (base / "cups-files.conf").write_text(
        f"ServerRoot {base}\nRequestRoot {base / 'spool'}\nCacheDir {base / 'cache'}\nStateDir {base / 'state'}\n"
        f"TempDir {base / 'tmp'}\nErrorLog {base / 'logs' / 'error_log'}\nAccessLog {base / 'logs' / 'access_log'}\n"
        f"PageLog {base / 'logs' / 'page_log'}\nSystemGroup root\nFileDevice No\n")
    queue = f"uc{os.getpid()}"
    # cups-pdf reads its output folder from /etc/cups (not from the private ServerRoot).
    pdf_conf = f"/etc/cups/cups-pdf-{queue}.conf"
    with open(pdf_conf, "w") as handle:
        handle.write(f"Out {base / 'out'}\nAnonDirName {base / 'out'}\nUserUMask 0022\nLabel 1\n")
    daemon = subprocess.Popen(["cupsd", "-f", "-c", str(base / "cupsd.conf"), "-s", str(base / "cups-files.conf")],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def ready():
        assert daemon.poll() is None, (base / "logs" / "error_log").read_text() if (
            base / "logs" / "error_log").exists() else "cupsd exited"
        return subprocess.run(["lpstat", "-h", str(sock), "-r"], capture_output=True).returncode == 0

    _wait_until(ready, 10, "cupsd")
    failures = []

    def add_queue():
        # The scheduler answers lpstat before it takes admin requests: retry for a while.
        result = subprocess.run(["lpadmin", "-h", str(sock), "-p", queue, "-E", "-v", f"cups-pdf:/{queue}",
                                 "-P", "/usr/share/ppd/cups-pdf/CUPS-PDF_opt.ppd"], capture_output=True, text=True,
                                env=dict(os.environ, CUPS_SERVER=str(sock)))
        failures.append(result.stderr.strip())
        return result.returncode == 0

    try:
        _wait_until(add_queue, 20, "the cups-pdf queue")
    except AssertionError:
        raise AssertionError(f"lpadmin failed: {failures[-3:]}") from None
    os.environ["CUPS_SERVER"] = str(sock)
    yield {"queue": queue, "server": str(sock), "out": base / "out", "port": port}
    daemon.terminate()
    daemon.wait(10)
    os.remove(pdf_conf)
    shutil.rmtree(base, ignore_errors=True)
