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
from datetime import date

import pytest
from sqlalchemy import text

from unioncard import db
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
    return date.today()


@pytest.fixture
def app(database_url, tmp_path, tree):
    from unioncard.checkin_web import create_app
    from unioncard.config import Settings

    settings = Settings(instance_dir=tmp_path / "instance", database_url=database_url, secret_key="test-secret",
                        max_upload_bytes=256 * 1024)
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
