"""Loading a checked exchange folder, region by region, each in one transaction.

A region goes in whole or not at all: its organisations, members, consents, cards (with their
numbers, history, revocations), positions, the audit row of every source row («перенесено из
АИС», with its file and row) and its ``migration_load`` row commit together. So a load killed
with -9 leaves the regions before it loaded and nothing of the one it was in; run again, it
skips the loaded regions (same digest) and loads the rest. A region whose rows changed since it
was loaded is refused, never merged. Rows are written with COPY on PostgreSQL and executemany
on SQLite; ids come from the tables' sequences, so the load may run beside a working registry.
"""

from __future__ import annotations

import json
import os
import time as time_module
from dataclasses import dataclass, field
from datetime import date, datetime, time
from pathlib import Path
from typing import Callable

from sqlalchemy import func, insert, select, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError

from unioncard import clock
from unioncard.i18n import N_, translate
from unioncard.issuer import cardnumber
from unioncard.issuer import domain as cd
from unioncard.issuer.models import Card, CardEvent, CardNumberCounter, Revocation
from unioncard.migration import domain as md
from unioncard.migration.models import MigrationLoad
from unioncard.migration.staging import UNION_WIDE, Staged, find_conflicts, forget_conflicts
from unioncard.registry import domain as rd
from unioncard.registry.models import (
    AuditEntry,
    ChairpersonTerm,
    Consent,
    Membership,
    Organisation,
    OrganisationParentHistory,
    Person,
)
from unioncard.statistics.domain import PositionKind
from unioncard.statistics.models import ActivistPosition

ACTOR = "migration"
REVOKING = frozenset(status.value for status in cd.REVOKING)
ACTION = "migration.row"
# Moments of the earlier registry are dates: a status of a day is taken at its noon, so it
# belongs to that day in every Russian time zone.
NOON = time(12, 0)
BATCH = 20_000
ORDER = (Organisation.__table__, OrganisationParentHistory.__table__, Person.__table__, Membership.__table__,
         Consent.__table__, Card.__table__, CardEvent.__table__, Revocation.__table__, ChairpersonTerm.__table__,
         ActivistPosition.__table__, AuditEntry.__table__)


@dataclass
class RegionOutcome:
    code: str                 # the regional organisation's code in the exchange files
    name: str
    status: str               # loaded / unchanged / refused / changed / held / failed
    problems: int = 0
    seconds: float = 0.0
    error: str | None = None  # the database's refusal of a region that failed to load


@dataclass
class LoadResult:
    regions: list[RegionOutcome] = field(default_factory=list)
    union_wide_problems: int = 0

    def count(self, status: str) -> int:
        return sum(1 for r in self.regions if r.status == status)


def loaded_regions(engine: Engine) -> dict[str, MigrationLoad]:
    with engine.connect() as conn:
        return {row.region_org_code: row for row in conn.execute(select(MigrationLoad.__table__))}


def compare_with_registry(engine: Engine, staged: Staged) -> dict[str, MigrationLoad]:
    """Add the conflicts with what the registry already holds to the staged problems, and the
    central organisation's match; gives the regions loaded before."""
    loaded = loaded_regions(engine)
    forget_conflicts(staged)
    with engine.connect() as conn:
        codes = set(conn.scalars(select(Organisation.code)))
        central = conn.execute(select(Organisation.code).where(Organisation.level == rd.Level.CENTRAL)).first()
        has_people = conn.scalar(select(func.count()).select_from(select(Person.id).limit(1).subquery()))
        has_cards = conn.scalar(select(func.count()).select_from(select(Card.id).limit(1).subquery()))
    if central is not None and staged.central is not None and central.code != staged.central.data.code:
        staged.db.execute("INSERT INTO problem VALUES (?, ?, 'code', 'central_mismatch', ?, '', NULL)", (
            md.FILES[md.ORGANISATIONS].name, staged.central.row, translate(N_(
                "The registry's central organisation has the code %(value)s, the file %(code)s: they must be "
                "the same"), value=central.code, code=staged.central.data.code)))

    def stream(statement, wanted):
        if not wanted:
            return
        with engine.connect() as conn:
            yield from conn.execution_options(yield_per=50_000).scalars(statement)

    # Everyone registered and every number in use, moved in earlier or not: a person moved in
    # with one region and found again in another region's files is a conflict too.
    # A region loaded before from other rows is refused, never merged: said by the check already.
    changed = [(region, loaded[region.data.code]) for region in staged.regions if region.data.code in loaded
               and loaded[region.data.code].source_sha256 != staged.region_digest(region.data.code)]
    staged.db.executemany("INSERT INTO problem VALUES (?, ?, 'code', 'region_changed', ?, ?, NULL)", [
        (md.FILES[md.ORGANISATIONS].name, region.row, translate(N_(
            "The region was loaded on %(date)s from other data: it is not loaded again and never merged"),
            date=record.loaded_at.strftime("%d.%m.%Y")), region.data.code) for region, record in changed])
    find_conflicts(staged, codes, set(loaded), stream(
        select(Person.identity_key).join(Membership, Membership.person_id == Person.id)
        .where(Membership.is_active), has_people),
        stream(select(Card.number).where(Card.number.is_not(None)), has_cards))
    return loaded


# The columns each table is written with, in the order of the tuples the load makes.
COLUMNS = {
    Organisation.__table__: ("id", "code", "name", "level", "kind", "inn", "parent_id", "path", "region_code",
                             "added_on", "migration_load_id"),
    OrganisationParentHistory.__table__: ("id", "organisation_id", "parent_id", "valid_from"),
    Person.__table__: ("id", "surname", "given_name", "patronymic", "birth_date", "sex", "phone", "email",
                       "identity_key", "created_at"),
    Membership.__table__: ("id", "person_id", "organisation_id", "org_path", "sort_name", "category", "join_date",
                           "is_active", "migration_load_id"),
    Consent.__table__: ("id", "person_id", "section", "given_on", "form", "recorded_at", "migration_load_id"),
    Card.__table__: ("id", "kind", "status", "number", "membership_id", "person_id", "organisation_id", "org_path",
                     "region_code", "ordered_at", "status_changed_at", "status_reason", "lock_version",
                     "migration_load_id"),
    CardEvent.__table__: ("id", "card_id", "to_status", "at", "actor", "reason"),
    Revocation.__table__: ("id", "card_id", "number", "status", "reason", "at"),
    ChairpersonTerm.__table__: ("id", "organisation_id", "person_id", "starts_on", "ends_on"),
    ActivistPosition.__table__: ("id", "organisation_id", "person_id", "kind", "starts_on", "ends_on",
                                 "elected_alternative", "elected_first_time", "is_paid", "recorded_at",
                                 "migration_load_id"),
    AuditEntry.__table__: ("id", "at", "actor", "action", "object_type", "object_id", "organisation_id", "details"),
}


class _Writer:
    """Buffered rows (tuples in ``COLUMNS`` order) of one transaction, parents flushed before
    children: COPY on PostgreSQL, executemany on SQLite."""

    def __init__(self, conn: Connection):
        self.conn, self.buffers, self.pending = conn, {table: [] for table in ORDER}, 0
        self.is_pg = conn.dialect.name == "postgresql"

    def add(self, table, row: tuple) -> None:
        self.buffers[table].append(row)
        self.pending += 1
        if self.pending >= BATCH:
            self.flush()

    def flush(self) -> None:
        for table in ORDER:
            rows = self.buffers[table]
            if not rows:
                continue
            columns = COLUMNS[table]
            if self.is_pg:
                raw = self.conn.connection.driver_connection
                with raw.cursor() as cursor:
                    with cursor.copy(f'COPY "{table.name}" ({", ".join(columns)}) FROM STDIN') as copy:
                        for row in rows:
                            copy.write_row(row)
            else:
                dicts = [dict(zip(columns, row)) for row in rows]
                if table is AuditEntry.__table__:
                    for row in dicts:
                        row["details"] = json.loads(row["details"])
                self.conn.execute(insert(table), dicts)
            self.buffers[table] = []
        self.pending = 0


class ReservationExceeded(Exception):
    """More rows than the region's counts said: a bug, the region is rolled back."""


class _Ids:
    """New ids for a table, after the largest in use or handed out by its sequence. The region's
    transaction holds the tables' write lock (PostgreSQL: LOCK TABLE … SHARE ROW EXCLUSIVE;
    SQLite: the database's one write lock), so nobody else takes an id meanwhile; the sequence is
    moved past the ids used when the region is done."""

    def __init__(self, conn: Connection, table: str, reserved: tuple[int, int] | None = None):
        self.conn, self.table = conn, table
        self.is_pg = conn.dialect.name == "postgresql"
        self.limit = None
        if reserved is not None:
            # A block taken beforehand (_reserve): nothing to look up, nothing to move after.
            self.first = self.next = reserved[0]
            self.limit, self.is_pg = reserved[0] + reserved[1], False
            return
        highest = conn.scalar(text(f"SELECT max(id) FROM {table}")) or 0
        if self.is_pg:
            sequence = conn.scalar(text(f"SELECT pg_get_serial_sequence('{table}', 'id')"))
            last, called = conn.execute(text(f"SELECT last_value, is_called FROM {sequence}")).one()
            highest = max(highest, last if called else last - 1)
            self.sequence = sequence
        self.first = self.next = highest + 1

    def take(self) -> int:
        self.next += 1
        if self.limit is not None and self.next > self.limit:
            raise ReservationExceeded(self.table)
        return self.next - 1

    def close(self) -> None:
        if self.is_pg and self.next > self.first:
            self.conn.execute(text(f"SELECT setval('{self.sequence}', {self.next - 1})"))


def _details(file: str, row: int, **more) -> str:
    # Made as text (COPY takes it so); the source's own ids are JSON-escaped.
    extra = "".join(f', "{k}": {json.dumps(v, ensure_ascii=False)}' for k, v in more.items())
    return f'{{"file": "{file}", "row": {row}{extra}}}'


def load(engine: Engine, staged: Staged, *, source_name: str, own_prefix: str = cardnumber.DEFAULT_ISSUER_PREFIX,
         progress: Callable[[int], None] | None = None,
         on_region: Callable[[RegionOutcome], None] | None = None, workers: int | None = None) -> LoadResult:
    """Load every region without problems that is not loaded yet; see the module's text. On
    PostgreSQL ``workers`` processes (one per core unless said) load regions side by side, each
    region still in one transaction of its own."""
    result = LoadResult()
    loaded = compare_with_registry(engine, staged)
    by_region = staged.problems_by_region()
    result.union_wide_problems = by_region.get(UNION_WIDE, 0)
    if staged.fatal is not None:
        return result
    held = bool(result.union_wide_problems) or staged.central is None
    central_id = None if held else _central(engine, staged)
    counts = staged.counts()
    pending = []
    for region in staged.regions:
        code = region.data.code
        outcome = RegionOutcome(code, region.data.name, "refused", by_region.get(code, 0))
        if held:
            outcome.status = "held"   # problems of the whole union hold every region back
        elif outcome.problems:
            outcome.status = "changed" if any(True for _ in staged.db.execute(
                "SELECT 1 FROM problem WHERE region = ? AND code = 'region_changed' LIMIT 1", (code,))) \
                and outcome.problems == 1 else "refused"
        elif code in loaded:
            outcome.status = "unchanged"
        else:
            pending.append((region, outcome))
            continue
        result.regions.append(outcome)
        if on_region:
            on_region(outcome)
    workers = min(workers or os.cpu_count() or 1, len(pending)) if engine.dialect.name == "postgresql" else 1
    if workers > 1:
        _load_side_by_side(engine, staged, pending, central_id, source_name, counts, own_prefix, workers,
                           progress, on_region, result)
    else:
        for region, outcome in pending:
            _load_one(engine, staged, region, outcome, central_id, source_name, counts[region.data.code], own_prefix,
                      progress)
            result.regions.append(outcome)
            if on_region:
                on_region(outcome)
    order = {region.data.code: i for i, region in enumerate(staged.regions)}
    result.regions.sort(key=lambda r: order[r.code])
    if engine.dialect.name == "postgresql" and result.count("loaded"):
        with engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("ANALYZE"))
    return result


def _load_one(engine: Engine, staged: Staged, region, outcome: RegionOutcome, central_id: int, source_name: str,
              counts, own_prefix: str, progress) -> RegionOutcome:
    started = time_module.monotonic()
    try:
        reserved = _reserve(engine, _needs(counts)) if engine.dialect.name == "postgresql" else None
        with engine.begin() as conn:
            _load_region(conn, staged, region, central_id, source_name, counts, own_prefix, progress, started,
                         reserved)
        outcome.status, outcome.seconds = "loaded", time_module.monotonic() - started
    except DBAPIError as exc:
        # The region's transaction is rolled back whole; the others go on. The database's own
        # words are kept for the operator (a rule the check does not know of).
        outcome.status, outcome.error = "failed", str(exc.orig).splitlines()[0][:300]
    except ReservationExceeded as exc:
        outcome.status, outcome.error = "failed", f"more rows than counted: {exc}"
    return outcome


# --- regions side by side (PostgreSQL): one process per core, each with its own connection -----------

_WORKER: dict = {}


def _worker_start(scratch: str, today: date, url: str) -> None:
    try:  # die with the parent (a load killed with -9 must not leave loaders behind)
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    from unioncard import db as database
    from unioncard.migration.staging import reopen

    _WORKER["staged"] = reopen(Path(scratch), today)
    _WORKER["engine"] = database.make_engine(url)


def _worker_load(code: str, name: str, central_id: int, source_name: str, counts, own_prefix: str):
    staged = _WORKER["staged"]
    region = staged.organisations[code]
    outcome = _load_one(_WORKER["engine"], staged, region, RegionOutcome(code, name, "refused"), central_id,
                        source_name, counts, own_prefix, None)
    return outcome


def _load_side_by_side(engine, staged, pending, central_id, source_name, counts, own_prefix, workers, progress,
                       on_region, result) -> None:
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from multiprocessing import get_context

    staged.db.commit()
    url = engine.url.render_as_string(hide_password=False)
    # The largest regions first, so that the two cores finish together.
    pending = sorted(pending, key=lambda item: -counts[item[0].data.code].members)
    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn"), initializer=_worker_start,
                             initargs=(str(staged.path), staged.today, url)) as pool:
        futures = {pool.submit(_worker_load, region.data.code, region.data.name, central_id, source_name,
                               counts[region.data.code], own_prefix): outcome for region, outcome in pending}
        for future in as_completed(futures):
            outcome = futures[future]
            done = future.result()
            outcome.status, outcome.seconds, outcome.error = done.status, done.seconds, done.error
            if progress:
                progress(counts[outcome.code].members)
            result.regions.append(outcome)
            if on_region:
                on_region(outcome)


WRITTEN = tuple(table.name for table in ORDER)


def _lock(conn: Connection, reserved: dict | None = None) -> dict[str, _Ids]:
    """An id source for each written table: from blocks reserved beforehand (PostgreSQL, where
    regions load side by side), or under the tables' write lock (SQLite's one writer; readers
    go on)."""
    if conn.dialect.name == "postgresql":
        # A region is one transaction: losing its commit in a crash loses the whole region,
        # which the next run loads again; nothing half-written can remain.
        conn.execute(text("SET LOCAL synchronous_commit = off"))
        if reserved is None:
            conn.execute(text(f"LOCK TABLE {', '.join(WRITTEN)} IN SHARE ROW EXCLUSIVE MODE"))
    return {name: _Ids(conn, name, reserved.get(name) if reserved else None) for name in WRITTEN}


def _needs(counts) -> dict[str, int]:
    """How many ids of each table a region takes, from its counts (an upper bound)."""
    cards = sum(counts.cards.values())
    revoking = sum(n for status, n in counts.cards.items() if status in REVOKING)
    return {"organisation": counts.organisations, "organisation_parent_history": counts.organisations,
            "person": counts.members, "membership": counts.members, "consent": sum(counts.consents.values()),
            "card": cards, "card_event": cards, "revocation": revoking, "chairperson_term": counts.positions,
            "activist_position": counts.positions,
            "audit_entry": counts.organisations + counts.members + cards + counts.positions}


def _reserve(engine: Engine, needs: dict[str, int]) -> dict[str, tuple[int, int]]:
    """Blocks of ids for one region, taken in a short transaction of their own: the tables' write
    lock for a moment, each sequence moved past its block. Ids of a region that then fails are
    never used (gaps are harmless)."""
    blocks = {}
    with engine.begin() as conn:
        conn.execute(text(f"LOCK TABLE {', '.join(WRITTEN)} IN SHARE ROW EXCLUSIVE MODE"))
        for table in WRITTEN:
            ids = _Ids(conn, table)
            count = needs.get(table, 0)
            blocks[table] = (ids.first, count)
            if count:
                conn.execute(text(f"SELECT setval('{ids.sequence}', {ids.first + count - 1})"))
    return blocks


def _central(engine: Engine, staged: Staged) -> int:
    with engine.begin() as conn:
        existing = conn.scalar(select(Organisation.id).where(Organisation.level == rd.Level.CENTRAL))
        if existing is not None:
            return existing
        ids = _lock(conn)
        data, now = staged.central.data, clock.now()
        org_id = ids["organisation"].take()
        writer = _Writer(conn)
        writer.add(Organisation.__table__, (org_id, data.code, data.name, data.level, data.kind, data.inn, None,
                                            rd.child_path(None, org_id), None, data.added_on or clock.today(), None))
        writer.add(OrganisationParentHistory.__table__, (ids["organisation_parent_history"].take(), org_id, None, now))
        writer.add(AuditEntry.__table__, (ids["audit_entry"].take(), now, ACTOR, ACTION, "organisation", str(org_id),
                                          org_id, _details(md.FILES[md.ORGANISATIONS].name, staged.central.row,
                                                           source_id=data.code)))
        writer.flush()
        for source in ids.values():
            source.close()
        return org_id


def _load_region(conn: Connection, staged: Staged, region, central_id: int, source_name: str, counts,
                 own_prefix: str, progress, started: float, reserved: dict | None = None) -> None:
    now, today = clock.now(), clock.today()
    ids = _lock(conn, reserved)
    load_id = conn.execute(insert(MigrationLoad.__table__).values(
        region_org_code=region.data.code, region_code=region.data.region, organisation_id=0, source_name=source_name,
        source_sha256=staged.region_digest(region.data.code),
        source_counts=counts.as_json(), loaded_at=now, seconds=0)
        .returning(MigrationLoad.__table__.c.id)).scalar_one()
    writer = _Writer(conn)
    add = writer.add
    files = {kind: spec.name for kind, spec in md.FILES.items()}
    audit_ids = ids["audit_entry"]
    audit_table = AuditEntry.__table__

    def audit(object_type: str, object_id: int, organisation_id: int, details: str) -> None:
        add(audit_table, (audit_ids.take(), now, ACTOR, ACTION, object_type, str(object_id), organisation_id, details))

    central_path = conn.scalar(select(Organisation.path).where(Organisation.id == central_id))
    orgs = {}
    for org in staged.region_organisations(region.data.code):
        data = org.data
        parent_id, parent_path = orgs[data.parent_code] if data.parent_code in orgs else (central_id, central_path)
        org_id = ids["organisation"].take()
        path = rd.child_path(parent_path, org_id)
        orgs[data.code] = (org_id, path)
        add(Organisation.__table__, (org_id, data.code, data.name, data.level, data.kind, data.inn, parent_id, path,
                                     region.data.region, data.added_on or today, load_id))
        add(OrganisationParentHistory.__table__, (ids["organisation_parent_history"].take(), org_id, parent_id, now))
        audit("organisation", org_id, org_id, _details(files[md.ORGANISATIONS], org.row, source_id=data.code))
    region_id = orgs[region.data.code][0]
    conn.execute(MigrationLoad.__table__.update().where(MigrationLoad.__table__.c.id == load_id)
                 .values(organisation_id=region_id))

    # Members: the id map goes to the scratch database, not to memory (a region has up to 600 k).
    scratch = staged.db
    # A temporary table (its own file): the scratch file itself is only read here.
    scratch.execute("DROP TABLE IF EXISTS temp.idmap")
    scratch.execute("CREATE TEMP TABLE idmap (member_id TEXT PRIMARY KEY, person_id INTEGER, membership_id INTEGER, "
                    "org_id INTEGER, org_path TEXT)")
    person_ids, membership_ids = ids["person"], ids["membership"]
    person_table, membership_table = Person.__table__, Membership.__table__
    members_file, consents_file = files[md.MEMBERS], files[md.CONSENTS]
    mapping = []
    for (member_id, org_code, surname, given, patronymic, birth, sex, category, joined, phone, email, ikey,
         row, consent_rows) in staged.region_members(region.data.code, with_consent_rows=True):
        org_id, org_path = orgs[org_code]
        person_id, membership_id = person_ids.take(), membership_ids.take()
        add(person_table, (person_id, surname, given, patronymic, date.fromisoformat(birth), sex, phone, email, ikey,
                           now))
        add(membership_table, (membership_id, person_id, org_id, org_path, rd.sort_name(surname, given, patronymic),
                               category, date.fromisoformat(joined), True, load_id))
        # One audit row for the member's row and the rows of their consents (each source row is
        # named with its file and number, without a row of audit for each of 8 M consents).
        consents = f', "consents": {{"file": "{consents_file}", "rows": [{consent_rows}]}}' if consent_rows else ""
        audit("member", membership_id, org_id,
              f'{{"file": "{members_file}", "row": {row}, "source_id": {json.dumps(member_id, ensure_ascii=False)}'
              f'{consents}}}')
        mapping.append((member_id, person_id, membership_id, org_id, org_path))
        if len(mapping) >= BATCH:
            scratch.executemany("INSERT INTO idmap VALUES (?, ?, ?, ?, ?)", mapping)
            if progress:
                progress(len(mapping))
            mapping = []
    scratch.executemany("INSERT INTO idmap VALUES (?, ?, ?, ?, ?)", mapping)
    if progress and mapping:
        progress(len(mapping))

    consent_ids, consent_table = ids["consent"], Consent.__table__
    for _member_id, section, given_on, form, _row, person_id, _, _org_id, _ in _joined(scratch, "consent", (
            "member_id", "section", "given_on", "form", "row")):
        add(consent_table, (consent_ids.take(), person_id, section, date.fromisoformat(given_on), form, now, load_id))

    serials = {}
    card_ids, event_ids, revocation_ids = ids["card"], ids["card_event"], ids["revocation"]
    for number, member_id, kind, status, ordered_on, status_on, row, person_id, membership_id, org_id, org_path \
            in _joined(scratch, "card", ("number", "member_id", "kind", "status", "ordered_on", "status_on", "row")):
        card_id = card_ids.take()
        changed = datetime.combine(date.fromisoformat(status_on), NOON)
        add(Card.__table__, (card_id, kind, status, number, membership_id, person_id, org_id, org_path,
                             region.data.region, datetime.combine(date.fromisoformat(ordered_on), NOON), changed,
                             cd.REASON_MIGRATED, 1, load_id))
        add(CardEvent.__table__, (event_ids.take(), card_id, status, changed, ACTOR, cd.REASON_MIGRATED))
        if status in REVOKING:
            # Partners and desks read revocations as a feed: a card blocked in the old registry is
            # in it like one blocked here.
            add(Revocation.__table__, (revocation_ids.take(), card_id, number, status, cd.REASON_MIGRATED, changed))
        audit("card", card_id, org_id, _details(files[md.CARDS], row, number=number))
        if number.startswith(own_prefix):
            region_digits, serial = number[6:8], int(number[8:15])
            if serial > serials.get(region_digits, 0):
                serials[region_digits] = serial

    for org_code, member_id, kind, starts_on, ends_on, row, person_id, *_ in _joined(scratch, "position", (
            "org_code", "member_id", "kind", "starts_on", "ends_on", "row")):
        org_id = orgs[org_code][0] if org_code in orgs else None
        if org_id is None:
            continue  # an organisation of another region: staged as that region's problem
        position_id = ids["activist_position"].take()
        starts, ends = date.fromisoformat(starts_on), date.fromisoformat(ends_on) if ends_on else None
        add(ActivistPosition.__table__, (position_id, org_id, person_id, kind, starts, ends, False, False, False, now,
                                         load_id))
        if kind == PositionKind.CHAIRPERSON and ends is not None:
            add(ChairpersonTerm.__table__, (ids["chairperson_term"].take(), org_id, person_id, starts, ends))
        audit("activist_position", position_id, org_id,
              _details(files[md.POSITIONS], row, source_id=member_id))
    writer.flush()
    for source in ids.values():
        source.close()
    _raise_counters(conn, serials)
    conn.execute(MigrationLoad.__table__.update().where(MigrationLoad.__table__.c.id == load_id)
                 .values(seconds=int(time_module.monotonic() - started)))
    scratch.execute("DROP TABLE temp.idmap")


def _joined(scratch, table: str, columns: tuple[str, ...]):
    """The table's rows of the region's members (those in the id map), with their new ids."""
    wanted = ", ".join(f"t.{c}" for c in columns)
    # CROSS JOIN keeps the id map as the outer loop: the region's members, each looked up in the
    # table's member index, instead of a scan of the whole union's table per region.
    return scratch.execute(f"SELECT {wanted}, i.person_id, i.membership_id, i.org_id, i.org_path FROM idmap i "
                           f"CROSS JOIN {table} t ON t.member_id = i.member_id ORDER BY i.rowid, t.row")


def _raise_counters(conn: Connection, serials: dict[str, int]) -> None:
    """Our own serial counters start above the highest migrated serial of each region, so a new
    number never collides with a migrated one."""
    table = CardNumberCounter.__table__
    for region_digits, highest in serials.items():
        current = conn.scalar(select(table.c.next_serial).where(table.c.region_code == region_digits))
        if current is None:
            conn.execute(insert(table).values(region_code=region_digits, next_serial=highest + 1))
        elif current <= highest:
            conn.execute(table.update().where(table.c.region_code == region_digits).values(next_serial=highest + 1))
