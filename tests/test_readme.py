"""What the README shows, a test runs: every command in README.md's ``sh`` blocks, in order, on a
fresh instance (tiny demo data), as the real programs in subprocesses. A command fails the test on
a non-zero exit or a traceback. Servers (the demo, `run`, gunicorn, the desk page) are started,
asked for a page, and stopped. Placeholders the README names as such (PERSON_ID, BATCH_ID, KEY_ID,
a token, the server's address) get real values; files it names (members.xlsx, event.ucb) are made.
Benchmarks run at a tiny size (their full size is what bench/ is for)."""

from __future__ import annotations

import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path


ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = ROOT / ".venv" / "bin"
# The command that runs this very test is not run again inside it.
NOT_RUN = {"./scripts/test.sh": "it is the command that runs this test"}
# Benchmarks, at a size that proves the command works: (extra arguments, needs pcscd).
BENCH_SMALL = {
    "bench/registry_bench.py": ["--scale", "0.002", "--import-rows", "200"],
    "bench/keys_bench.py": ["--seconds", "0.2"],
    "bench/cards_bench.py": ["--orders", "200"],
    "bench/bureau_bench.py": ["--cards", "300", "--db-cards", "100", "--faces", "20", "--glabels-cards", "20",
                              "--chips", "5"],
    "bench/station_bench.py": ["--cards", "20000"],
    "bench/coverage_bench.py": ["--scale", "0.002"],
    "bench/partner_bench.py": ["--scale", "0.001", "--seconds", "2"],
    "bench/statistics_bench.py": ["--scale", "0.002"],
    "bench/desk_bench.py": ["--roster", "300", "--queries", "200", "--prints", "2"],
    "bench/migration_bench.py": ["--scale", "0.002"],
    "bench/mailing_bench.py": ["--members", "2000", "--messages", "50"],
}
PASSWORD_TWICE = "readme password 2026\nreadme password 2026\n"


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    commands = []
    for block in re.findall(r"```sh\n(.*?)```", text, re.S):
        joined = re.sub(r"\\\n\s*", " ", block)
        for line in joined.splitlines():
            if shlex.split(line, comments=True):
                commands.append(line)
    return commands


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_page(url: str, process: subprocess.Popen, seconds: float) -> int:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert process.poll() is None, f"the server stopped: {process.stdout.read()[-3000:]}"
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return response.status
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"{url} did not answer in {seconds} s")


class Instance:
    """A fresh UnionCard folder where the README's commands run one after another."""

    def __init__(self, folder: Path, database_url: str):
        self.folder = folder
        self.env = {**os.environ, "UNIONCARD_INSTANCE_DIR": str(folder / "var"),
                    "UNIONCARD_DATABASE_URL": database_url, "UNIONCARD_STATION_HOME": str(folder / "desk"),
                    "PYTHONUNBUFFERED": "1"}
        for name in ("KEYSTORE", "ROOT_KEYSTORE"):
            self.env.pop(f"UNIONCARD_{name}_SECRET", None)
            self.env.pop(f"UNIONCARD_{name}_SECRET_FILE", None)
        self.database_url = database_url
        self.values: dict[str, str] = {}
        self.server: str | None = None
        self.ran: list[str] = []

    def run(self, argv: list[str], stdin: str = "", env: dict | None = None, timeout: float = 300) -> str:
        result = subprocess.run(argv, cwd=self.folder, env={**self.env, **(env or {})}, input=stdin,
                                capture_output=True, text=True, timeout=timeout)
        output = result.stdout + result.stderr
        assert result.returncode == 0, f"{shlex.join(argv)} exited {result.returncode}:\n{output[-4000:]}"
        assert "Traceback" not in output, f"{shlex.join(argv)} printed a traceback:\n{output[-4000:]}"
        self.ran.append(shlex.join(argv))
        return output

    def serve(self, argv: list[str], url: str, env: dict | None = None, seconds: float = 120) -> None:
        process = subprocess.Popen(argv, cwd=self.folder, env={**self.env, **(env or {})}, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True, start_new_session=True)
        try:
            assert wait_for_page(url, process, seconds) == 200
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            output = process.communicate(timeout=30)[0]
        assert "Traceback" not in output, output[-4000:]
        self.ran.append(shlex.join(argv))

    # --- values the README leaves to the reader
    def sql(self, query: str, **params):
        from sqlalchemy import text

        from unioncard import db

        engine = db.make_engine(self.database_url)
        try:
            with engine.connect() as conn:
                return conn.execute(text(query), params).all()
        finally:
            engine.dispose()


def _substitute(instance: Instance, argv: list[str]) -> list[str]:
    out = []
    for arg in argv:
        for name, value in instance.values.items():
            arg = arg.replace(name, value)
        out.append(arg)
    return out


def _prepare(instance: Instance, argv: list[str]) -> tuple[list[str], str]:
    """Make what a command needs that an earlier step of the README would have given its reader."""
    words = " ".join(argv)
    stdin = ""
    if "appoint-chairperson" in words:
        ((person_id,),) = instance.sql(
            "SELECT m.person_id FROM membership m JOIN organisation o ON o.id = m.organisation_id "
            "WHERE o.code = '23-001-0001' AND m.is_active ORDER BY m.person_id LIMIT 1")
        instance.values["PERSON_ID"] = str(person_id)
    if " user create " in f" {words} " or "set-password" in words:
        stdin = PASSWORD_TWICE
    if "keys retire" in words:
        # The event_bundle key that `keys rotate` just replaced.
        listing = instance.run([str(VENV_BIN / "unioncard"), "keys", "list"])
        instance.values["KEY_ID"] = re.search(r"(\S+)\s+event_bundle\s+\S+\s+verify_only", listing).group(1)
        stdin = "y\n"
    if "import-members" in words:
        from tests.test_import_export import ROWS, xlsx

        (instance.folder / "members.xlsx").write_bytes(xlsx(ROWS))
    if "station enrol" in words:
        log = open(instance.folder / "server.log", "w")
        instance.background = subprocess.Popen(instance.server_argv, cwd=instance.folder, env=instance.env,
                                               stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        wait_for_page(instance.server + "/login", instance.background, 60)
        instance.values["https://unioncard.example.org"] = instance.server
        instance.values["12.XXXX"] = _desk_token(instance)
    if "station load-bundle" in words:
        _event_bundle(instance)
    return _substitute(instance, argv), stdin


def _desk_token(instance: Instance) -> str:
    from unioncard.clock import today as union_today

    from unioncard import db
    from unioncard.checkin import services as checkin
    from unioncard.registry.actor import Actor

    engine = db.make_engine(instance.database_url)
    try:
        with db.UnitOfWork(db.make_session_factory(engine)) as uow:
            central = uow.session.execute(db_text("SELECT id FROM organisation WHERE level = 'central'")).scalar()
            event = checkin.create_event(uow, Actor.system("readme"), code="README-1", name="Съезд из README",
                                         kind="congress", organisation_id=central, starts_on=union_today(),
                                         ends_on=union_today(), venue="Москва", admission="members")
            _station, token = checkin.enrol_station(uow, Actor.system("readme"), event.id, "Стол 1")
            uow.commit()
            instance.values["EVENT_ID"] = str(event.id)
            return token
    finally:
        engine.dispose()


def db_text(query):
    from sqlalchemy import text

    return text(query)


def _event_bundle(instance: Instance) -> None:
    from unioncard import db
    from unioncard.checkin import services as checkin
    from unioncard.config import load_settings
    from unioncard.hsm import ceremony
    from unioncard.registry.actor import Actor

    env = {k: v for k, v in instance.env.items() if k.startswith("UNIONCARD_")}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        settings = load_settings()
        engine = db.make_engine(instance.database_url)
        signer = ceremony.open_operational(settings)
        with db.UnitOfWork(db.make_session_factory(engine)) as uow:
            record = checkin.publish_bundle(uow, Actor.system("readme"), int(instance.values["EVENT_ID"]), signer)
            uow.commit()
            (instance.folder / "event.ucb").write_bytes(record.content)
        signer.close()
        engine.dispose()
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def test_every_readme_command_runs(database_url, tmp_path, pcscd):
    instance = Instance(tmp_path, database_url)
    (tmp_path / "var").mkdir()
    commands = readme_commands()
    assert len(commands) >= 30
    for line in commands:
        argv = shlex.split(line, comments=True)
        env = {}
        while argv and re.fullmatch(r"[A-Z_]+=.*", argv[0]):
            key, _, value = argv.pop(0).partition("=")
            env[key] = value
        program = argv[0]
        if program == "export":
            instance.env.update(arg.partition("=")[::2] for arg in argv[1:])
            continue
        if program in NOT_RUN:
            continue
        if program == "./scripts/demo.sh":
            # The first of the README's two commands, for real: set-up, demo union, logins, server.
            port = free_port()
            # Its own folder and the embedded SQLite, as on a fresh laptop; the commands below get
            # the empty database the README's command-line section starts from.
            instance.serve(["bash", str(ROOT / "scripts/demo.sh"), "--port", str(port), "--scale", "0.001"],
                           f"http://127.0.0.1:{port}/login", seconds=600,
                           env={"UNIONCARD_INSTANCE_DIR": str(tmp_path / "demo-var"), "UNIONCARD_DATABASE_URL": ""})
            continue
        # The repository's own files the README names (the venv's programs, docs' examples).
        argv = [str(ROOT / arg) if arg.startswith((".venv/", "docs/")) else arg for arg in argv]
        if argv[:2] == [str(VENV_BIN / "python"), argv[1]] and argv[1].startswith("bench/"):
            if "--existing" in argv:
                # The README's union built before (4 M members there): a small one built here.
                argv[argv.index("--existing") + 1] = _union_built_before(tmp_path)
            instance.run([sys.executable, str(ROOT / argv[1]), *argv[2:], *BENCH_SMALL[argv[1]]], env=env,
                         timeout=600)
            continue
        argv, stdin = _prepare(instance, argv)
        if argv[0].endswith("/gunicorn"):
            port = free_port()
            argv = [a.replace("127.0.0.1:8000", f"127.0.0.1:{port}") for a in argv]
            instance.serve(argv, f"http://127.0.0.1:{port}/login", env=env)
            continue
        if argv[1:2] == ["run"]:
            port = free_port()
            argv = [a.replace("5000", str(port)) for a in argv]
            instance.server = f"http://127.0.0.1:{port}"
            instance.serve(argv, instance.server + "/login", env=env)
            # Started again (with the keys set up by then) for the desk's enrolment further down.
            instance.server_argv = argv
            continue
        if argv[1:3] == ["station", "run"]:
            port = free_port()
            argv = [a.replace("8765", str(port)) for a in argv]
            instance.serve(argv, f"http://127.0.0.1:{port}/", env=env)
            continue
        try:
            output = instance.run(argv, stdin=stdin, env=env)
        except BaseException:
            _stop_background(instance)
            log = instance.folder / "server.log"
            print(log.read_text()[-5000:] if log.exists() else "")
            raise
        if argv[1:3] == ["bureau", "create"]:
            instance.values["BATCH_ID"] = re.search(r"Партия (\d+)", output).group(1)
    _stop_background(instance)
    ran = " ".join(instance.ran)
    for must in ("demo.sh", "appoint-chairperson", "bureau run", "station load-bundle", "gunicorn",
                 "partner_bench.py", "statistics_bench.py", "desk_bench.py", "--kiosk", "migrate load",
                 "migration_bench.py"):
        assert must in ran, must


def _stop_background(instance: Instance) -> None:
    process = getattr(instance, "background", None)
    if process is not None and process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(10)


def _union_built_before(tmp_path) -> str:
    """A database holding a demo union already, for a bench's --existing (its own SQLite file)."""
    from unioncard import db
    from unioncard.registry import demo

    url = f"sqlite:///{tmp_path / 'built-before.db'}"
    db.upgrade(url)
    engine = db.make_engine(url)
    demo.generate(engine, scale=0.002)
    engine.dispose()
    return url
