"""The station's own journal (SQLite, next to the station's files): its settings, every check-in
and undo it made (each with a nonce, the station id and the station's clock), and the check-ins of
other desks learnt at sync. Entries are never changed except to mark them synced: an undo is a
new entry naming the one it undoes, so the server can replay the same history."""

from __future__ import annotations

import sqlite3
import threading
import uuid
from datetime import datetime, timedelta
from pathlib import Path

from unioncard.errors import Conflict, NotFound
from unioncard.hsm.trust import parse_timestamp, timestamp
from unioncard.i18n import N_
from unioncard.reader_station.domain import PreviousCheckIn, Verdict

SCHEMA = """
CREATE TABLE IF NOT EXISTS setting (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS entry (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    nonce TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL CHECK (kind IN ('checkin', 'undo')),
    ref_nonce TEXT,
    number TEXT,
    name TEXT,
    role TEXT,
    region_code TEXT,
    verdict TEXT,
    source TEXT,
    credential TEXT,
    operator TEXT,
    station_clock TEXT NOT NULL,
    clock_offset REAL NOT NULL DEFAULT 0,
    synced INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS ix_entry_number ON entry (number);
CREATE INDEX IF NOT EXISTS ix_entry_unsynced ON entry (synced, seq);
CREATE TABLE IF NOT EXISTS remote (
    nonce TEXT PRIMARY KEY,
    number TEXT NOT NULL,
    desk TEXT NOT NULL,
    at TEXT NOT NULL,
    undone INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS ix_remote_number ON remote (number);
CREATE TABLE IF NOT EXISTS print_job (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    checkin_nonce TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('badge', 'mandate')),
    reason TEXT,
    operator TEXT,
    state TEXT NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'printed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    job TEXT,
    created_at TEXT NOT NULL,
    printed_at TEXT
);
CREATE INDEX IF NOT EXISTS ix_print_job_state ON print_job (state, id);
CREATE TABLE IF NOT EXISTS session_entry (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    nonce TEXT NOT NULL UNIQUE,
    session_id INTEGER NOT NULL,
    direction TEXT NOT NULL CHECK (direction IN ('in', 'out')),
    number TEXT NOT NULL,
    name TEXT,
    role TEXT,
    region_code TEXT,
    source TEXT,
    operator TEXT,
    station_clock TEXT NOT NULL,
    clock_offset REAL NOT NULL DEFAULT 0,
    synced INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS ix_session_entry_number ON session_entry (number, session_id);
"""


def no_such_check_in() -> NotFound:
    return NotFound(N_("No such check-in at this desk"), code="checkin_not_found")


# A check-in of this desk that no later undo entry names.
_LIVE = "kind = 'checkin' AND NOT EXISTS (SELECT 1 FROM entry u WHERE u.kind = 'undo' AND u.ref_nonce = e.nonce)"


class Journal:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # One connection shared by the input threads, serialised by a lock.
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(entry)")}
        if "credential" not in columns:  # a journal made before desks sent the verified credential
            self._db.execute("ALTER TABLE entry ADD COLUMN credential TEXT")
        if "operator" not in columns:  # a journal made before check-ins by document named the operator
            self._db.execute("ALTER TABLE entry ADD COLUMN operator TEXT")
        self.lock = threading.RLock()

    def close(self) -> None:
        self._db.close()

    def close_for_move(self) -> bool:
        """Leave WAL mode and close, so the file holds everything by itself and can be renamed: a
        ``-wal`` file left behind would be read into whatever file takes this name next. False
        (and still open) if another connection, a running desk, keeps the file in WAL mode."""
        with self.lock:
            try:
                mode = self._db.execute("PRAGMA journal_mode=DELETE").fetchone()[0]
            except sqlite3.OperationalError:  # locked by the other connection
                return False
            if str(mode).lower() != "delete":
                return False
            self._db.close()
        return True

    # --- settings
    def get(self, key: str, default: str | None = None) -> str | None:
        row = self._db.execute("SELECT value FROM setting WHERE key = ?", (key,)).fetchone()
        return row[0] if row else default

    def set(self, **values) -> None:
        with self.lock:
            self._db.executemany("INSERT INTO setting (key, value) VALUES (?, ?) ON CONFLICT (key) "
                                 "DO UPDATE SET value = excluded.value",
                                 [(k, None if v is None else str(v)) for k, v in values.items()])

    @property
    def clock_offset(self) -> float:
        """Seconds to add to this computer's clock to get the server's (learnt at sync)."""
        return float(self.get("clock_offset", "0") or 0)

    # --- entries
    def record(self, verdict: Verdict, source: str, station_clock: datetime, operator: str | None = None) -> str:
        nonce = uuid.uuid4().hex
        with self.lock:
            self._db.execute(
                "INSERT INTO entry (nonce, kind, number, name, role, region_code, verdict, source, credential,"
                " operator, station_clock, clock_offset) VALUES (?, 'checkin', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (nonce, verdict.number, verdict.name, verdict.role, verdict.region_code, verdict.code, source,
                 verdict.credential, operator, timestamp(station_clock), self.clock_offset))
        return nonce

    def entry(self, nonce: str) -> dict | None:
        row = self._db.execute(
            f"SELECT nonce, number, name, role, region_code, verdict, source, operator, station_clock, NOT ({_LIVE}) "
            "FROM entry e WHERE kind = 'checkin' AND nonce = ?", (nonce,)).fetchone()
        if row is None:
            return None
        keys = ("nonce", "number", "name", "role", "region_code", "verdict", "source", "operator", "at", "undone")
        return dict(zip(keys, row))

    def undo(self, nonce: str, station_clock: datetime) -> str:
        with self.lock:
            row = self._db.execute("SELECT kind FROM entry WHERE nonce = ?", (nonce,)).fetchone()
            if row is None or row[0] != "checkin":
                raise no_such_check_in()
            if self._db.execute("SELECT 1 FROM entry WHERE kind = 'undo' AND ref_nonce = ?", (nonce,)).fetchone():
                raise Conflict(N_("This check-in has already been undone"), code="checkin_already_undone")
            undo_nonce = uuid.uuid4().hex
            self._db.execute("INSERT INTO entry (nonce, kind, ref_nonce, station_clock, clock_offset) "
                             "VALUES (?, 'undo', ?, ?, ?)", (undo_nonce, nonce, timestamp(station_clock),
                                                             self.clock_offset))
        return undo_nonce

    def previous(self, numbers, since: datetime | None = None, until: datetime | None = None
                 ) -> PreviousCheckIn | None:
        """The earliest live check-in of any of these numbers that the station knows of, at or
        after ``since`` and before ``until`` (server time) when given."""
        numbers = tuple(numbers)
        marks = ", ".join("?" * len(numbers))
        desk = self.get("desk", "?")
        found = []
        for (at, offset) in self._db.execute(
                f"SELECT station_clock, clock_offset FROM entry e WHERE {_LIVE} AND number IN ({marks})", numbers):
            found.append(PreviousCheckIn(parse_timestamp(at) + timedelta(seconds=offset), desk))
        for at, other in self._db.execute(
                f"SELECT at, desk FROM remote WHERE number IN ({marks}) AND undone = 0", numbers):
            found.append(PreviousCheckIn(parse_timestamp(at), other))
        found = [p for p in found if (since is None or p.at >= since) and (until is None or p.at < until)]
        return min(found, key=lambda p: p.at) if found else None

    def recent(self, limit: int = 8) -> list[dict]:
        rows = self._db.execute(
            f"SELECT nonce, number, name, role, verdict, station_clock, NOT ({_LIVE}), source FROM entry e "
            "WHERE kind = 'checkin' ORDER BY seq DESC LIMIT ?",
            (limit,)).fetchall()
        return [{"nonce": r[0], "number": r[1], "name": r[2], "role": r[3], "verdict": r[4], "at": r[5],
                 "undone": bool(r[6]), "source": r[7]} for r in rows]

    # --- session doors: who entered and left a sitting (kept apart from the day's check-ins)
    def record_session(self, verdict: Verdict, session_id: int, direction: str, source: str,
                       station_clock: datetime, operator: str | None = None) -> str:
        nonce = uuid.uuid4().hex
        with self.lock:
            self._db.execute(
                "INSERT INTO session_entry (nonce, session_id, direction, number, name, role, region_code, source,"
                " operator, station_clock, clock_offset) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (nonce, session_id, direction, verdict.number, verdict.name, verdict.role, verdict.region_code,
                 source, operator, timestamp(station_clock), self.clock_offset))
        return nonce

    def last_in_session(self, numbers, session_id: int) -> tuple[str, datetime] | None:
        """The latest entry or exit of any of these numbers at this session recorded here."""
        numbers = tuple(numbers)
        row = self._db.execute(
            f"SELECT direction, station_clock, clock_offset FROM session_entry WHERE session_id = ? AND number IN "
            f"({', '.join('?' * len(numbers))}) ORDER BY seq DESC LIMIT 1", (session_id, *numbers)).fetchone()
        return (row[0], parse_timestamp(row[1]) + timedelta(seconds=row[2])) if row else None

    def session_counts(self, session_id: int) -> dict:
        """People who entered this session here, and of them those whose latest scan is an entry."""
        rows = self._db.execute(
            "SELECT number, direction FROM session_entry WHERE session_id = ? ORDER BY seq", (session_id,)).fetchall()
        latest = dict(rows)
        return {"entered": len({n for n, d in rows if d == "in"}),
                "inside": sum(1 for d in latest.values() if d == "in")}

    def counts(self) -> dict:
        (mine,) = self._db.execute(f"SELECT count(*) FROM entry e WHERE {_LIVE}").fetchone()
        (unsynced,) = self._db.execute("SELECT (SELECT count(*) FROM entry WHERE synced = 0) + "
                                       "(SELECT count(*) FROM session_entry WHERE synced = 0)").fetchone()
        (others,) = self._db.execute("SELECT count(DISTINCT number) FROM remote WHERE undone = 0").fetchone()
        return {"here": mine, "unsynced": unsynced, "other_desks": others}

    def unsynced(self, limit: int = 1000) -> list[dict]:
        rows = self._db.execute(
            "SELECT nonce, kind, ref_nonce, number, role, region_code, verdict, source, station_clock, clock_offset, "
            "credential, operator FROM entry WHERE synced = 0 ORDER BY seq LIMIT ?", (limit,)).fetchall()
        keys = ("nonce", "kind", "ref_nonce", "number", "role", "region_code", "verdict", "source", "station_clock",
                "clock_offset", "credential", "operator")
        entries = [{k: v for k, v in zip(keys, row) if k not in ("credential", "operator") or v is not None}
                   for row in rows]
        if len(entries) < limit:
            sessions = self._db.execute(
                "SELECT nonce, session_id, direction, number, role, region_code, source, station_clock, clock_offset, "
                "operator FROM session_entry WHERE synced = 0 ORDER BY seq LIMIT ?",
                (limit - len(entries),)).fetchall()
            keys = ("nonce", "session_id", "direction", "number", "role", "region_code", "source", "station_clock",
                    "clock_offset", "operator")
            entries += [{"kind": "session", **{k: v for k, v in zip(keys, row) if k != "operator" or v is not None}}
                        for row in sessions]
        return entries

    def mark_synced(self, nonces: list[str]) -> None:
        with self.lock:
            self._db.executemany("UPDATE entry SET synced = 1 WHERE nonce = ?", [(n,) for n in nonces])
            self._db.executemany("UPDATE session_entry SET synced = 1 WHERE nonce = ?", [(n,) for n in nonces])

    def merge_remote(self, entries: list[dict]) -> None:
        """Other desks' check-ins (from the server): nonce, number, desk, at, undone."""
        own = self.get("station_id")
        with self.lock:
            self._db.executemany(
                "INSERT INTO remote (nonce, number, desk, at, undone) VALUES (?, ?, ?, ?, ?) ON CONFLICT (nonce) "
                "DO UPDATE SET undone = excluded.undone",
                [(e["nonce"], e["number"], e["desk"], e["at"], int(bool(e["undone"]))) for e in entries
                 if str(e.get("station_id")) != own])

    # --- the desk's print queue: a printer fault leaves a job queued, never blocks a check-in
    def queue_print(self, checkin_nonce: str, kinds, at: datetime, *, reason: str | None = None,
                    operator: str | None = None) -> list[int]:
        with self.lock:
            ids = []
            for kind in kinds:
                cursor = self._db.execute(
                    "INSERT INTO print_job (checkin_nonce, kind, reason, operator, created_at) VALUES (?, ?, ?, ?, ?)",
                    (checkin_nonce, kind, reason, operator, timestamp(at)))
                ids.append(cursor.lastrowid)
            return ids

    def queued_prints(self, limit: int = 20) -> list[dict]:
        rows = self._db.execute("SELECT id, checkin_nonce, kind, attempts FROM print_job WHERE state = 'queued' "
                                "ORDER BY id LIMIT ?", (limit,)).fetchall()
        return [{"id": r[0], "nonce": r[1], "kind": r[2], "attempts": r[3]} for r in rows]

    def print_done(self, job_id: int, job: str, at: datetime) -> None:
        with self.lock:
            self._db.execute("UPDATE print_job SET state = 'printed', job = ?, error = NULL, printed_at = ?, "
                             "attempts = attempts + 1 WHERE id = ?", (job, timestamp(at), job_id))

    def print_failed(self, job_id: int, error: str) -> None:
        with self.lock:
            self._db.execute("UPDATE print_job SET error = ?, attempts = attempts + 1 WHERE id = ?",
                             (error[:300], job_id))

    def prints(self, checkin_nonce: str | None = None, limit: int = 20) -> list[dict]:
        where, params = ("WHERE checkin_nonce = ?", (checkin_nonce,)) if checkin_nonce else ("", ())
        rows = self._db.execute(
            f"SELECT id, checkin_nonce, kind, reason, state, attempts, error, created_at, printed_at FROM print_job "
            f"{where} ORDER BY id DESC LIMIT ?", (*params, limit)).fetchall()
        keys = ("id", "nonce", "kind", "reason", "state", "attempts", "error", "created_at", "printed_at")
        return [dict(zip(keys, row)) for row in rows]

    def print_counts(self) -> dict:
        (queued,) = self._db.execute("SELECT count(*) FROM print_job WHERE state = 'queued'").fetchone()
        (printed,) = self._db.execute("SELECT count(*) FROM print_job WHERE state = 'printed'").fetchone()
        row = self._db.execute("SELECT error FROM print_job WHERE state = 'queued' AND error IS NOT NULL "
                               "ORDER BY id DESC LIMIT 1").fetchone()
        return {"queued": queued, "printed": printed, "error": row[0] if row else None}

    def mark_remote_undone(self, nonces) -> None:
        with self.lock:
            self._db.executemany("UPDATE remote SET undone = 1 WHERE nonce = ?", [(n,) for n in nonces])
