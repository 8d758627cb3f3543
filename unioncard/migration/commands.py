"""``unioncard migrate …``: moving the union in from its earlier registry (docs/migration.md)."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from sqlalchemy.exc import DBAPIError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from unioncard import clock, db
from unioncard.config import load_settings
from unioncard.errors import ValidationError
from unioncard.i18n import N_, translate
from unioncard.migration import export as exporter
from unioncard.migration import load as loader
from unioncard.migration import reconcile as reconciler
from unioncard.migration import report as reports
from unioncard.migration.staging import stage

console = Console()


def _progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=console, transient=False)


def _stage(folder: Path, settings, progress: Progress):
    """Read and check the folder, or reopen what an earlier check of the same files left in the
    instance folder (``migrate load`` after ``migrate check``; a load resumed after a kill)."""
    task = progress.add_task(translate(N_("Reading the files")), total=None)
    work_dir = settings.instance_dir / "migration"
    work_dir.mkdir(parents=True, exist_ok=True)
    staged = stage(folder, today=clock.today(), card_prefixes=settings.card_prefixes, work_dir=work_dir,
                   progress=lambda name, n: progress.update(task, advance=n, description=name), reuse=True)
    progress.update(task, description=translate(N_("Files read")), total=progress.tasks[task].completed)
    return staged


def _write(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")
    console.print(translate(N_("The report is in %(path)s"), path=str(path)))


def _engine(settings):
    engine = db.make_engine(settings.database_url)
    return engine


def _report_path(path: Path) -> Path:
    """Where a report goes: its folder must exist (found out before an hour of loading)."""
    if not path.parent.is_dir():
        raise ValidationError(N_("There is no folder %(path)s for the report"), code="report_folder_missing",
                              path=str(path.parent))
    return path


def _schema_engine(settings):
    """The registry's engine, once it is known to have UnionCard's schema."""
    engine = _engine(settings)
    try:
        revision = db.current_revision(engine)
    except DBAPIError:
        revision = None
    if not revision:
        engine.dispose()
        raise ValidationError(N_("The database has no UnionCard schema yet: run unioncard db upgrade first"),
                              code="schema_missing")
    return engine


@click.group("migrate", help=N_("Move the union in from its earlier registry (docs/migration.md)."))
def migrate_group() -> None:
    pass


@migrate_group.command("check", help=N_(
    "Read an exchange folder (or a .zip of it) and write a report of every problem by file, row and column, with "
    "counts per region. Changes nothing. Exits with 1 if there are problems."))
@click.argument("folder", type=click.Path(path_type=Path))
@click.option("--report", "report_path", type=click.Path(dir_okay=False, path_type=Path),
              default=Path("migration-check.md"), show_default=True)
@click.option("--against-registry/--files-only", default=True, show_default=True,
              help=N_("Also name conflicts with what the registry already holds."))
def check(folder: Path, report_path: Path, against_registry: bool) -> None:
    settings = load_settings()
    report_path = _report_path(report_path)
    with _progress() as progress:
        staged = _stage(folder, settings, progress)
    try:
        if against_registry and staged.fatal is None:
            engine = _engine(settings)
            try:
                if db.current_revision(engine):
                    loader.compare_with_registry(engine, staged)
            except DBAPIError:
                # The check changes nothing, not even the schema: an older one is not compared.
                console.print("[yellow]" + translate(N_(
                    "The registry was not compared: its database schema is older (unioncard db upgrade)")) + "[/yellow]")
            finally:
                engine.dispose()
        _write(report_path, reports.check_report(staged, str(folder)))
        reports.write_problems_csv(staged, report_path.with_suffix(".csv"))
        total = staged.problem_count()
        if staged.fatal is not None:
            console.print(f"[red]{staged.fatal.render()}[/red]")
            sys.exit(1)
        if total:
            console.print("[red]" + translate(N_("Problems: %(count)s (by row in the report)"), count=total) + "[/red]")
            sys.exit(1)
        console.print("[green]" + translate(N_("No problems: the folder can be loaded")) + "[/green]")
    finally:
        # Kept for the load of the same files (the instance folder is private to the installation).
        staged.close(keep=True)


@migrate_group.command("load", help=N_(
    "Load an exchange folder region by region, each region whole or not at all. Run it again after a failure: "
    "loaded regions are skipped. Exits with 1 if a region was not loaded."))
@click.argument("folder", type=click.Path(path_type=Path))
@click.option("--report", "report_path", type=click.Path(dir_okay=False, path_type=Path),
              default=Path("migration-load.md"), show_default=True)
def load(folder: Path, report_path: Path) -> None:
    settings = load_settings()
    report_path = _report_path(report_path)
    engine = _engine(settings)
    db.upgrade(settings.database_url)
    with _progress() as progress:
        staged = _stage(folder, settings, progress)
        result = None
        try:
            total = staged.db.execute("SELECT count(*) FROM member").fetchone()[0]
            task = progress.add_task(translate(N_("Loading members")), total=total)
            if staged.fatal is None:
                result = loader.load(engine, staged, source_name=folder.name, own_prefix=settings.card_issuer_prefix,
                                     progress=lambda n: progress.update(task, advance=n),
                                     on_region=lambda r: progress.console.print(
                                         f"{r.code} {r.name}: {translate(reports.STATUS_TEXT[r.status])}"))
            reconciliations = reconciler.reconcile(engine)
            _write(report_path, reports.load_report(staged, str(folder), result, reconciliations))
            reports.write_problems_csv(staged, report_path.with_suffix(".csv"))
        finally:
            # Kept until every region is in: a run after a failure starts from it.
            done = result is not None and bool(result.regions) and all(
                r.status in ("loaded", "unchanged") for r in result.regions)
            staged.close(keep=not done)
    if staged.fatal is not None:
        console.print(f"[red]{staged.fatal.render()}[/red]")
        sys.exit(1)
    loaded = result.count("loaded") if result else 0
    before = result.count("unchanged") if result else 0
    refused = len(result.regions) - loaded - before if result else 0
    console.print(translate(N_("Regions loaded now: %(loaded)s, loaded before: %(before)s, not loaded: %(refused)s"),
                            loaded=loaded, before=before, refused=refused))
    if not result or not result.regions or refused:
        sys.exit(1)


@migrate_group.command("reconcile", help=N_(
    "For each region loaded: the files' counts against the registry's (organisations, members, consents by "
    "section, cards by status, positions). Exits with 1 on any difference."))
def reconcile_command() -> None:
    settings = load_settings()
    items = reconciler.reconcile(_schema_engine(settings))
    table = Table(translate(N_("Region")), translate(N_("Members")), translate(N_("Cards")),
                  translate(N_("Differences")))
    for item in items:
        table.add_row(f"{item.region_org_code} {item.name}", str(item.loaded["members"]),
                      str(sum(item.loaded["cards"].values())),
                      "; ".join(f"{reconciler.label(w)}: {a} → {b}" for w, a, b in item.differences) or "0")
    console.print(table)
    if not items:
        console.print(translate(N_("No region has been loaded yet")))
    if any(item.differences for item in items):
        sys.exit(1)


@migrate_group.command("export", help=N_(
    "Write the registry in the exchange format into a folder: the round trip's first half, and the large test "
    "folders of the benchmark."))
@click.argument("folder", type=click.Path(file_okay=False, path_type=Path))
def export_command(folder: Path) -> None:
    settings = load_settings()
    engine = _schema_engine(settings)
    with _progress() as progress:
        task = progress.add_task(translate(N_("Writing the files")), total=None)
        result = exporter.export(engine, folder,
                                 progress=lambda name, n: progress.update(task, advance=n, description=name))
    for name, count in result.rows.items():
        console.print(f"{name}: {count}")
