"""Registry benchmark: generate the full-size demo union, page and search the largest region,
import a 10 000-row XLSX.

    .venv/bin/python bench/registry_bench.py            # PostgreSQL on 127.0.0.1, full size
    .venv/bin/python bench/registry_bench.py --scale 0.1 --database sqlite

It works in its own throw-away database (PostgreSQL: ``unioncard_bench_<pid>``, dropped at the
end unless ``--keep``) and prints one line per figure with the goal beside it.
Goals (issue 2): first page and surname search of Krasnodar's members ≤ 200 ms each; 10 k-row
import ≤ 20 s.
"""

from __future__ import annotations

import argparse
import io
import resource
import statistics
import sys
import tempfile
import time
import uuid
from datetime import date

from benchkit import add_database_arguments, demo_union, letters, report, scratch_database
from openpyxl import Workbook  # noqa: E402
from sqlalchemy import select  # noqa: E402

from unioncard import db  # noqa: E402
from unioncard.registry import demo, importer, services  # noqa: E402
from unioncard.registry import domain as d  # noqa: E402
from unioncard.registry.actor import Actor  # noqa: E402
from unioncard.registry.models import Organisation  # noqa: E402

KRASNODAR_CODE = "23"


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed(fn, repeat: int) -> tuple[float, object]:
    """Median wall time in ms over ``repeat`` runs after one warm-up run."""
    result = fn()
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        result = fn()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), result


def _high_water_mib() -> float:
    """This process's peak resident memory since its exec (VmHWM; getrusage's maximum survives an
    exec on Linux, so a spawned child would report its parent's)."""
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024


def _export_in_fresh_process(url: str, organisation_id: int, actor: Actor, path: str, answer) -> None:
    from unioncard.registry.models import Membership  # noqa: F401 - every model loaded

    sessions = db.make_session_factory(db.make_engine(url))
    before = _high_water_mib()
    started = time.perf_counter()
    with db.UnitOfWork(sessions) as uow:
        rows = importer.export_members_to(uow, actor, organisation_id, path)
        uow.rollback()  # the audit row of the export is not the bench's business
    answer.put((rows, time.perf_counter() - started, before, _high_water_mib()))


def export_region(url: str, organisation_id: int, actor: Actor) -> None:
    """The region's member list exported to an XLSX file, as the export job does, in a process
    of its own (spawned, not forked), so its peak memory is the export's alone."""
    import multiprocessing
    import os

    context = multiprocessing.get_context("spawn")
    answer = context.Queue()
    path = os.path.join(tempfile.mkdtemp(prefix="unioncard-export-"), "region.xlsx")
    process = context.Process(target=_export_in_fresh_process, args=(url, organisation_id, actor, path, answer))
    process.start()
    rows, seconds, before, peak = answer.get(timeout=3600)
    process.join()
    report(f"export: the region's {rows:,} members to XLSX (streamed in keyset chunks)".replace(",", " "),
           f"{seconds:.1f} s", f"{rows / seconds:,.0f} rows/s; file {os.path.getsize(path) / 2**20:.1f} MiB".replace(",", " "))
    report("export: peak RSS of its process", f"{peak:.0f} MiB",
           f"after start-up and imports {before:.0f} MiB: the rows add {peak - before:.0f} MiB")
    os.remove(path)


def import_workbook(rows: int) -> bytes:
    wb = Workbook(write_only=True)
    ws = wb.create_sheet()
    ws.append(importer.HEADERS)
    for i in range(rows):
        ws.append(["Замеров" + letters(i), "Иван", "Петрович", date(1960 + i % 40, 1 + i % 12, 1 + i % 28),
                   "м" if i % 2 else "ж", "работающий", f"8 9{i // 10000 % 100:02d} {i % 1000:03d}-{i // 100 % 100:02d}-{i % 100:02d}", "",
                   date(2015, 9, 1), "да", "нет", "да", date(2015, 9, 1), "бумажная"])
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_database_arguments(parser)
    parser.add_argument("--scale", type=float, default=1.0, help="1.0 = 1.09 M members (the 2020 figures)")
    parser.add_argument("--import-rows", type=int, default=10_000)
    args = parser.parse_args()

    with scratch_database(args) as url:
        engine = db.make_engine(url)
        sessions = db.make_session_factory(engine)
        rss_before = peak_rss_mib()

        started = time.perf_counter()
        if args.existing:
            result = demo_union(engine, args)
        else:
            result = demo.generate(engine, scale=args.scale, seed=2020)
        elapsed = time.perf_counter() - started
        report("generate: members", f"{result.members:,}".replace(",", " "))
        report("generate: organisations (regional/territorial/primary)",
               f"{result.regions}/{result.territorials}/{result.primaries}")
        report("generate: time", f"{elapsed:.1f} s", f"({result.members / elapsed:,.0f} members/s)".replace(",", " "))
        report("generate: peak RSS of the process", f"{peak_rss_mib():.0f} MiB",
               f"(before generating: {rss_before:.0f} MiB)")

        with sessions() as session:
            region = session.scalar(select(Organisation).where(
                Organisation.region_code == KRASNODAR_CODE, Organisation.level == d.Level.REGIONAL))
            regional_staff = Actor(user_id=None, login="bench", role=d.Role.REGIONAL_STAFF,
                                   scope_path=region.path, organisation_id=region.id)

            def first_page():
                return services.list_members(session, regional_staff, region.id, page=1)

            def surname_search():
                return services.list_members(session, regional_staff, region.id, query="Кузнец", page=1)

            ms, (rows, total) = timed(first_page, 7)
            report(f"Krasnodar ({total:,} members): first page of 50".replace(",", " "), f"{ms:.1f} ms", "goal ≤ 200 ms")
            ms, (rows, found) = timed(surname_search, 7)
            report(f"Krasnodar: surname search «Кузнец» ({found} found)", f"{ms:.1f} ms", "goal ≤ 200 ms")
            deep_page = max(2, min(1000, total // 50))  # 1 000 at full size; the last full page when smaller
            offset_ms, (deep, _) = timed(lambda: services.list_members(session, regional_staff, region.id,
                                                                       page=deep_page), 5)
            report(f"Krasnodar: page {deep_page} of 50, counted off from the start (OFFSET)", f"{offset_ms:.1f} ms")
            # What «Далее» does: the page after the last row of the page before (the pager carries its id).
            before_deep = services.list_members(session, regional_staff, region.id, page=deep_page - 1)[0][-1].id
            keyset_ms, (same, _) = timed(lambda: services.list_members(session, regional_staff, region.id,
                                                                       after=before_deep), 7)
            assert [m.id for m in same] == [m.id for m in deep], "keyset and OFFSET pages differ"
            report(f"Krasnodar: page {deep_page} of 50 by the sort key (keyset, as the pager walks)", f"{keyset_ms:.1f} ms",
                   f"goal ≤ 200 ms; {offset_ms / keyset_ms:.1f}× faster than OFFSET in this run")

            territorial = session.scalar(select(Organisation).where(
                Organisation.parent_id == region.id, Organisation.level == d.Level.TERRITORIAL))
        export_region(url, region.id, regional_staff)
        admin = Actor.system("bench")
        with db.UnitOfWork(sessions) as uow:
            target = services.create_organisation(
                uow, admin, code=f"BENCH-{uuid.uuid4().hex[:8]}", name="ППО для замера импорта",
                level=d.Level.PRIMARY, parent_id=territorial.id, kind=d.OrgKind.WORKERS)
            uow.commit()
            target_id = target.id

        content = import_workbook(args.import_rows)
        report("import: XLSX size", f"{len(content) / 1024:.0f} KiB")
        for attempt in ("import", "re-import of the same file"):
            started = time.perf_counter()
            with db.UnitOfWork(sessions) as uow:
                plan = importer.plan_import(uow.session, admin, target_id, content, "bench.xlsx")
                assert not plan.errors, plan.errors[:3]
                planned = time.perf_counter() - started
                importer.apply_import(uow, admin, plan)
                uow.commit()
            elapsed = time.perf_counter() - started
            counts = ", ".join(f"{a} {plan.count(a)}" for a in ("create", "update", "unchanged") if plan.count(a))
            report(f"{attempt}: {args.import_rows} rows ({counts})", f"{elapsed:.1f} s",
                   f"goal ≤ 20 s (reading + checking {planned:.1f} s)")
        engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
