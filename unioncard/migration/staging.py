"""The exchange folder read once into a scratch SQLite file, and every check that needs more
than one row: orphans, duplicates, cards of unknown members, cards without consent, conflicts
with what the registry already holds.

The scratch file keeps memory flat however large the union is: only the organisation tree
(~75 k rows) is held in memory; members, consents and cards stream into indexed tables, and the
cross-file checks are SQL over them. Every problem names its file, row, column and region, so
the load can refuse exactly the regions that have one.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import tempfile
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Callable

from unioncard.i18n import N_, translate
from unioncard.issuer.domain import ACTIVE
from unioncard.migration import domain as md
from unioncard.migration.source import Source, SourceError, read_rows
from unioncard.registry import domain as rd

# Problems not attributable to a region (the central organisation, a row naming an unknown
# member) stop the whole load: they are reported under this key.
UNION_WIDE = ""
MEMBER_LEVELS = (rd.Level.PRIMARY, rd.Level.SUBDIVISION)
_ACTIVE_SQL = "(" + ",".join(f"'{s.value}'" for s in sorted(ACTIVE)) + ")"
BATCH = 20_000

_SCHEMA = """
CREATE TABLE member (member_id TEXT, org_code TEXT, region TEXT, surname TEXT, given_name TEXT, patronymic TEXT,
  birth_date TEXT, sex TEXT, category TEXT, joined TEXT, phone TEXT, email TEXT, ikey TEXT, row INTEGER);
CREATE TABLE consent (member_id TEXT, section TEXT, given_on TEXT, form TEXT, row INTEGER);
CREATE TABLE card (number TEXT, member_id TEXT, kind TEXT, status TEXT, ordered_on TEXT, status_on TEXT,
  row INTEGER);
CREATE TABLE position (org_code TEXT, member_id TEXT, kind TEXT, starts_on TEXT, ends_on TEXT, region TEXT,
  row INTEGER);
CREATE TABLE problem (file TEXT, row INTEGER, col TEXT, code TEXT, message TEXT, region TEXT, member_id TEXT);
"""


@dataclass
class Organisation:
    row: int
    data: md.OrganisationRow
    region: str | None = None      # the code of its regional organisation (itself for a region)
    depth: int = 0
    bad: bool = False              # its row was refused: placed in the tree only to find its region


@dataclass
class RegionCounts:
    organisations: int = 0
    members: int = 0
    consents: dict = field(default_factory=dict)   # section -> count
    cards: dict = field(default_factory=dict)      # status -> count
    positions: int = 0

    def as_json(self) -> dict:
        return {"organisations": self.organisations, "members": self.members,
                "consents": dict(sorted(self.consents.items())), "cards": dict(sorted(self.cards.items())),
                "positions": self.positions}


@dataclass
class Staged:
    """What was read: the tree in memory, the rest in the scratch database."""

    db: sqlite3.Connection
    path: Path
    today: date
    organisations: dict[str, Organisation] = field(default_factory=dict)
    central: Organisation | None = None
    rows_read: dict = field(default_factory=dict)      # file kind -> data rows
    fatal: SourceError | None = None                   # a file that could not be read at all
    reused: bool = False                               # opened from an earlier check's scratch file

    @property
    def regions(self) -> list[Organisation]:
        return sorted((o for o in self.organisations.values() if o.data.level == rd.Level.REGIONAL),
                      key=lambda o: o.data.code)

    def problem_count(self, region: str | None = None) -> int:
        if region is None:
            return self.db.execute("SELECT count(*) FROM problem").fetchone()[0]
        return self.db.execute("SELECT count(*) FROM problem WHERE region = ?", (region,)).fetchone()[0]

    def problems_by_region(self) -> dict[str, int]:
        return dict(self.db.execute("SELECT coalesce(region, ''), count(*) FROM problem GROUP BY 1"))

    def problems(self, limit: int | None = None):
        sql = "SELECT file, row, col, code, message, coalesce(region, '') FROM problem ORDER BY file, row, code"
        return self.db.execute(sql + (f" LIMIT {int(limit)}" if limit else ""))

    def problem_codes(self) -> dict[str, int]:
        return dict(self.db.execute("SELECT code, count(*) FROM problem GROUP BY code ORDER BY 2 DESC"))

    def close(self, keep: bool = False) -> None:
        """Close; ``keep`` leaves a complete scratch file for the next check or load to reuse."""
        self.db.close()
        if not keep or self.fatal is not None:
            self.path.unlink(missing_ok=True)
            for suffix in ("-journal", "-wal"):
                self.path.with_name(self.path.name + suffix).unlink(missing_ok=True)

    # --- per region ---------------------------------------------------------------------------

    def counts(self) -> dict[str, RegionCounts]:
        result: dict[str, RegionCounts] = defaultdict(RegionCounts)
        for org in self.organisations.values():
            if org.region:
                result[org.region].organisations += 1
        for region, count in self.db.execute("SELECT region, count(*) FROM member GROUP BY region"):
            if region:
                result[region].members = count
        for region, section, count in self.db.execute(
                "SELECT m.region, c.section, count(*) FROM consent c JOIN member m ON m.member_id = c.member_id "
                "GROUP BY 1, 2"):
            if region:
                result[region].consents[section] = count
        for region, status, count in self.db.execute(
                "SELECT m.region, c.status, count(*) FROM card c JOIN member m ON m.member_id = c.member_id "
                "GROUP BY 1, 2"):
            if region:
                result[region].cards[status] = count
        for region, count in self.db.execute("SELECT region, count(*) FROM position GROUP BY region"):
            if region:
                result[region].positions = count
        return dict(result)

    def region_organisations(self, region: str) -> list[Organisation]:
        """The region's organisations, parents before children."""
        return sorted((o for o in self.organisations.values() if o.region == region),
                      key=lambda o: (o.depth, o.row))

    def region_members(self, region: str, with_consent_rows: bool = False):
        """The region's members in file order; with the row numbers of each one's consents."""
        consent_rows = (", (SELECT group_concat(c.row, ', ') FROM consent c WHERE c.member_id = m.member_id)"
                        if with_consent_rows else "")
        return self.db.execute("SELECT m.member_id, m.org_code, m.surname, m.given_name, m.patronymic, m.birth_date, "
                               "m.sex, m.category, m.joined, m.phone, m.email, m.ikey, m.row" + consent_rows +
                               " FROM member m WHERE m.region = ? ORDER BY m.row", (region,))

    def region_consents(self, region: str):
        return self.db.execute("SELECT c.member_id, c.section, c.given_on, c.form, c.row FROM member m "
                               "CROSS JOIN consent c ON c.member_id = m.member_id WHERE m.region = ? ORDER BY c.row",
                               (region,))

    def region_cards(self, region: str):
        return self.db.execute("SELECT c.number, c.member_id, c.kind, c.status, c.ordered_on, c.status_on, c.row "
                               "FROM member m CROSS JOIN card c ON c.member_id = m.member_id WHERE m.region = ? "
                               "ORDER BY c.row", (region,))

    def region_positions(self, region: str):
        return self.db.execute("SELECT org_code, member_id, kind, starts_on, ends_on, row FROM position "
                               "WHERE region = ? ORDER BY row", (region,))

    def region_digest(self, region: str) -> str:
        """SHA-256 of the region's rows as read: a second load of the same folder finds the same."""
        digest = hashlib.sha256()
        for org in self.region_organisations(region):
            # As text: an organisation read from the files and one reopened from a kept scratch
            # file give the same digest (enums and dates by their values).
            digest.update("|".join("" if v is None else str(v) for v in
                                   (getattr(org.data, f) for f in org.data.__slots__)).encode() + b"\n")
        for query in (self.region_members, self.region_consents, self.region_cards, self.region_positions):
            digest.update(query.__name__.encode())
            for row in query(region):
                digest.update(repr(row[:-1]).encode())  # the row number is where, not what
        return digest.hexdigest()


def fingerprint(source_path: Path, today: date, card_prefixes: tuple[str, ...]) -> str:
    """SHA-256 of what a check's result depends on: the files' bytes, the day, the prefixes."""
    digest = hashlib.sha256(f"{today.isoformat()}|{','.join(card_prefixes)}|".encode())
    path = Path(source_path)
    paths = [path] if path.is_file() else [path / spec.name for spec in md.FILES.values()]
    for item in paths:
        digest.update(item.name.encode() + b"\0")
        if item.is_file():
            with item.open("rb") as handle:
                while chunk := handle.read(1 << 20):
                    digest.update(chunk)
    return digest.hexdigest()


def stage(source_path: Path, *, today: date, card_prefixes: tuple[str, ...], work_dir: Path | None = None,
          progress: Callable[[str, int], None] | None = None, reuse: bool = False) -> Staged:
    """Read the folder and run every check; the caller closes the result. With ``reuse`` the
    scratch file is kept in ``work_dir`` under the folder's fingerprint when closed with
    ``keep=True``, and a later call with the same files, day and prefixes opens it instead of
    reading again (``migrate load`` after ``migrate check``, or a load resumed after a kill)."""
    if reuse and work_dir is not None:
        path = Path(work_dir) / f"migration-{fingerprint(source_path, today, card_prefixes)[:24]}.sqlite"
        reopened = reopen(path, today)
        if reopened is not None:
            return reopened
        # One reading is kept at a time (each is as large as the folder): an older one goes.
        for old in Path(work_dir).glob("migration-*.sqlite*"):
            old.unlink(missing_ok=True)
    else:
        handle, name = tempfile.mkstemp(prefix="unioncard-migration-", suffix=".sqlite", dir=work_dir)
        os.close(handle)
        path = Path(name)
    db = sqlite3.connect(path)
    db.executescript("PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF; PRAGMA cache_size=-200000;"
                     "PRAGMA temp_store=FILE;" + _SCHEMA)
    staged = Staged(db, path, today)
    try:
        source = Source(source_path)
    except SourceError as exc:
        staged.fatal = exc
        return staged
    try:
        _Reader(staged, source, card_prefixes, progress).run()
    except SourceError as exc:
        staged.fatal = exc
    finally:
        source.close()
    db.commit()
    if staged.fatal is None:
        _remember(staged)
    return staged


def _remember(staged: Staged) -> None:
    """Write the tree and the counts read into the scratch file, and mark it complete; from here
    on it is written with a rollback journal, so a kill cannot damage what was read."""
    db = staged.db
    db.execute("CREATE TABLE org (code TEXT, parent_code TEXT, level TEXT, name TEXT, kind TEXT, region_digits TEXT, "
               "inn TEXT, added_on TEXT, row INTEGER, region TEXT, depth INTEGER)")
    db.executemany("INSERT INTO org VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", [
        (o.data.code, o.data.parent_code, o.data.level, o.data.name, o.data.kind, o.data.region, o.data.inn,
         o.data.added_on.isoformat() if o.data.added_on else None, o.row, o.region, o.depth)
        for o in staged.organisations.values()])
    db.execute("CREATE TABLE meta (rows_read TEXT, central TEXT)")
    db.execute("INSERT INTO meta VALUES (?, ?)", (json.dumps(staged.rows_read),
                                                  staged.central.data.code if staged.central else None))
    db.commit()
    db.execute("PRAGMA journal_mode=DELETE")
    db.execute("PRAGMA synchronous=NORMAL")


def reopen(path: Path, today: date) -> Staged | None:
    if not path.exists():
        return None
    try:
        db = sqlite3.connect(path)
        meta = db.execute("SELECT rows_read, central FROM meta").fetchone()
        if meta is None:
            db.close()
            return None
        db.execute("PRAGMA temp_store=FILE")
        staged = Staged(db, path, today)
        for code, parent, level, name, kind, region_digits, inn, added_on, row, region, depth in db.execute(
                "SELECT * FROM org ORDER BY row"):
            staged.organisations[code] = Organisation(row, md.OrganisationRow(
                code, parent, level, name, kind, region_digits, inn,
                date.fromisoformat(added_on) if added_on else None), region, depth)
        staged.rows_read = json.loads(meta[0])
        staged.central = staged.organisations.get(meta[1]) if meta[1] else None
        staged.reused = True
        return staged
    except sqlite3.DatabaseError:  # a file left half-written: read the folder again
        return None


_SIDE = (md.CONSENTS, md.CARDS, md.POSITIONS)
_SIDE_INDEXES = ("CREATE INDEX ix_consent_member ON consent (member_id, section);"
                 "CREATE INDEX ix_card_member ON card (member_id, kind);"
                 "CREATE INDEX ix_card_number ON card (number);"
                 "CREATE INDEX ix_position_member ON position (member_id);")


def _read_side(source_path: str, path: str, organisations: dict, today: date, prefixes: tuple[str, ...]):
    """In the second process: consents, cards and positions into the scratch file ``path``.
    Gives (rows read, None) or (rows read, the file error as (message, code, params))."""
    db = sqlite3.connect(path)
    db.executescript("PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;" + _SCHEMA)
    staged = Staged(db, Path(path), today, organisations=organisations)
    source = Source(Path(source_path))
    try:
        _Reader(staged, source, prefixes, None).read_files(_SIDE)
        failure = None
    except SourceError as exc:
        failure = (exc.message, exc.code, exc.params)
    finally:
        source.close()
        db.commit()
        db.close()
    return staged.rows_read, failure


def _start_side(reader: "_Reader"):
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    handle, path = tempfile.mkstemp(prefix="unioncard-migration-side-", suffix=".sqlite",
                                    dir=reader.staged.path.parent)
    os.close(handle)
    # spawn, not fork: the parent may have threads (the progress bar's) holding locks.
    pool = ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn"))
    future = pool.submit(_read_side, str(reader.source.path), path, reader.staged.organisations, reader.staged.today,
                         reader.prefixes)
    return pool, future, Path(path)


def _merge_side(reader: "_Reader", side) -> SourceError | None:
    """Wait for the second process and copy its tables in; gives its file error, if any."""
    pool, future, path = side
    try:
        try:
            rows_read, failure = future.result()
        except Exception:  # noqa: BLE001 - the second process could not run: read those files here
            reader.read_files(_SIDE)
            return None
        if failure is not None:
            message, code, params = failure
            return SourceError(message, code=code, **params)
        reader.staged.rows_read.update(rows_read)
        db = reader.db
        db.commit()
        db.execute("ATTACH DATABASE ? AS side", (str(path),))
        for table in ("consent", "card", "position", "problem"):
            db.execute(f"INSERT INTO main.{table} SELECT * FROM side.{table}")
        db.commit()
        db.execute("DETACH DATABASE side")
        return None
    finally:
        pool.shutdown()
        path.unlink(missing_ok=True)


class _Reader:
    def __init__(self, staged: Staged, source: Source, prefixes: tuple[str, ...], progress):
        self.staged, self.source, self.prefixes, self.progress = staged, source, prefixes, progress
        self.db = staged.db
        self.problems: list[tuple] = []

    def problem(self, file: str, row: int, problem: md.Problem, region: str | None, member_id: str | None = None):
        self.problems.append((file, row, problem.column, problem.code, problem.render(), region, member_id))
        if len(self.problems) >= BATCH:
            self.flush_problems()

    def flush_problems(self):
        self.db.executemany("INSERT INTO problem VALUES (?, ?, ?, ?, ?, ?, ?)", self.problems)
        self.problems = []

    def run(self, parallel: bool = True):
        """Read every file, then check across them. With two cores the members are read here
        while another process reads consents, cards and positions into a scratch file of its
        own, merged after (none of those needs the members to be read, only the tree)."""
        self.read_files((md.ORGANISATIONS,))
        side = _start_side(self) if parallel and (os.cpu_count() or 1) > 1 else None
        failure = None
        try:
            self.read_files((md.MEMBERS,) if side else (md.MEMBERS, *_SIDE))
        except SourceError as exc:
            failure = exc
        if side is not None:
            side_failure = _merge_side(self, side)
            failure = failure or side_failure   # the first file in order is named
        if failure is not None:
            raise failure
        self.db.executescript(_SIDE_INDEXES)
        self.cross_checks()
        self.flush_problems()

    def read_files(self, kinds) -> None:
        for kind in kinds:
            stream = self.source.open(kind)
            spec = md.FILES[kind]
            if stream is None:
                if kind == md.POSITIONS:  # the one optional file
                    self.staged.rows_read[kind] = 0
                    continue
                raise SourceError(N_("The folder has no %(file)s"), code="file_missing", file=spec.name)
            with stream:
                getattr(self, "read_" + kind)(spec, self.rows(stream, spec))
            self.flush_problems()

    def rows(self, stream, spec: md.FileSpec):
        count = 0
        for number, cells, values in read_rows(stream, spec):
            count += 1
            if self.progress and count % 100_000 == 0:
                self.progress(spec.name, 100_000)
            if cells is None:
                yield number, None, [md.Problem(N_("The row has %(cells)s cells, the header %(columns)s"),
                                                code="row_width", cells=len(values), columns=len(spec.columns))]
                continue
            bad = []
            # Most rows are clean: one look at the whole row before the cell-by-cell naming.
            if "\x00" in "".join(values) or any(len(v) > md.MAX_CELL or md.formula_like(v) for v in values):
                for column, value in cells.items():
                    if "\x00" in value:
                        bad.append(md.Problem(N_("The cell holds a NUL character"), code="nul_character",
                                              column=column))
                    elif md.formula_like(value):
                        bad.append(md.Problem(N_("The cell holds a formula (“%(value)s”): the data must be plain "
                                                 "values"), code="formula_cell", column=column, value=value[:40]))
                    elif len(value) > md.MAX_CELL:
                        bad.append(md.Problem(N_("The cell is longer than %(limit)s characters"),
                                              code="cell_too_long", column=column, limit=md.MAX_CELL))
            cells = {k: v.strip() for k, v in cells.items()}
            bad.extend(md.Problem(md.CELL_REQUIRED, code="cell_required", column=column)
                       for column in spec.required if not cells[column] and not any(p.column == column for p in bad))
            # The cells go on even with problems: the row's member or organisation still says
            # which region the problem is of.
            yield number, cells, bad
        if self.progress:
            self.progress(spec.name, count % 100_000)
        self.staged.rows_read[spec.kind] = count

    # --- organisations: the tree, in memory ------------------------------------------------------

    def read_organisations(self, spec, rows):
        orgs = self.staged.organisations
        pending = []
        for number, cells, problems in rows:
            row = None
            if cells is not None and not problems:
                row, problems = md.parse_organisation(cells, self.staged.today)
            if row is None and cells is not None:
                # A refused row still takes its place in the tree, so that its problem (and its
                # members') is its region's, not the whole union's.
                row = md.placeholder_organisation(cells)
            if row is not None and row.code in orgs:
                problems = [md.Problem(N_("The code %(value)s is already in row %(row)s"), code="code_duplicate",
                                       column="code", value=row.code, row=orgs[row.code].row)]
                row = None
            if row is not None:
                orgs[row.code] = Organisation(number, row, bad=bool(problems))
            pending.extend((number, problem, row.code if row is not None else None) for problem in problems)
        centrals = [o for o in orgs.values() if o.data.level == rd.Level.CENTRAL]
        if len(centrals) != 1:
            self.problem(spec.name, centrals[1].row if centrals[1:] else 1, md.Problem(
                N_("The file must have exactly one central organisation, it has %(count)s"), code="central_count",
                column="level", count=len(centrals)), UNION_WIDE)
        self.staged.central = centrals[0] if centrals else None
        for org in list(orgs.values()):
            self.place(org)
        for number, problem, code in pending:
            region = orgs[code].region if code in orgs else None
            self.problem(spec.name, number, problem, region or UNION_WIDE)
        first_of_digits = {}
        for region in sorted((o for o in orgs.values() if o.data.level == rd.Level.REGIONAL), key=lambda o: o.row):
            digits = region.data.region
            if digits and digits in first_of_digits:
                self.problem(spec.name, region.row, md.Problem(
                    N_("The region code %(value)s is already the code of %(other)s (row %(row)s)"),
                    code="region_code_duplicate", column="region", value=digits,
                    other=first_of_digits[digits].data.code, row=first_of_digits[digits].row), region.data.code)
            first_of_digits.setdefault(digits, region)

    def place(self, org: Organisation) -> None:
        """Find the organisation's region and depth; name an orphan, a loop, a wrong level."""
        orgs, chain, current = self.staged.organisations, [], org
        while current.data.parent_code and len(chain) < 10:
            chain.append(current)
            parent = orgs.get(current.data.parent_code)
            if parent is None:
                break
            current = parent
        region = next((o for o in [*chain, current] if o.data.level == rd.Level.REGIONAL), None)
        region_code = region.data.code if region else None
        problem = None
        parent = orgs.get(org.data.parent_code) if org.data.parent_code else None
        if org.data.parent_code and parent is None:
            problem = md.Problem(N_("The parent %(value)s is not in organisations.csv"), code="parent_unknown",
                                 column="parent_code", value=org.data.parent_code)
        elif current.data.parent_code or (org.data.level != rd.Level.CENTRAL and current.data.level != rd.Level.CENTRAL):
            problem = md.Problem(N_("The organisation does not lead up to the central one (a loop or an orphan)"),
                                 code="tree_broken", column="parent_code")
        elif parent is not None and not (org.bad or parent.bad):
            try:
                rd.check_parent_level(rd.Level(org.data.level), rd.Level(parent.data.level))
            except Exception:  # noqa: BLE001 - a ValidationError: named below with both levels
                problem = md.Problem(N_("A %(level)s organisation cannot be under a %(parent)s one"),
                                     code="parent_level_invalid", column="parent_code",
                                     level=translate(rd.LEVEL_LABELS[rd.Level(org.data.level)]).lower(),
                                     parent=translate(rd.LEVEL_LABELS[rd.Level(parent.data.level)]).lower())
        if problem is None and region is not None and org.data.region and org.data.region != region.data.region:
            problem = md.Problem(N_("The region code %(value)s differs from its regional organisation's %(region)s"),
                                 code="region_mismatch", column="region", value=org.data.region,
                                 region=region.data.region)
        org.depth = len(chain)
        org.region = region_code
        if problem is not None:
            self.problem(md.FILES[md.ORGANISATIONS].name, org.row, problem,
                         region_code if region_code else UNION_WIDE)

    def member_org(self, code: str) -> Organisation | None:
        return self.staged.organisations.get(code)

    # --- members, consents, cards, positions: the scratch tables --------------------------------

    def read_members(self, spec, rows):
        batch = []
        for number, cells, problems in rows:
            row = None
            org = self.member_org(cells["organisation_code"]) if cells else None
            if cells is not None and not problems:
                row, problems = md.parse_member(cells, self.staged.today)
            if row is not None and org is None:
                problems = [md.Problem(N_("The organisation %(value)s is not in organisations.csv"),
                                       code="organisation_unknown", column="organisation_code",
                                       value=row.organisation_code)]
            elif row is not None and org.data.level not in MEMBER_LEVELS and not org.bad:
                problems = [md.Problem(N_("Members are registered in primary organisations and their "
                                          "subdivisions, not in %(value)s"), code="member_org_level",
                                       column="organisation_code", value=org.data.code)]
            region = org.region if org else None
            for problem in problems:
                self.problem(spec.name, number, problem, region if region else UNION_WIDE,
                             cells.get("member_id") if cells else None)
            if problems or row is None:
                # A row with a defect still holds its id: others may refer to it, and it must not
                # count as an unknown member there.
                if cells and cells.get("member_id"):
                    batch.append((cells["member_id"][:md.MAX_ID_LENGTH], None, region or UNION_WIDE, *[None] * 10,
                                  number))
                continue
            batch.append((row.member_id, row.organisation_code, region, row.surname, row.given_name, row.patronymic,
                          row.birth_date.isoformat(), row.sex, row.category, row.joined.isoformat(), row.phone,
                          row.email, row.identity_key, number))
            if len(batch) >= BATCH:
                self.db.executemany("INSERT INTO member VALUES (" + ",".join("?" * 14) + ")", batch)
                batch = []
        self.db.executemany("INSERT INTO member VALUES (" + ",".join("?" * 14) + ")", batch)
        self.db.executescript("CREATE INDEX ix_member_id ON member (member_id);"
                              "CREATE INDEX ix_member_region ON member (region, row);"
                              "CREATE INDEX ix_member_ikey ON member (ikey);")

    def _rows_into(self, table: str, spec, rows, parse, values):
        batch = []
        width = None
        for number, cells, problems in rows:
            row = None
            if cells is not None and not problems:
                row, problems = parse(cells)
            for problem in problems:
                self.problem(spec.name, number, problem, None, cells.get("member_id") if cells else None)
            if row is None:
                continue
            record = (*values(row), number)
            width = len(record)
            batch.append(record)
            if len(batch) >= BATCH:
                self.db.executemany(f"INSERT INTO {table} VALUES ({','.join('?' * width)})", batch)
                batch = []
        if batch:
            self.db.executemany(f"INSERT INTO {table} VALUES ({','.join('?' * width)})", batch)

    def read_consents(self, spec, rows):
        self._rows_into("consent", spec, rows, lambda cells: md.parse_consent(cells, self.staged.today),
                        lambda r: (r.member_id, r.section, r.given_on.isoformat(), r.form))

    def read_cards(self, spec, rows):
        self._rows_into("card", spec, rows,
                        lambda cells: md.parse_card(cells, self.staged.today, self.prefixes),
                        lambda r: (r.number, r.member_id, r.kind, r.status, r.ordered_on.isoformat(),
                                   r.status_on.isoformat()))

    def read_positions(self, spec, rows):
        def parse(cells):
            row, problems = md.parse_position(cells, self.staged.today)
            if row is not None and row.organisation_code not in self.staged.organisations:
                return None, [md.Problem(N_("The organisation %(value)s is not in organisations.csv"),
                                         code="organisation_unknown", column="organisation_code",
                                         value=row.organisation_code)]
            return row, problems

        self._rows_into("position", spec, rows, parse, lambda r: (
            r.organisation_code, r.member_id, r.position, r.starts_on.isoformat(),
            r.ends_on.isoformat() if r.ends_on else None, self.staged.organisations[r.organisation_code].region))

    # --- the checks across rows and files ----------------------------------------------------------

    def cross_checks(self):
        db, names = self.db, {k: s.name for k, s in md.FILES.items()}

        def named(file, sql, message, code, column, **params):
            for row, region, member_id, *values in db.execute(sql):
                problem = md.Problem(message, code=code, column=column,
                                     **{k: values[i] for i, k in enumerate(params)})
                self.problem(file, row, problem, region if region is not None else None, member_id)

        named(names[md.MEMBERS],
              "SELECT m.row, m.region, m.member_id, f.first FROM member m JOIN (SELECT member_id, min(row) AS first "
              "FROM member GROUP BY member_id HAVING count(*) > 1) f ON f.member_id = m.member_id "
              "WHERE m.row > f.first", N_("The member id is already in row %(row)s"), "member_id_duplicate",
              "member_id", row=0)
        # Every row of one person is named (a person in two regions holds both back, not only the
        # second), each pointing at another of them.
        named(names[md.MEMBERS],
              "SELECT m.row, m.region, m.member_id, o.row, o.org_code FROM member m JOIN (SELECT ikey FROM member "
              "WHERE ikey IS NOT NULL GROUP BY ikey HAVING count(*) > 1) d ON d.ikey = m.ikey "
              "JOIN member o ON o.ikey = m.ikey AND o.row = (SELECT min(x.row) FROM member x WHERE x.ikey = m.ikey "
              "AND x.row <> m.row)",
              N_("The same person (name and birth date) is also in row %(row)s, organisation %(org)s: one "
                 "person is registered once"), "person_duplicate", None, row=0, org=0)
        for table in ("consent", "card", "position"):
            named(names[{"consent": md.CONSENTS, "card": md.CARDS, "position": md.POSITIONS}[table]],
                  f"SELECT t.row, NULL, t.member_id, t.member_id FROM {table} t WHERE NOT EXISTS "
                  "(SELECT 1 FROM member m WHERE m.member_id = t.member_id)",
                  N_("The member %(value)s is not in members.csv"), "member_unknown", "member_id", value=0)
        named(names[md.CONSENTS],
              "SELECT c.row, NULL, c.member_id, f.first FROM consent c JOIN (SELECT member_id, section, min(row) AS "
              "first FROM consent GROUP BY 1, 2 HAVING count(*) > 1) f ON f.member_id = c.member_id "
              "AND f.section = c.section WHERE c.row > f.first",
              N_("The same consent section is already in row %(row)s"), "consent_duplicate", "section", row=0)
        named(names[md.CARDS],
              "SELECT c.row, NULL, c.member_id, f.first FROM card c JOIN (SELECT number, min(row) AS first FROM card "
              "GROUP BY number HAVING count(*) > 1) f ON f.number = c.number WHERE c.row > f.first",
              N_("The card number is already in row %(row)s"), "card_number_duplicate", "number", row=0)
        named(names[md.CARDS],
              f"SELECT c.row, NULL, c.member_id, f.first FROM card c JOIN (SELECT member_id, kind, min(row) AS first "
              f"FROM card WHERE status IN {_ACTIVE_SQL} GROUP BY 1, 2 HAVING count(*) > 1) f "
              f"ON f.member_id = c.member_id AND f.kind = c.kind WHERE c.status IN {_ACTIVE_SQL} AND c.row > f.first",
              N_("The member already has a card of this kind in use in row %(row)s: one of each kind at a time"),
              "card_second_active", "status", row=0)
        named(names[md.CARDS],
              f"SELECT c.row, NULL, c.member_id, c.member_id FROM card c WHERE c.status IN {_ACTIVE_SQL} "
              "AND EXISTS (SELECT 1 FROM member m WHERE m.member_id = c.member_id) AND NOT EXISTS (SELECT 1 FROM "
              f"consent s WHERE s.member_id = c.member_id AND s.section = '{rd.ConsentSection.PROCESSING}')",
              N_("The member %(value)s holds a card without consent to processing (section 1)"),
              "card_without_consent", "member_id", value=0)
        for table, column, file in (("consent", "given_on", md.CONSENTS), ("card", "ordered_on", md.CARDS),
                                    ("position", "starts_on", md.POSITIONS)):
            named(names[file],
                  f"SELECT t.row, m.region, t.member_id, t.{column} FROM {table} t JOIN member m ON m.member_id = "
                  f"t.member_id WHERE m.birth_date IS NOT NULL AND t.{column} < m.birth_date",
                  N_("The date %(value)s is before the member's birth"), "date_before_birth", column, value=0)
        named(names[md.POSITIONS],
              "SELECT p.row, p.region, p.member_id, p.member_id FROM position p JOIN member m ON m.member_id = "
              "p.member_id WHERE m.region IS NOT p.region AND m.ikey IS NOT NULL",
              N_("The member %(value)s is registered in another region than the organisation of the position"),
              "position_other_region", "member_id", value=0)
        self.flush_problems()
        # A row that names a member is that member's region's problem.
        db.execute("UPDATE problem SET region = coalesce((SELECT m.region FROM member m WHERE m.member_id = "
                   "problem.member_id AND m.region IS NOT NULL LIMIT 1), '') WHERE region IS NULL")


CONFLICT_CODES = ("conflict_organisation", "conflict_person", "conflict_card_number", "central_mismatch")


def forget_conflicts(staged: Staged) -> None:
    """A scratch file reopened for a load: the registry is compared afresh."""
    staged.db.execute(f"DELETE FROM problem WHERE code IN ({','.join('?' * len(CONFLICT_CODES))})", CONFLICT_CODES)


def find_conflicts(staged: Staged, existing_codes: set[str], loaded_regions: set[str], people, numbers) -> None:
    """Name what the registry already holds: an organisation code of a region not loaded from
    here, a person already registered, a card number already in use. ``people`` and ``numbers``
    are iterables of the registry's identity keys (active members) and card numbers."""
    db = staged.db
    rows = []
    central_code = staged.central.data.code if staged.central else None
    for org in staged.organisations.values():
        if org.data.code in existing_codes and org.data.code != central_code and org.region not in loaded_regions:
            rows.append((md.FILES[md.ORGANISATIONS].name, org.row, "code", "conflict_organisation", translate(
                N_("The organisation %(value)s is already in the registry: it was not loaded from this folder"),
                value=org.data.code), org.region or UNION_WIDE, None))
    db.executemany("INSERT INTO problem VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
    db.execute("DROP TABLE IF EXISTS temp.known_person")
    db.execute("DROP TABLE IF EXISTS temp.known_number")
    db.execute("CREATE TEMP TABLE known_person (ikey TEXT)")
    db.execute("CREATE TEMP TABLE known_number (number TEXT)")
    for table, values in (("known_person", people), ("known_number", numbers)):
        batch = []
        for value in values:
            batch.append((value,))
            if len(batch) >= BATCH:
                db.executemany(f"INSERT INTO {table} VALUES (?)", batch)
                batch = []
        db.executemany(f"INSERT INTO {table} VALUES (?)", batch)
    db.execute("CREATE INDEX temp.ix_known_person ON known_person (ikey)")
    db.execute("CREATE INDEX temp.ix_known_number ON known_number (number)")
    skip = ",".join("?" * len(loaded_regions))
    not_loaded = f"AND m.region NOT IN ({skip})" if loaded_regions else ""
    message = translate(N_("This person is already registered in UnionCard: resolve it by hand, it is not merged"))
    db.execute(f"INSERT INTO problem SELECT ?, m.row, NULL, 'conflict_person', ?, m.region, m.member_id FROM member m "
               f"WHERE m.ikey IN (SELECT ikey FROM known_person) {not_loaded}",
               (md.FILES[md.MEMBERS].name, message, *loaded_regions))
    message = translate(N_("This card number is already in UnionCard"))
    db.execute(f"INSERT INTO problem SELECT ?, c.row, 'number', 'conflict_card_number', ?, m.region, c.member_id "
               f"FROM card c JOIN member m ON m.member_id = c.member_id "
               f"WHERE c.number IN (SELECT number FROM known_number) {not_loaded}",
               (md.FILES[md.CARDS].name, message, *loaded_regions))
    db.commit()
