"""The ``unioncard`` command (also ``python -m unioncard``)."""

from __future__ import annotations

import os
import sys
import time

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from unioncard import db
from unioncard.config import load_settings
from unioncard.errors import UnionCardError

console = Console()
DEMO_PASSWORD = "demo-password-2026"


def _fail(exc: UnionCardError) -> None:
    console.print(f"[red]{exc.render()}[/red]")
    sys.exit(2)


@click.group()
def main() -> None:
    """UnionCard: registry, card issue, personalisation and check-in of union cards."""


@main.group("db")
def db_group() -> None:
    """Database schema."""


@db_group.command("upgrade")
def db_upgrade() -> None:
    """Apply Alembic migrations up to the newest schema."""
    settings = load_settings()
    db.upgrade(settings.database_url)
    console.print(f"Schema is up to date: {db.make_engine(settings.database_url).url.render_as_string()}")


def _progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TimeRemainingColumn(), console=console, transient=False, disable=not console.is_terminal and
                    os.environ.get("UNIONCARD_PROGRESS") != "1")


@main.command("demo-data")
@click.option("--scale", type=float, default=0.01, show_default=True,
              help="Multiplier of the real member counts (1 = the 1.09 M pilot, 3.7 ≈ 4 M).")
@click.option("--seed", type=int, default=2020, show_default=True)
@click.option("--with-users/--no-users", default=True, show_default=True, help="Create the demo logins.")
def demo_data(scale: float, seed: int, with_users: bool) -> None:
    """Build a believable union from the real per-region member counts."""
    settings = load_settings()
    db.upgrade(settings.database_url)
    engine = db.make_engine(settings.database_url)
    from unioncard.registry import demo

    started = time.perf_counter()
    with _progress() as progress:
        task = progress.add_task("Члены Профсоюза", total=None)
        try:
            result = demo.generate(engine, scale=scale, seed=seed,
                                   progress=lambda n: progress.advance(task, n),
                                   total_callback=lambda total: progress.update(task, total=total))
        except UnionCardError as exc:
            _fail(exc)
    elapsed = time.perf_counter() - started
    console.print(f"Регионов: {result.regions}, территориальных: {result.territorials}, первичных: {result.primaries}, "
                  f"членов: {result.members}, согласий: {result.consents}; {elapsed:.1f} с")
    if with_users:
        _create_demo_users(engine)


def _create_demo_users(engine) -> list[tuple[str, str]]:
    from unioncard.registry import demo, services
    from unioncard.registry.actor import Actor

    session_factory = db.make_session_factory(engine)
    created = []
    with db.UnitOfWork(session_factory) as uow:
        for login, role, org_id, full_name in list(demo.iter_demo_users(uow.session)):
            services.create_user(uow, Actor.system("demo-data"), login=login, password=DEMO_PASSWORD,
                                 full_name=full_name, role=role, organisation_id=org_id)
            created.append((login, role))
        uow.commit()
    return created


@main.command("run")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
def run(host: str, port: int) -> None:
    """Serve the web application."""
    from unioncard.checkin_web import create_app

    settings = load_settings()
    db.upgrade(settings.database_url)
    app = create_app(settings)
    console.print(f"UnionCard: http://{host}:{port}/")
    app.run(host=host, port=port, threaded=True)


@main.command("demo")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--scale", type=float, default=0.01, show_default=True)
def demo_command(host: str, port: int, scale: float) -> None:
    """Everything for a demo on this laptop: schema, demo union (first time), logins, web server."""
    from sqlalchemy import func, select

    from unioncard.checkin_web import create_app
    from unioncard.registry import demo
    from unioncard.registry.models import Organisation

    settings = load_settings()
    db.upgrade(settings.database_url)
    engine = db.make_engine(settings.database_url)
    with engine.connect() as conn:
        empty = not conn.scalar(select(func.count()).select_from(Organisation))
    if empty:
        console.print(f"Создаю демонстрационный Профсоюз (масштаб {scale})…")
        with _progress() as progress:
            task = progress.add_task("Члены Профсоюза", total=None)
            demo.generate(engine, scale=scale, progress=lambda n: progress.advance(task, n),
                          total_callback=lambda total: progress.update(task, total=total))
        _create_demo_users(engine)
    console.print(f"\n[bold]UnionCard работает: http://{host}:{port}/[/bold]")
    console.print(f"Демо-входы (пароль для всех: [bold]{DEMO_PASSWORD}[/bold]):")
    console.print("  admin  — администратор (вся организация)")
    console.print("  region — региональная организация (Краснодарская)")
    console.print("  chair  — председатель первичной организации")
    console.print(f"База данных: {settings.database_url}\n")
    app = create_app(settings)
    app.run(host=host, port=port, threaded=True)


@main.group("user")
def user_group() -> None:
    """Users and their rights."""


@user_group.command("create")
@click.option("--login", required=True)
@click.option("--role", required=True, type=click.Choice(
    ["chairperson", "registrar", "regional_staff", "bureau_operator", "event_staff", "admin"]))
@click.option("--org-code", required=True, help="Code of the organisation whose subtree the user sees.")
@click.option("--full-name", required=True)
@click.option("--valid-until", type=click.DateTime(formats=["%Y-%m-%d", "%d.%m.%Y"]), default=None)
@click.password_option()
def user_create(login, role, org_code, full_name, valid_until, password) -> None:
    from unioncard.registry import services
    from unioncard.registry.actor import Actor

    settings = load_settings()
    engine = db.make_engine(settings.database_url)
    try:
        with db.UnitOfWork(db.make_session_factory(engine)) as uow:
            actor = Actor.system("cli")
            org = services.get_organisation_by_code(uow.session, actor, org_code)
            services.create_user(uow, actor, login=login, password=password, full_name=full_name, role=role,
                                 organisation_id=org.id, valid_until=valid_until.date() if valid_until else None)
            uow.commit()
    except UnionCardError as exc:
        _fail(exc)
    console.print(f"Пользователь {login} создан")


@main.command("import-members")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("--org-code", required=True)
@click.option("--transfer", is_flag=True, help="Transfer people registered in other organisations.")
@click.option("--dry-run", is_flag=True, help="Only check the file and show what would change.")
def import_members(path, org_code, transfer, dry_run) -> None:
    """Import a member list (XLSX or CSV) into a primary organisation."""
    from pathlib import Path

    from unioncard.registry import importer, services
    from unioncard.registry.actor import Actor

    settings = load_settings()
    engine = db.make_engine(settings.database_url)
    content = Path(path).read_bytes()
    with db.UnitOfWork(db.make_session_factory(engine)) as uow:
        actor = Actor.system("cli")
        try:
            org = services.get_organisation_by_code(uow.session, actor, org_code)
        except UnionCardError as exc:
            _fail(exc)
        plan = importer.plan_import(uow.session, actor, org.id, content, Path(path).name, transfer=transfer)
        for error in plan.errors:
            console.print(f"[red]Строка {error.row}{' (' + error.column + ')' if error.column else ''}: {error.message}[/red]")
        if plan.errors:
            console.print("[red]В файле есть ошибки, ничего не загружено[/red]")
            sys.exit(1)
        console.print(f"Новых: {plan.count('create') + plan.count('transfer')}, изменённых: {plan.count('update')}, "
                      f"без изменений: {plan.count('unchanged')}")
        if not dry_run:
            importer.apply_import(uow, actor, plan)
            uow.commit()
            console.print("Загружено")


if __name__ == "__main__":  # pragma: no cover
    main()
