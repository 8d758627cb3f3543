"""Moving the union in (issue 19) at 4 M members: the exchange folder generated from the demo
union, then ``unioncard migrate check`` and ``unioncard migrate load`` into an empty PostgreSQL
database, each as its own process with its time and peak memory (the kernel's maxrss of that
process, from wait4).

Peers in the same run, on the same files:
- the check against a bare ``csv.reader`` pass over the five files (reading, no rule);
- the load against PostgreSQL's own ``COPY`` of the same five files into bare text tables
  (writing, no rule, no index, no audit).

    .venv/bin/python bench/migration_bench.py [--scale 3.66] [--keep-folder DIR]

Goals (issue 19): check ≤ 5 min, load ≤ 20 min, memory bounded (it must not grow with members).
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg
from benchkit import add_database_arguments, report, scratch_database

from unioncard import db
from unioncard.migration import domain as md
from unioncard.migration import export as exporter
from unioncard.migration import reconcile as reconciler
from unioncard.registry import demo

ROOT = Path(__file__).resolve().parents[1]


def run_measured(argv: list[str], env: dict) -> tuple[float, float, int]:
    """(seconds, peak MiB, exit code) of one process."""
    started = time.perf_counter()
    process = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _pid, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    code = os.waitstatus_to_exitcode(status)
    if code:
        print(process.stderr.read().decode()[-3000:], file=sys.stderr)
    return seconds, usage.ru_maxrss / 1024, code


def bare_read(folder: Path) -> tuple[float, int]:
    started, rows = time.perf_counter(), 0
    for spec in md.FILES.values():
        with (folder / spec.name).open(encoding="utf-8", newline="") as handle:
            for _ in csv.reader(handle):
                rows += 1
    return time.perf_counter() - started, rows


def bare_copy(pg_url: str, folder: Path) -> float:
    """PostgreSQL's COPY of the same files into unindexed text tables of a database of its own."""
    name = f"unioncard_bench_copy_{os.getpid()}"
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        with psycopg.connect(pg_url.rsplit("/", 1)[0] + "/" + name) as conn:
            for spec in md.FILES.values():
                conn.execute(f"CREATE TABLE {spec.kind} ({', '.join(c + ' text' for c in spec.columns)})")
            conn.commit()
            started = time.perf_counter()
            with conn.cursor() as cursor:
                for spec in md.FILES.values():
                    with (folder / spec.name).open("rb") as handle, cursor.copy(
                            f"COPY {spec.kind} FROM STDIN WITH (FORMAT csv, HEADER true)") as copy:
                        while chunk := handle.read(1 << 20):
                            copy.write(chunk)
            conn.commit()
            return time.perf_counter() - started
    finally:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=3.66, help="demo scale; 3.66 ≈ 4.0 M members")
    parser.add_argument("--keep-folder", type=Path, help="write the exchange folder here and keep it")
    parser.add_argument("--folder", type=Path, help="measure an exchange folder written before (no generation)")
    add_database_arguments(parser)
    args = parser.parse_args()
    folder = args.folder or args.keep_folder or Path(tempfile.mkdtemp(prefix="unioncard-exchange-"))
    try:
        if args.folder:
            rows = {spec.name: sum(1 for _ in (folder / spec.name).open("rb")) - 1 for spec in md.FILES.values()}
            report("exchange folder given: members / cards", f"{rows['members.csv']:,} / {rows['cards.csv']:,}", "")
        else:
            generate(args, folder)

        read_seconds, rows = bare_read(folder)
        report("peer: csv.reader over the five files", f"{read_seconds:.1f} s", f"{rows / read_seconds:,.0f} rows/s")
        with scratch_database(args) as target_url:
            env = {**os.environ, "UNIONCARD_DATABASE_URL": target_url,
                   "UNIONCARD_INSTANCE_DIR": str(Path(tempfile.mkdtemp(prefix="unioncard-migrate-")))}
            unioncard = [sys.executable, "-m", "unioncard", "migrate"]
            checked, peak, code = run_measured([*unioncard, "check", str(folder), "--report",
                                                str(folder.parent / "bench-check.md")], env)
            report("unioncard migrate check", f"{checked:.0f} s", f"peak {peak:,.0f} MiB; goal ≤ 300 s; exit {code}")
            report("  check / bare csv.reader (time ratio)", f"{checked / read_seconds:.1f}×", "")
            seconds, peak, code = run_measured([*unioncard, "load", str(folder), "--report",
                                                str(folder.parent / "bench-load.md")], env)
            report("unioncard migrate load (reopens the check's reading)", f"{seconds:.0f} s",
                   f"peak {peak:,.0f} MiB; goal ≤ 1200 s; exit {code}")
            report("  check + load", f"{checked + seconds:.0f} s", "goal ≤ 1200 s for the load alone")
            if args.database == "postgresql":
                copy_seconds = bare_copy(args.pg_url, folder)
                report("peer: PostgreSQL COPY of the same files, bare tables", f"{copy_seconds:.1f} s", "")
                report("  load / bare COPY (time ratio)", f"{seconds / copy_seconds:.1f}×", "")
            target = db.make_engine(target_url)
            items = reconciler.reconcile(target)
            report("reconciliation: regions / with differences", f"{len(items)} / "
                   f"{sum(1 for i in items if i.differences)}", "goal 0 differences")
            target.dispose()
    finally:
        if not (args.keep_folder or args.folder):
            shutil.rmtree(folder, ignore_errors=True)


def generate(args, folder: Path) -> None:
    """The demo union at the scale asked, on PostgreSQL, written out in the exchange format."""
    with scratch_database(args) as source_url:
        engine = db.make_engine(source_url)
        started = time.perf_counter()
        made = demo.generate(engine, scale=args.scale)
        report(f"demo union at scale {args.scale:g}: members / cards",
               f"{made.members:,} / {made.plastic_cards + made.virtual_cards:,}",
               f"{time.perf_counter() - started:.0f} s")
        started = time.perf_counter()
        written = exporter.export(engine, folder)
        engine.dispose()
        size = sum(p.stat().st_size for p in folder.iterdir()) / 1024 ** 2
        report("exchange folder written (the generator)", f"{time.perf_counter() - started:.0f} s",
               f"{sum(written.rows.values()):,} rows, {size:,.0f} MiB")


if __name__ == "__main__":
    main()
