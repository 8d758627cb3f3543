"""Database engine, Alembic migrations and the unit of work.

SQLite (WAL) is the embedded default; PostgreSQL is reached through psycopg 3. The schema is
only ever built by Alembic migrations, never by ``create_all``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def normalise_url(url: str) -> str:
    """Map plain postgres URLs to the psycopg 3 driver."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


# Every id column is a PostgreSQL integer: a larger number names nothing and must not reach the
# database, where it would overflow (web routes, form fields and commands all bound ids by this).
MAX_ID = 2 ** 31 - 1


def _make_private(database: Path) -> None:
    """A SQLite file holds the registry's personal data: readable by its owner only, also when it
    was made before the programs set a private umask."""
    import os

    for path in (database, database.with_name(database.name + "-wal"), database.with_name(database.name + "-shm")):
        try:
            if path.exists() and path.stat().st_uid == os.getuid() and path.stat().st_mode & 0o077:
                path.chmod(0o600)
        except OSError:
            pass  # not ours to change (read-only media, another owner): left as it is


def make_engine(url: str, **kwargs) -> Engine:
    url = normalise_url(url)
    if url.startswith("sqlite"):
        database = make_url(url).database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
            _make_private(Path(database))
        engine = create_engine(url, connect_args={"timeout": 30}, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record):
            # The stdlib driver opens transactions lazily; take the write lock at BEGIN
            # instead (BEGIN IMMEDIATE) so concurrent writers queue rather than deadlock.
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn):
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(url, **kwargs)


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", normalise_url(url).replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def chunked(values, size: int = 1000) -> list[list]:
    """``values`` in lists of ``size``: bulk look-ups use one ``IN (…)`` query per chunk instead
    of one query per row, without hitting parameter limits."""
    values = list(values)
    return [values[i:i + size] for i in range(0, len(values), size)]


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    # Every part's models (and their in-transaction event handlers) are loaded before the
    # first session, so relationships across parts resolve and no rule is missed.
    import unioncard.models  # noqa: F401

    return sessionmaker(bind=engine, expire_on_commit=False, future=True)


class UnitOfWork:
    """One business transaction: a session, commit or rollback, then events after commit.

    Services add events with :meth:`announce`; subscribers run only once the data is durable,
    so nothing downstream ever reacts to a change that was rolled back.
    """

    def __init__(self, session_factory: Callable[[], Session], subscribers=None):
        self._session_factory = session_factory
        self._subscribers = subscribers if subscribers is not None else []
        self.session: Session | None = None
        self._events: list = []

    def __enter__(self) -> "UnitOfWork":
        self.session = self._session_factory()
        self._events = []
        return self

    def __exit__(self, exc_type, exc, tb):
        try:
            if exc_type is not None:
                self.session.rollback()
            else:
                # Anything not committed explicitly is thrown away.
                self.session.rollback()
        finally:
            self.session.close()
            self.session = None

    def announce(self, event_obj) -> None:
        self._events.append(event_obj)

    def commit(self) -> None:
        from unioncard import events

        # In-transaction handlers may announce further events; run until none are left.
        handled = 0
        while handled < len(self._events):
            event_obj = self._events[handled]
            handled += 1
            for handler in events.handlers_for(event_obj):
                handler(self, event_obj)
        self.session.commit()
        events, self._events = self._events, []
        for event_obj in events:
            for subscriber in self._subscribers:
                subscriber(event_obj)

    def rollback(self) -> None:
        self.session.rollback()
        self._events = []
