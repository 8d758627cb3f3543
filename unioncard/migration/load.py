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
import time as time_module
from dataclasses import dataclass, field
from datetime import date, datetime, time
from typing import Callable

from sqlalchemy import func, insert, select, text
from sqlalchemy.engine import Connection, Engine

from unioncard import clock
from unioncard.i18n import N_, translate
from unioncard.issuer import cardnumber
from unioncard.issuer import domain as cd
from unioncard.issuer.models import Card, CardEvent, CardNumberCounter, Revocation
from unioncard.migration import domain as md
from unioncard.migration.models import MigrationLoad
from unioncard.migration.staging import UNION_WIDE, Staged, find_conflicts
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
    status: str               # loaded / unchanged / refused / changed
    problems: int = 0
    seconds: float = 0.0


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

    find_conflicts(staged, codes, set(loaded), stream(
        select(Person.identity_key).join(Membership, Membership.person_id == Person.id)
        .where(Membership.is_active, Membership.migration_load_id.is_(None)), has_people),
        stream(select(Card.number).where(Card.number.is_not(None), Card.migration_load_id.is_(None)), has_cards))
    return loaded


class _Writer:
    """Buffered rows of one transaction, parents flushed before children."""

    def __init__(self, conn: Connection):
        self.conn, self.buffers, self.pending = conn, {}, 0
        self.is_pg = conn.dialect.name == "postgresql"

    def add(self, table, row: dict) -> None:
        self.buffers.setdefault(table, []).append(row)
        self.pending += 1
        if self.pending >= BATCH:
            self.flush()

    def flush(self) -> None:
        for table in ORDER:
            rows = self.buffers.get(table)
            if not rows:
                continue
            if self.is_pg:
                columns = list(rows[0])
                raw = self.conn.connection.driver_connection
                with raw.cursor() as cursor:
                    with cursor.copy(f'COPY "{table.name}" ({", ".join(columns)}) FROM STDIN') as copy:
                        for row in rows:
                            copy.write_row([json.dumps(v, ensure_ascii=False) if isinstance(v, (dict, list)) else v
                                            for v in (row[c] for c in columns)])
            else:
                self.conn.execute(insert(table), rows)
            self.buffers[table] = []
        self.pending = 0


class _Ids:
    """New ids from the table's own sequence (PostgreSQL) or after its largest id (SQLite, where
    the region's transaction holds the only write lock)."""

    def __init__(self, conn: Connection, table: str):
        self.conn, self.table, self.free = conn, table, []
        self.is_pg = conn.dialect.name == "postgresql"
        self.next = None if self.is_pg else (conn.scalar(text(f"SELECT max(id) FROM {table}")) or 0) + 1

    def take(self) -> int:
        if not self.is_pg:
            self.next += 1
            return self.next - 1
        if not self.free:
            self.free = list(reversed(self.conn.scalars(text(
                f"SELECT nextval(pg_get_serial_sequence('{self.table}', 'id')) FROM generate_series(1, 5000)")).all()))
        return self.free.pop()


def _audit(writer: _Writer, now: datetime, object_type: str, object_id: int, organisation_id: int, file: str,
           row: int, **details) -> None:
    writer.add(AuditEntry.__table__, dict(
        at=now, user_id=None, actor=ACTOR, action=ACTION, object_type=object_type, object_id=str(object_id),
        organisation_id=organisation_id, details={"file": file, "row": row, **details}))


def load(engine: Engine, staged: Staged, *, source_name: str, own_prefix: str = cardnumber.DEFAULT_ISSUER_PREFIX,
         progress: Callable[[int], None] | None = None,
         on_region: Callable[[RegionOutcome], None] | None = None) -> LoadResult:
    """Load every region without problems that is not loaded yet; see the module's text."""
    result = LoadResult()
    loaded = compare_with_registry(engine, staged)
    by_region = staged.problems_by_region()
    result.union_wide_problems = by_region.get(UNION_WIDE, 0)
    if staged.fatal is not None or result.union_wide_problems or staged.central is None:
        return result
    central_id = _central(engine, staged)
    counts = staged.counts()
    for region in staged.regions:
        code = region.data.code
        outcome = RegionOutcome(code, region.data.name, "refused", by_region.get(code, 0))
        if code in loaded:
            outcome.status = "unchanged" if loaded[code].source_sha256 == staged.region_digest(code) else "changed"
        elif not outcome.problems:
            started = time_module.monotonic()
            with engine.begin() as conn:
                _load_region(conn, staged, region, central_id, source_name, counts[code], own_prefix, progress,
                             started)
            outcome.status, outcome.seconds = "loaded", time_module.monotonic() - started
        result.regions.append(outcome)
        if on_region:
            on_region(outcome)
    if engine.dialect.name == "postgresql" and result.count("loaded"):
        with engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("ANALYZE"))
    return result


def _central(engine: Engine, staged: Staged) -> int:
    with engine.begin() as conn:
        existing = conn.scalar(select(Organisation.id).where(Organisation.level == rd.Level.CENTRAL))
        if existing is not None:
            return existing
        data, now = staged.central.data, clock.now()
        org_id = _Ids(conn, "organisation").take()
        writer = _Writer(conn)
        writer.add(Organisation.__table__, dict(
            id=org_id, code=data.code, name=data.name, level=data.level, kind=data.kind, inn=data.inn, parent_id=None,
            path=rd.child_path(None, org_id), region_code=None, added_on=data.added_on or clock.today(),
            removed_on=None, removal_reason=None, migration_load_id=None))
        writer.add(OrganisationParentHistory.__table__, dict(organisation_id=org_id, parent_id=None, valid_from=now,
                                                              valid_to=None))
        _audit(writer, now, "organisation", org_id, org_id, md.FILES[md.ORGANISATIONS].name, staged.central.row,
               source_id=data.code)
        writer.flush()
        return org_id


def _load_region(conn: Connection, staged: Staged, region, central_id: int, source_name: str, counts,
                 own_prefix: str, progress, started: float) -> None:
    now, today = clock.now(), clock.today()
    load_id = conn.execute(insert(MigrationLoad.__table__).values(
        region_org_code=region.data.code, region_code=region.data.region, organisation_id=0, source_name=source_name,
        source_sha256=staged.region_digest(region.data.code),
        source_counts=counts.as_json(), loaded_at=now, seconds=0)
        .returning(MigrationLoad.__table__.c.id)).scalar_one()
    writer = _Writer(conn)
    files = {kind: spec.name for kind, spec in md.FILES.items()}
    central_path = conn.scalar(select(Organisation.path).where(Organisation.id == central_id))
    org_ids, orgs = _Ids(conn, "organisation"), {}
    for org in staged.region_organisations(region.data.code):
        data = org.data
        parent_id, parent_path = orgs[data.parent_code] if data.parent_code in orgs else (central_id, central_path)
        org_id = org_ids.take()
        path = rd.child_path(parent_path, org_id)
        orgs[data.code] = (org_id, path)
        writer.add(Organisation.__table__, dict(
            id=org_id, code=data.code, name=data.name, level=data.level, kind=data.kind, inn=data.inn,
            parent_id=parent_id, path=path, region_code=region.data.region, added_on=data.added_on or today,
            removed_on=None, removal_reason=None, migration_load_id=load_id))
        writer.add(OrganisationParentHistory.__table__, dict(organisation_id=org_id, parent_id=parent_id,
                                                              valid_from=now, valid_to=None))
        _audit(writer, now, "organisation", org_id, org_id, files[md.ORGANISATIONS], org.row, source_id=data.code)
    region_id = orgs[region.data.code][0]
    conn.execute(MigrationLoad.__table__.update().where(MigrationLoad.__table__.c.id == load_id)
                 .values(organisation_id=region_id))

    # Members: the id map goes to the scratch database, not to memory (a region has up to 600 k).
    scratch = staged.db
    scratch.execute("DROP TABLE IF EXISTS idmap")
    scratch.execute("CREATE TABLE idmap (member_id TEXT PRIMARY KEY, person_id INTEGER, membership_id INTEGER, "
                    "org_id INTEGER, org_path TEXT)")
    person_ids, membership_ids = _Ids(conn, "person"), _Ids(conn, "membership")
    mapping = []
    for (member_id, org_code, surname, given, patronymic, birth, sex, category, joined, phone, email, ikey,
         row) in staged.region_members(region.data.code):
        org_id, org_path = orgs[org_code]
        person_id, membership_id = person_ids.take(), membership_ids.take()
        writer.add(Person.__table__, dict(
            id=person_id, surname=surname, given_name=given, patronymic=patronymic,
            birth_date=date.fromisoformat(birth), sex=sex, phone=phone, email=email, identity_key=ikey,
            created_at=now))
        writer.add(Membership.__table__, dict(
            id=membership_id, person_id=person_id, organisation_id=org_id, org_path=org_path,
            sort_name=rd.sort_name(surname, given, patronymic), category=category, join_date=date.fromisoformat(joined),
            leave_date=None, leave_reason=None, is_active=True, migration_load_id=load_id))
        _audit(writer, now, "member", membership_id, org_id, files[md.MEMBERS], row, source_id=member_id)
        mapping.append((member_id, person_id, membership_id, org_id, org_path))
        if len(mapping) >= BATCH:
            scratch.executemany("INSERT INTO idmap VALUES (?, ?, ?, ?, ?)", mapping)
            if progress:
                progress(len(mapping))
            mapping = []
    scratch.executemany("INSERT INTO idmap VALUES (?, ?, ?, ?, ?)", mapping)
    if progress and mapping:
        progress(len(mapping))

    for member_id, section, given_on, form, row, person_id, _, org_id, _ in _joined(scratch, "consent", (
            "member_id", "section", "given_on", "form", "row")):
        writer.add(Consent.__table__, dict(
            person_id=person_id, section=section, given_on=date.fromisoformat(given_on), form=form, withdrawn_on=None,
            recorded_at=now, recorded_by=None, migration_load_id=load_id))
        _audit(writer, now, "consent", person_id, org_id, files[md.CONSENTS], row, source_id=member_id,
               section=section)

    card_ids, serials = _Ids(conn, "card"), {}
    for number, member_id, kind, status, ordered_on, status_on, row, person_id, membership_id, org_id, org_path \
            in _joined(scratch, "card", ("number", "member_id", "kind", "status", "ordered_on", "status_on", "row")):
        card_id = card_ids.take()
        changed = datetime.combine(date.fromisoformat(status_on), NOON)
        writer.add(Card.__table__, dict(
            id=card_id, kind=kind, status=status, number=number, membership_id=membership_id, person_id=person_id,
            organisation_id=org_id, org_path=org_path, region_code=region.data.region, ordered_by=None,
            ordered_at=datetime.combine(date.fromisoformat(ordered_on), NOON), status_changed_at=changed,
            status_reason=cd.REASON_MIGRATED, replaces_card_id=None, link_token_hash=None, credential=None,
            chip_uid=None, chip_key=None, lock_version=1, migration_load_id=load_id))
        writer.add(CardEvent.__table__, dict(card_id=card_id, from_status=None, to_status=status, at=changed,
                                             user_id=None, actor=ACTOR, reason=cd.REASON_MIGRATED))
        if cd.CardStatus(status) in cd.REVOKING:
            # Partners and desks read revocations as a feed: a card blocked in the old registry is
            # in it like one blocked here.
            writer.add(Revocation.__table__, dict(card_id=card_id, number=number, status=status,
                                                  reason=cd.REASON_MIGRATED, at=changed))
        _audit(writer, now, "card", card_id, org_id, files[md.CARDS], row, number=number)
        if number.startswith(own_prefix):
            region_digits, serial = number[6:8], int(number[8:15])
            serials[region_digits] = max(serials.get(region_digits, 0), serial)

    position_ids = _Ids(conn, "activist_position")
    for org_code, member_id, kind, starts_on, ends_on, row, person_id, *_ in _joined(scratch, "position", (
            "org_code", "member_id", "kind", "starts_on", "ends_on", "row")):
        org_id = orgs[org_code][0] if org_code in orgs else None
        if org_id is None:
            continue  # an organisation of another region: staged as that region's problem
        position_id = position_ids.take()
        starts, ends = date.fromisoformat(starts_on), date.fromisoformat(ends_on) if ends_on else None
        writer.add(ActivistPosition.__table__, dict(
            id=position_id, organisation_id=org_id, person_id=person_id, kind=kind, starts_on=starts, ends_on=ends,
            elected_alternative=False, elected_first_time=False, is_paid=False, recorded_at=now,
            migration_load_id=load_id))
        if kind == PositionKind.CHAIRPERSON and ends is not None:
            writer.add(ChairpersonTerm.__table__, dict(organisation_id=org_id, person_id=person_id, starts_on=starts,
                                                        ends_on=ends))
        _audit(writer, now, "activist_position", position_id, org_id, files[md.POSITIONS], row, source_id=member_id)
    writer.flush()
    _raise_counters(conn, serials)
    conn.execute(MigrationLoad.__table__.update().where(MigrationLoad.__table__.c.id == load_id)
                 .values(seconds=int(time_module.monotonic() - started)))
    scratch.execute("DROP TABLE idmap")


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
