"""What the benchmarks share: a throw-away database, figure lines, letter-only name suffixes."""

from __future__ import annotations

import os
import sys
import tempfile
import uuid
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psycopg  # noqa: E402

from unioncard import db  # noqa: E402


def add_database_arguments(parser) -> None:
    parser.add_argument("--database", choices=["postgresql", "sqlite"], default="postgresql")
    parser.add_argument("--pg-url", default=os.environ.get("UNIONCARD_TEST_PG_URL",
                                                          "postgresql://postgres@127.0.0.1:5432/test"))
    parser.add_argument("--keep", action="store_true", help="keep the benchmark database")
    parser.add_argument("--existing", metavar="URL",
                        help="measure a demo union already built there (unioncard demo-data --scale 3.66 takes "
                             "9 minutes at 4 M members) instead of building one; it is neither built nor dropped")


@contextmanager
def scratch_database(args):
    """A migrated database of its own (PostgreSQL: unioncard_bench_<pid>_<random>, dropped at the
    end unless --keep; SQLite: a file in a temporary folder); yields its URL."""
    name = None
    if getattr(args, "existing", None):
        print(f"database: the existing {args.existing}", flush=True)
        db.upgrade(args.existing)
        yield args.existing
        return
    if args.database == "postgresql":
        name = f"unioncard_bench_{os.getpid()}_{uuid.uuid4().hex[:6]}"
        with psycopg.connect(args.pg_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        url = args.pg_url.rsplit("/", 1)[0] + "/" + name
    else:
        url = f"sqlite:///{Path(tempfile.mkdtemp(prefix='unioncard-bench-')) / 'bench.sqlite3'}"
    print(f"database: {args.database} ({url})", flush=True)
    try:
        db.upgrade(url)
        yield url
    finally:
        if name and not args.keep:
            with psycopg.connect(args.pg_url, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def report(name: str, value: str, goal: str = "") -> None:
    print(f"{name:<55} {value:>16}   {goal}", flush=True)


def letters(number: int) -> str:
    """A distinct all-letter suffix for each number (person names allow letters only)."""
    alphabet = "абвгдежзиклмнопрстуфхцчшэюя"
    out = ""
    while True:
        number, digit = divmod(number, len(alphabet))
        out += alphabet[digit]
        if not number:
            return out


def one_primary(sessions):
    """Central → region 23 → one primary organisation, empty. Returns (region, primary)."""
    from unioncard.registry import domain as d
    from unioncard.registry import services as registry
    from unioncard.registry.actor import Actor

    admin = Actor.system("bench")
    with db.UnitOfWork(sessions) as uow:
        central = registry.create_organisation(uow, admin, code="0", name="Профсоюз", level=d.Level.CENTRAL)
        region = registry.create_organisation(uow, admin, code="23", name="Краснодарская краевая организация",
                                              level=d.Level.REGIONAL, parent_id=central.id, region_code="23")
        primary = registry.create_organisation(uow, admin, code="23-1", name="ППО для замера",
                                               level=d.Level.PRIMARY, parent_id=region.id, kind=d.OrgKind.WORKERS)
        uow.commit()
    return region, primary


def one_primary_with_members(sessions, count: int):
    """Central → region 23 → one primary organisation holding ``count`` consenting members.
    Returns (region, primary, membership ids)."""
    from datetime import date

    from unioncard.registry import domain as d
    from unioncard.registry import services as registry
    from unioncard.registry.actor import Actor

    admin = Actor.system("bench")
    region, primary = one_primary(sessions)
    membership_ids = []
    # 10 000 a transaction: each registration takes an advisory lock per identity, and PostgreSQL
    # holds a transaction's locks in a table of limited size.
    for first in range(0, count, 10_000):
        with db.UnitOfWork(sessions) as uow:
            membership_ids += registry.register_new_members(uow, admin, primary.id, [
                registry.NewMember(registry.PersonData("Замеров" + letters(i), "Иван", None,
                                                       date(1960 + i % 40, 1 + i % 12, 1 + i % 28)),
                                   d.Category.WORKING, date(2015, 9, 1),
                                   ((d.ConsentSection.PROCESSING, date(2015, 9, 1), d.ConsentForm.PAPER),))
                for i in range(first, min(count, first + 10_000))])
            uow.commit()
    return region, primary, membership_ids


def demo_union(engine, args, **options):
    """The demo union at ``args.scale`` built into the bench's database, or, with --existing, the
    counts of the one already there; the time it took is printed either way."""
    import time

    from sqlalchemy import func, select

    from unioncard.issuer.models import Card
    from unioncard.registry import demo
    from unioncard.registry.models import Membership, Organisation

    started = time.perf_counter()
    if getattr(args, "existing", None):
        with engine.connect() as conn:
            kinds = dict(conn.execute(select(Card.kind, func.count()).where(Card.status == "issued")
                                      .group_by(Card.kind)).all())
            result = demo.DemoResult(
                primaries=conn.scalar(select(func.count()).select_from(Organisation)
                                      .where(Organisation.level == "primary")),
                members=conn.scalar(select(func.count()).select_from(Membership).where(Membership.is_active)),
                plastic_cards=kinds.get("plastic", 0), virtual_cards=kinds.get("virtual", 0))
        report("demo union: the existing one", f"{result.members:,} members")
        return result
    result = demo.generate(engine, scale=args.scale, **options)
    report(f"demo union at scale {args.scale:g}: members / cards",
           f"{result.members:,} / {result.plastic_cards + result.virtual_cards:,}",
           f"{time.perf_counter() - started:.0f} s")
    return result
