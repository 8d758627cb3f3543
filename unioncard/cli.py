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
from unioncard.i18n import N_, translate, translate_plural

try:  # cryptography's own error for a PEM of an algorithm it does not know
    from cryptography.exceptions import UnsupportedAlgorithm as UnsupportedAlgorithmError
except ImportError:  # pragma: no cover
    UnsupportedAlgorithmError = ValueError

console = Console()
# A database id (a PostgreSQL integer): a larger number is refused by the option parser with its
# usual message, instead of overflowing in the database.
ID = click.IntRange(1, db.MAX_ID)
DEMO_PASSWORD = "demo-password-2026"


def _fail(exc: UnionCardError) -> None:
    console.print(f"[red]{exc.render()}[/red]")
    sys.exit(2)


# Click's own words, translated through the same catalogue (click looks them up with the
# standard gettext module, domain "messages").
CLICK_TEXTS = (N_("Usage:"), N_("Options"), N_("Commands"), N_("Show this message and exit."), N_("Error: {message}"),
               N_("Try '{command} {option}' for help."), N_("Missing argument"), N_("Missing option"),
               N_("No such command {name!r}."), N_("No such option {name!r}."),
               N_("Invalid value for {param_hint}: {message}"), N_("default: {default}"), N_("Aborted!"),
               N_("Do you want to continue?"), N_("Confirm the action without prompting."),
               N_("{value!r} is not a valid {number_type}."), N_("{value} is not in the range {range}."),
               N_("{name} {filename!r} does not exist."), N_("Missing command."))


def _speak_russian(command: click.Command) -> None:
    """The help of every command and option in the operator's language (Russian unless
    UNIONCARD_LOCALE=en), from the message catalogue."""
    locale = os.environ.get("UNIONCARD_LOCALE", "ru")
    if getattr(command, "_translated", None) == locale:
        return
    if locale != "en":
        import gettext

        from unioncard.i18n import TRANSLATIONS_DIR

        gettext.bindtextdomain("messages", str(TRANSLATIONS_DIR))
        os.environ.setdefault("LANGUAGE", locale)
        for cmd in _all_commands(command):
            cmd.help = translate(cmd.help, locale) if cmd.help else cmd.help
            cmd.options_metavar = "[ПАРАМЕТРЫ]"
            if isinstance(cmd, click.Group):
                cmd.subcommand_metavar = "КОМАНДА [АРГУМЕНТЫ]..."
            for param in cmd.params:
                if isinstance(param, click.Option) and param.help:
                    param.help = translate(param.help, locale)
    command._translated = locale


def _all_commands(command: click.Command):
    yield command
    for sub in getattr(command, "commands", {}).values():
        yield from _all_commands(sub)


class _Main(click.Group):
    def main(self, *args, **kwargs):
        _speak_russian(self)
        return super().main(*args, **kwargs)

    def invoke(self, ctx):
        # Any of our named errors a command did not handle (a setting that does not parse, a
        # refusal deep in a service) is its message and exit code 2, never a traceback.
        try:
            return super().invoke(ctx)
        except UnionCardError as exc:
            _fail(exc)


@click.group(cls=_Main, help=N_('UnionCard: registry, card issue, personalisation and check-in of union cards.'))
def main() -> None:
    # Every file a command writes (the SQLite database, manifests, printed cards, desk journals)
    # holds personal data: readable by this account only.
    os.umask(0o077)


@main.group("db", help=N_('Database schema.'))
def db_group() -> None:
    pass


@db_group.command("upgrade", help=N_('Apply Alembic migrations up to the newest schema.'))
def db_upgrade() -> None:
    settings = load_settings()
    db.upgrade(settings.database_url)
    console.print(f"Schema is up to date: {db.make_engine(settings.database_url).url.render_as_string()}")


def _progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TimeRemainingColumn(), console=console, transient=False, disable=not console.is_terminal and
                    os.environ.get("UNIONCARD_PROGRESS") != "1")


@main.command("demo-data", help=N_('Build a believable union from the real per-region member counts.'))
@click.option("--scale", type=click.FloatRange(0.0001, 5), default=0.01, show_default=True,
              help=N_("Multiplier of the real member counts (1 = the 1.09 M pilot, 3.7 ≈ 4 M)."))
@click.option("--seed", type=int, default=2020, show_default=True)
@click.option("--with-users/--no-users", default=True, show_default=True, help=N_("Create the demo logins."))
def demo_data(scale: float, seed: int, with_users: bool) -> None:
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
        actor = Actor.system("demo-data")
        for login, role, org_id, full_name in list(demo.iter_demo_users(uow.session)):
            if role == "chairperson":
                # A chairperson's login lives as long as a term of office: appoint one of the members.
                full_name = _appoint_demo_chairperson(uow, actor, org_id)
            services.create_user(uow, actor, login=login, password=DEMO_PASSWORD,
                                 full_name=full_name, role=role, organisation_id=org_id)
            created.append((login, role))
        uow.commit()
    _demo_orders(session_factory)
    _demo_statistics(session_factory)
    _demo_member_contact(session_factory)
    return created


DEMO_MEMBER_EMAIL = "chlen.profsoyuza@example.org"


def _demo_member_contact(session_factory) -> None:
    """The demo chairperson's member with an issued virtual card gets an e-mail address, so the
    members' own page (/me) can be tried at once: the code lands in the instance's outbox folder."""
    from sqlalchemy import select

    from unioncard.issuer.models import Card
    from unioncard.registry.models import Person, UserAccount

    with db.UnitOfWork(session_factory) as uow:
        chair = uow.session.scalar(select(UserAccount).where(UserAccount.login == "chair"))
        if chair is None:
            return
        person_id = uow.session.scalar(select(Card.person_id).where(
            Card.organisation_id == chair.organisation_id, Card.kind == "virtual", Card.status == "issued")
            .order_by(Card.id).limit(1))
        if person_id is not None:
            uow.session.get(Person, person_id).email = DEMO_MEMBER_EMAIL
            uow.commit()


def _start_demo_sender(settings) -> None:
    """The demo sends what the outbox holds every two seconds from a thread of its own (a real
    installation runs `unioncard messages deliver --watch` as a service)."""
    import threading
    import time

    from unioncard.messaging import services as outbox
    from unioncard.messaging.commands import links_of, senders_of

    factory = db.make_session_factory(db.make_engine(settings.database_url))

    def loop() -> None:
        while True:
            try:
                outbox.deliver_due(lambda: db.UnitOfWork(factory), senders_of(settings), link_for=links_of(settings))
            except Exception:  # noqa: BLE001 - the demo's sender must outlive a bad moment
                pass
            time.sleep(2)

    threading.Thread(target=loop, name="demo-sender", daemon=True).start()


def _demo_statistics(session_factory, neighbours: int = 8) -> None:
    """This year's reporting campaign, with passports for the demo chairperson's neighbours (the
    primary organisations of the same territorial organisation) and their Form 2 sent, half of them
    accepted by the region: the region's dashboard and Form 7 have something in them, and the
    chairperson's own form waits on their home page."""
    from datetime import date

    from sqlalchemy import select

    from unioncard import clock
    from unioncard.registry import services
    from unioncard.registry.actor import Actor
    from unioncard.registry.models import Organisation, UserAccount
    from unioncard.statistics import services as stats

    system = Actor.system("demo-data")
    year = clock.today().year
    with db.UnitOfWork(session_factory) as uow:
        users = {u.login: u for u in uow.session.scalars(select(UserAccount).where(
            UserAccount.login.in_(["chair", "region"])))}
        if len(users) < 2:
            return
        region = services.actor_for(users["region"])
        stats.open_campaign(uow, system, year, date(year + 1, 2, 1))
        own = uow.session.get(Organisation, users["chair"].organisation_id)
        siblings = uow.session.scalars(select(Organisation).where(
            Organisation.parent_id == own.parent_id, Organisation.level == "primary", Organisation.id != own.id)
            .order_by(Organisation.id).limit(neighbours)).all()
        on = clock.today()
        counts = stats.member_counts(uow.session, uow.session.get(Organisation, own.parent_id).path, year, on)
        for org in siblings:
            members = counts.get(org.id)
            working = members.count("working") if members else 0
            stats.save_passport(uow, system, org.id, {
                "institution_type": "kindergarten" if "детский сад" in org.name else "school",
                "employees_total": round(working / 0.85) + 1, "employees_women": round(working * 0.8 / 0.85),
                "employees_youth": round(working * 0.2 / 0.85), "founded_on": "1975-09-01", "legal_entity": "no",
                "phone": "+78612000000"})
        uow.commit()
    for index, org in enumerate(siblings):
        with db.UnitOfWork(session_factory) as uow:
            view = stats.view_form(uow.session, system, year, org.id)
            for finding in view.blocking:
                stats.explain(uow, system, year, org.id, finding.code, "Совместители учтены по штатному расписанию", 0)
                uow.session.flush()
            version = stats.view_form(uow.session, system, year, org.id).version
            stats.submit(uow, system, year, org.id, version)
            uow.session.flush()
            if index % 2 == 0:
                stats.accept(uow, region, year, org.id, stats.view_form(uow.session, system, year, org.id).version)
            uow.commit()


def _demo_orders(session_factory, count: int = 12) -> None:
    """Plastic cards ordered by the demo chairperson and approved by the region, so the bureau's
    commands (bureau create, run, manifest, ship) have work in the demo at once; and cards of the
    chairperson's members in the other states of the lifecycle, so each action can be tried at
    once (approve or reject, hand out or refuse, report a loss, reissue, hand out a virtual card)."""
    from sqlalchemy import select

    from unioncard.issuer import services as cards
    from unioncard.issuer.models import Card
    from unioncard.registry import services
    from unioncard.registry.models import Consent, Membership, UserAccount

    with db.UnitOfWork(session_factory) as uow:
        users = {u.login: u for u in uow.session.scalars(select(UserAccount).where(
            UserAccount.login.in_(["chair", "region"])))}
        if len(users) < 2:
            return
        chair, region = services.actor_for(users["chair"]), services.actor_for(users["region"])
        with_card = select(Card.membership_id)
        consenting = select(Consent.person_id).where(Consent.section == "processing", Consent.withdrawn_on.is_(None))
        members = uow.session.scalars(select(Membership.id).where(
            Membership.organisation_id == users["chair"].organisation_id, Membership.is_active.is_(True),
            Membership.id.not_in(with_card), Membership.person_id.in_(consenting)).order_by(Membership.id)
            .limit(count)).all()
        ordered = cards.order_cards(uow, chair, members).ordered
        waiting = [c.id for c in ordered if c.status == "ordered"]
        if waiting:
            cards.approve(uow, region, waiting)
        uow.session.flush()
        _demo_lifecycle(uow, chair, region, users["chair"].organisation_id, with_card, consenting)
        uow.commit()


# Cards of the demo chairperson's members, by the state they are left in (a card through the
# bureau's states is made by the bureau commands the README shows).
DEMO_LIFECYCLE = (("approved", "virtual"), ("issued", "virtual"), ("ordered", "plastic"), ("delivered", "plastic"),
                  ("issued", "plastic"), ("refused", "plastic"), ("lost", "plastic"), ("rejected", "plastic"),
                  ("cancelled", "plastic"), ("ordered", "plastic"), ("delivered", "plastic"))


def _demo_lifecycle(uow, chair, region, organisation_id: int, with_card, consenting) -> None:
    from sqlalchemy import select

    from unioncard.issuer import services as cards
    from unioncard.issuer.domain import CardStatus as S
    from unioncard.registry.actor import Actor
    from unioncard.registry.models import Membership

    system = Actor.system("demo-data")
    members = uow.session.scalars(select(Membership.id).where(
        Membership.organisation_id == organisation_id, Membership.is_active.is_(True),
        Membership.id.not_in(with_card), Membership.person_id.in_(consenting)).order_by(Membership.id.desc())
        .limit(len(DEMO_LIFECYCLE))).all()
    # The bureau's part (in production → produced → shipped) walked by the system for cards the
    # demo shows past it; the people's part by the chairperson and the region, as in real use.
    delivery = [S.IN_PRODUCTION, S.PRODUCED, S.SHIPPED, S.DELIVERED]
    for membership_id, (state, kind) in zip(members, DEMO_LIFECYCLE):
        card = cards.order_cards(uow, chair, [membership_id], kind).ordered[0]
        if state == "ordered":
            continue
        if state == "cancelled":
            cards.cancel(uow, chair, card.id, "заказан по ошибке")
            continue
        if state == "rejected":
            cards.reject(uow, region, [card.id], "нет заявления члена Профсоюза")
            continue
        cards.approve(uow, region, [card.id])
        if state == "approved":
            continue
        if kind == "plastic":
            for step in delivery:
                cards.transition_many(uow, system, [card], step, system=True)
        if state == "delivered":
            continue
        outcome = S.REFUSED if state == "refused" else S.ISSUED
        cards.transition_many(uow, chair, [card], outcome, "не пришёл за билетом" if state == "refused" else None)
        if state == "lost":
            cards.report_loss(uow, chair, card.id, S.LOST, "потерян в дороге")


def _appoint_demo_chairperson(uow, actor, organisation_id: int) -> str:
    from datetime import timedelta

    from sqlalchemy import select

    from unioncard import clock
    from unioncard.registry import services
    from unioncard.registry.models import Membership, Person

    person = uow.session.scalars(select(Person).join(Membership, Membership.person_id == Person.id).where(
        Membership.organisation_id == organisation_id, Membership.is_active.is_(True))
        .order_by(Person.id)).first()
    today = clock.today()
    services.appoint_chairperson(uow, actor, organisation_id, person.id, today - timedelta(days=365),
                                 today + timedelta(days=4 * 365))
    return " ".join(p for p in (person.surname, person.given_name, person.patronymic) if p)


@main.command("run", help=N_('Serve the web application.'))
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
def run(host: str, port: int) -> None:
    from unioncard.checkin_web import create_app

    settings = load_settings()
    db.upgrade(settings.database_url)
    app = create_app(settings)
    _start_job_thread(app)
    console.print(f"UnionCard: http://{host}:{port}/")
    app.run(host=host, port=port, threaded=True)


def _start_job_thread(app) -> None:
    """With the thread: job queue the server runs jobs itself: its thread starts now, so jobs left
    waiting by a server stopped in the middle are taken up without waiting for a new one."""
    queue = app.extensions["unioncard"].jobs
    if hasattr(queue, "start"):
        queue.start()


@main.command("demo", help=N_('Everything for a demo on this laptop: schema, demo union (first time), logins, web server.'))
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--scale", type=click.FloatRange(0.0001, 5), default=0.01, show_default=True)
def demo_command(host: str, port: int, scale: float) -> None:
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
    _demo_keys(settings, engine)
    console.print(f"\n[bold]UnionCard работает: http://{host}:{port}/[/bold]")
    console.print(f"Демо-входы (пароль для всех: [bold]{DEMO_PASSWORD}[/bold]):")
    console.print("  admin  — администратор (вся организация)")
    console.print("  region — региональная организация (Краснодарская)")
    console.print("  chair  — председатель первичной организации")
    console.print("  bureau — оператор бюро изготовления карт")
    console.print("  events — организатор мероприятий")
    console.print(f"Член Профсоюза: http://{host}:{port}/me/ — почта [bold]{DEMO_MEMBER_EMAIL}[/bold]; "
                  f"код для входа придёт файлом .eml в {settings.mail_channel.removeprefix('file:')}")
    console.print(f"База данных: {settings.database_url}\n")
    if not os.environ.get("UNIONCARD_PUBLIC_URL"):
        settings = settings.with_overrides(public_url=f"http://{host}:{port}")
    app = create_app(settings)
    _start_job_thread(app)
    _start_demo_sender(settings)
    app.run(host=host, port=port, threaded=True)


def _demo_secret(settings, name: str) -> None:
    """The demo keeps each key store's passphrase in a 0600 file in the instance folder, so it
    starts without questions. A real installation sets UNIONCARD_<NAME>_SECRET[_FILE] itself."""
    from unioncard.files import read_or_create_secret

    if os.environ.get(f"UNIONCARD_{name}_SECRET") or os.environ.get(f"UNIONCARD_{name}_SECRET_FILE"):
        return
    from unioncard.config import demo_secret_file_name

    path = settings.instance_dir / demo_secret_file_name(name)
    read_or_create_secret(path, 24)
    os.environ[f"UNIONCARD_{name}_SECRET_FILE"] = str(path)


def _demo_keys(settings, engine) -> None:
    from datetime import timedelta

    from unioncard.hsm import ceremony

    _demo_secret(settings, "KEYSTORE")
    _demo_secret(settings, "ROOT_KEYSTORE")
    try:
        with ceremony.open_stores(settings, create=True) as stores:
            with db.UnitOfWork(db.make_session_factory(engine)) as uow:
                actor = _ceremony_actor()
                made = ceremony.init_keys(uow, actor, stores)
                if made or ceremony.latest_bundle(uow.session) is None:
                    ceremony.export_trust(uow, actor, stores, timedelta(days=settings.trust_bundle_days))
                uow.commit()
                if made:
                    console.print(f"Созданы ключи подписи ({len(made)}) в {settings.instance_dir}")
    except UnionCardError as exc:
        _fail(exc)


@main.group("user", help=N_('Users and their rights.'))
def user_group() -> None:
    pass


@user_group.command("create", help=N_(
        "Create a login. A chairperson's login is bound to the organisation's current term of office\n"
        '(appoint one first with `unioncard user appoint-chairperson`) and ends with it.'))
@click.option("--login", required=True)
@click.option("--role", required=True, type=click.Choice(
    ["chairperson", "registrar", "regional_staff", "bureau_operator", "event_staff", "admin"]))
@click.option("--org-code", required=True, help=N_("Code of the organisation whose subtree the user sees."))
@click.option("--full-name", required=True)
@click.option("--valid-until", type=click.DateTime(formats=["%Y-%m-%d", "%d.%m.%Y"]), default=None)
@click.password_option()
def user_create(login, role, org_code, full_name, valid_until, password) -> None:
    from unioncard.registry import services

    def run(uow, actor):
        org = services.get_organisation_by_code(uow.session, actor, org_code)
        services.create_user(uow, actor, login=login, password=password, full_name=full_name, role=role,
                             organisation_id=org.id, valid_until=valid_until.date() if valid_until else None)

    _users(run)
    console.print(f"Пользователь {login} создан")


def _users(fn):
    """Run ``fn(uow, actor)`` in one transaction as the command line's administrator."""
    from unioncard.registry.actor import Actor

    return _transaction(lambda uow, _stores: fn(uow, Actor.system("cli")))


@user_group.command("appoint-chairperson", help=N_(
        'Appoint a member chairperson of an organisation for a term of office. The previous\n'
        "chairperson's term (and login) ends the day the new term starts."))
@click.option("--org-code", required=True, help=N_("Code of the primary organisation."))
@click.option("--person-id", type=ID, required=True, help=N_("The member's person id (from the member's page)."))
@click.option("--from", "starts_on", required=True, type=click.DateTime(formats=["%Y-%m-%d", "%d.%m.%Y"]))
@click.option("--to", "ends_on", required=True, type=click.DateTime(formats=["%Y-%m-%d", "%d.%m.%Y"]))
def user_appoint_chairperson(org_code, person_id, starts_on, ends_on) -> None:
    from unioncard.registry import services

    def run(uow, actor):
        org = services.get_organisation_by_code(uow.session, actor, org_code)
        term = services.appoint_chairperson(uow, actor, org.id, person_id, starts_on.date(), ends_on.date())
        return term.id, org.name

    term_id, org_name = _users(run)
    console.print(f"Председатель назначен: {org_name}, срок полномочий {starts_on:%d.%m.%Y}–{ends_on:%d.%m.%Y} "
                  f"(№ {term_id}). Теперь создайте вход: unioncard user create --role chairperson --org-code {org_code} …")


@user_group.command("set-password", help=N_('Give a login a new password; every open session of that login ends.'))
@click.option("--login", required=True)
@click.password_option()
def user_set_password(login, password) -> None:
    from unioncard.registry import services

    def run(uow, actor):
        user = services.get_user_by_login(uow.session, actor, login)
        services.set_password(uow, actor, user.id, password)

    _users(run)
    console.print(f"Пароль пользователя {login} изменён; его открытые сеансы завершены")


@user_group.command("disable", help=N_('Switch a login off; its open sessions end at once.'))
@click.option("--login", required=True)
def user_disable(login) -> None:
    from unioncard.registry import services

    def run(uow, actor):
        user = services.get_user_by_login(uow.session, actor, login)
        services.set_enabled(uow, actor, user.id, False)

    _users(run)
    console.print(f"Вход {login} отключён")


@main.group("partner", help=N_('Partner API keys (docs/partner-api.md).'))
def partner_group() -> None:
    pass


@partner_group.command("add-key", help=N_('Make a key; it is printed once and only its hash is kept.'))
@click.option("--name", "partner_name", required=True, help=N_("The partner's name, as the union calls it."))
@click.option("--kind", type=click.Choice(["general", "bonus_programme"]), default="general", show_default=True,
              help=N_("bonus_programme: answers «valid» only for members with consent section 2."))
@click.option("--per-minute", type=click.IntRange(1, 1_000_000), default=120, show_default=True, help=N_("The key's rate limit."))
def partner_add_key(partner_name, kind, per_minute) -> None:
    from unioncard.partner import services as partners

    engine = db.make_engine(load_settings().database_url)
    try:
        with db.UnitOfWork(db.make_session_factory(engine)) as uow:
            key, text = partners.create_key(uow.session, _ceremony_actor(), partner_name, kind, per_minute)
            key_id = key.id
            uow.commit()
    except UnionCardError as exc:
        _fail(exc)
    console.print(f"Ключ {key_id} для «{partner_name}» (показан один раз):")
    print(text)


@partner_group.command("revoke-key")
@click.argument("key_id", type=ID)
def partner_revoke_key(key_id) -> None:
    from unioncard.partner import services as partners

    engine = db.make_engine(load_settings().database_url)
    try:
        with db.UnitOfWork(db.make_session_factory(engine)) as uow:
            key = partners.revoke_key(uow.session, _ceremony_actor(), key_id)
            name = key.partner_name
            uow.commit()
    except UnionCardError as exc:
        _fail(exc)
    console.print(f"Ключ {key_id} партнёра «{name}» отозван")


@main.command("import-members", help=N_('Import a member list (XLSX or CSV) into a primary organisation.'))
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("--org-code", required=True)
@click.option("--transfer", is_flag=True, help=N_("Transfer people registered in other organisations."))
@click.option("--dry-run", is_flag=True, help=N_("Only check the file and show what would change."))
def import_members(path, org_code, transfer, dry_run) -> None:
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


# --- keys -----------------------------------------------------------------------------------------

@main.group("keys", help=N_(
        'Key ceremony: signing keys per role, the root key, the trust bundle.\n'
        '\n'
        'Key stores come from UNIONCARD_KEYSTORE and UNIONCARD_ROOT_KEYSTORE (software:DIR or\n'
        'pkcs11:module=…;token=…); passphrase or PIN from UNIONCARD_KEYSTORE_SECRET[_FILE] and\n'
        'UNIONCARD_ROOT_KEYSTORE_SECRET[_FILE].'))
def keys_group() -> None:
    pass


def _ceremony_actor():
    import getpass

    from unioncard.registry.actor import Actor

    return Actor.system(f"cli:{getpass.getuser()}"[:64])


def _print_keys(keys, title: str) -> None:
    # Plain lines rather than a table: key ids and fingerprints must never be folded or cut.
    console.print(f"[bold]{title}[/bold]")
    for key in keys:
        console.print(f"  {key.key_id:<18} {key.role.value:<17} {key.algorithm.value:<18} {key.status.value:<12} "
                      f"{key.created_at:%Y-%m-%d %H:%M} UTC", soft_wrap=True)
        console.print(f"      SHA-256: {key.fingerprint if key.public_key else '— (симметричный ключ)'}",
                      soft_wrap=True)


def _with_stores(fn, *, create: bool = False):
    """Open the database and both key stores, run ``fn(uow, stores)``, commit; errors exit 2."""
    return _transaction(fn, key_stores=True, create=create)


def _transaction(fn, *, key_stores: bool = False, create: bool = False):
    """Open the database (and both key stores if asked), run ``fn(uow, stores or None)`` in one
    transaction and commit; our errors exit 2 with their message."""
    from contextlib import nullcontext

    from unioncard.hsm import ceremony

    settings = load_settings()
    db.upgrade(settings.database_url)
    engine = db.make_engine(settings.database_url)
    try:
        with ceremony.open_stores(settings, create=create) if key_stores else nullcontext() as stores:
            with db.UnitOfWork(db.make_session_factory(engine)) as uow:
                result = fn(uow, stores)
                uow.commit()
                return result
    except UnionCardError as exc:
        _fail(exc)
    finally:
        engine.dispose()


@keys_group.command("init", help=N_('Create the key stores (first time) and a key for every role that has none.'))
def keys_init() -> None:
    from unioncard.hsm import ceremony

    def run(uow, stores):
        made = ceremony.init_keys(uow, _ceremony_actor(), stores)
        if made:
            _print_keys(made, "Созданы ключи")
        else:
            console.print("Все ключи уже есть, ничего не создано")
        root = stores.root.active_key("root")
        console.print(f"Отпечаток корневого ключа (сверьте на станциях): [bold]{root.fingerprint}[/bold]")

    _with_stores(run, create=True)


@keys_group.command("list", help=N_('Every key with role, status and fingerprint.'))
def keys_list() -> None:
    _with_stores(lambda uow, stores: _print_keys(stores.all_keys(), "Ключи"))


@keys_group.command("rotate", help=N_('A new active key for ROLE; the old one keeps verifying until it is retired.'))
@click.option("--role", required=True, type=click.Choice(["root", "card_credential", "card_certificate",
                                                          "event_bundle", "partner_response", "card_key_master"]))
@click.option("--algorithm", type=click.Choice(["Ed25519", "ECDSA-P256-SHA256", "AES-128"]), default=None,
              help=N_("Default: Ed25519 (P-256 for card certificates, AES-128 for the card key master)."))
def keys_rotate(role: str, algorithm: str | None) -> None:
    from unioncard.hsm import ceremony

    def run(uow, stores):
        key, replaced = ceremony.rotate(uow, _ceremony_actor(), stores, role, algorithm)
        _print_keys([key], "Новый ключ")
        for old in replaced:
            console.print(f"Ключ {old.key_id} теперь только для проверки подписей; выведите его из "
                          f"обращения командой «unioncard keys retire {old.key_id}», когда подписи устареют")
        console.print("Выпустите новый пакет доверия: unioncard keys export-trust --out …")

    _with_stores(run)


@keys_group.command("retire", help=N_(
        "Destroy KEY_ID's private part. A card key (card_credential, card_certificate) stays in the\n"
        "trust bundles for checking the cards it signed; any other key's signatures stop being trusted\n"
        'with the next trust bundle.'))
@click.argument("key_id")
@click.option("--yes", is_flag=True, help=N_("Do not ask for confirmation."))
def keys_retire(key_id: str, yes: bool) -> None:
    from unioncard.hsm import ceremony
    from unioncard.hsm.domain import CARD_ROLES

    if not yes:
        role = _key_role(key_id)
        if role in CARD_ROLES:
            question = (f"Вывести ключ {key_id} ({role}) из обращения? Новых подписей им не будет; карты, "
                        "подписанные им, по-прежнему проверяются")
        else:
            question = f"Вывести ключ {key_id} из обращения? Подписи этим ключом перестанут приниматься"
        click.confirm(question, abort=True)

    def run(uow, stores):
        key = ceremony.retire(uow, _ceremony_actor(), stores, key_id)
        console.print(f"Ключ {key.key_id} ({key.role.value}) выведен из обращения")

    _with_stores(run)


def _key_role(key_id: str) -> str | None:
    """The role of a key in the operational store, for the confirmation question (None if unknown)."""
    from unioncard.hsm.ceremony import open_operational

    try:
        store = open_operational(load_settings())
    except UnionCardError:
        return None
    try:
        return next((k.role.value for k in store.list() if k.key_id == key_id), None)
    finally:
        store.close()


@keys_group.command("export-trust", help=N_('Sign the next version of the trust bundle and write it to OUT.'))
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False))
@click.option("--days", type=click.IntRange(1, 3650), default=None, help=N_("Validity (default UNIONCARD_TRUST_BUNDLE_DAYS, 30)."))
@click.option("--root-public-key", "root_out", type=click.Path(dir_okay=False), default=None,
              help=N_("Also write the root public key (PEM) that stations and partners pin."))
def keys_export_trust(out_path: str, days: int | None, root_out: str | None) -> None:
    from datetime import timedelta
    from pathlib import Path

    from cryptography.hazmat.primitives import serialization

    from unioncard.hsm import ceremony
    from unioncard.hsm.domain import load_public_key

    settings = load_settings()

    def run(uow, stores):
        data, record = ceremony.export_trust(uow, _ceremony_actor(), stores,
                                             timedelta(days=days or settings.trust_bundle_days))
        Path(out_path).write_bytes(data)
        root = stores.root.active_key("root")
        if root_out:
            pem = load_public_key(root.public_key).public_bytes(serialization.Encoding.PEM,
                                                                serialization.PublicFormat.SubjectPublicKeyInfo)
            Path(root_out).write_bytes(pem)
        console.print(f"Пакет доверия версии {record.version} записан в {out_path}, действует до "
                      f"{record.expires_at:%d.%m.%Y %H:%M} UTC")
        console.print(f"Подписан корневым ключом {root.key_id}: {root.fingerprint}")

    _with_stores(run)


from unioncard.migration.commands import migrate_group  # noqa: E402 - the move from the earlier registry

main.add_command(migrate_group)

from unioncard.messaging.commands import messages_group  # noqa: E402 - messages to members

main.add_command(messages_group)

from unioncard.jobs.commands import jobs_group  # noqa: E402 - long work on the job queue

main.add_command(jobs_group)


if __name__ == "__main__":  # pragma: no cover
    main()


# --- the personalisation bureau ---------------------------------------------------------------------

@main.group("bureau", help=N_(
        'Personalisation bureau: batches, the print-and-encode run, manifests, shipment.\n'
        '\n'
        'Devices come from UNIONCARD_BUREAU_PRINTER (cups:QUEUE or file:DIR) and\n'
        'UNIONCARD_BUREAU_READER (pcsc:READER NAME or sim:), or from --printer / --reader.'))
def bureau_group() -> None:
    pass


def _bureau(fn):
    """Open the database, run ``fn(settings, make_uow, actor)``; our errors exit 2 with a message."""
    settings = load_settings()
    db.upgrade(settings.database_url)
    engine = db.make_engine(settings.database_url)
    factory = db.make_session_factory(engine)
    try:
        return fn(settings, lambda: db.UnitOfWork(factory), _ceremony_actor())
    except UnionCardError as exc:
        _fail(exc)
    finally:
        engine.dispose()


def load_layout(settings):
    from unioncard.card_layouts import model

    return model.from_setting(settings.bureau_layout)


@bureau_group.command("waiting", help=N_('Approved plastic cards not yet in a batch, per region.'))
def bureau_waiting() -> None:
    from unioncard.personalization import services as bureau

    def run(settings, make_uow, actor):
        with make_uow() as uow:
            rows = bureau.waiting_by_region(uow.session, actor)
        for code, name, count in rows:
            console.print(f"  {code}  {count:>7}  {name}")
        console.print(f"Всего ждут производства: {sum(r[2] for r in rows)}")

    _bureau(run)


@bureau_group.command("create", help=N_('Make batches from the approved orders (one region per batch).'))
@click.option("--region", "regions", multiple=True, help=N_("Region code (two digits); all regions if omitted."))
@click.option("--size", type=click.IntRange(1, 5000), default=500, show_default=True, help=N_("Most cards in one batch."))
@click.option("--encoding", type=click.Choice(["chip", "uid", "none"]), default="chip", show_default=True)
def bureau_create(regions, size: int, encoding: str) -> None:
    from unioncard.personalization import services as bureau

    def run(settings, make_uow, actor):
        with make_uow() as uow:
            batches = bureau.create_batches(uow, actor, region_codes=regions or None, max_size=size,
                                            encoding=encoding, layout=settings.bureau_layout)
            uow.commit()
            sizes = bureau.progress_many(uow.session, [b.id for b in batches])
            # Read while the session is open: the rows are detached once it closes.
            lines = [f"Партия {batch.id}: регион {batch.region_code}, карт: {sizes[batch.id].total}"
                     for batch in batches]
        for line in lines:
            console.print(line)

    _bureau(run)


@bureau_group.command("run", help=N_('Encode and print a batch; safe to interrupt and run again (it goes on where it stopped).'))
@click.argument("batch_id", type=ID)
@click.option("--printer", default=None, help=N_("cups:QUEUE or file:DIR (default UNIONCARD_BUREAU_PRINTER)."))
@click.option("--reader", default=None, help=N_("pcsc:READER or sim: (default UNIONCARD_BUREAU_READER)."))
@click.option("--chunk", type=click.IntRange(1, 1000), default=50, show_default=True, help=N_("Cards per print job."))
@click.option("--card-timeout", type=float, default=30.0, show_default=True,
              help=N_("Seconds to wait for a blank card on the reader."))
def bureau_run(batch_id: int, printer: str | None, reader: str | None, chunk: int, card_timeout: float) -> None:
    from unioncard.card_layouts.render import CardRenderer
    from unioncard.hardware.printers import open_printer
    from unioncard.hardware.smartcard import open_reader
    from unioncard.hsm.ceremony import open_operational
    from unioncard.personalization import services as bureau
    from unioncard.personalization.domain import Encoding

    def run(settings, make_uow, actor):
        with make_uow() as uow:
            batch = bureau.get_batch(uow.session, actor, batch_id)
            encoding = Encoding(batch.encoding)
        the_printer = open_printer(printer or settings.bureau_printer)
        the_reader = open_reader(reader or settings.bureau_reader) if encoding != Encoding.NONE else None
        signer = open_operational(settings)
        progress_bar = _progress()
        with progress_bar:
            task = progress_bar.add_task(f"Партия {batch_id}", total=None)

            def show(state):
                progress_bar.update(task, total=state.to_make, completed=state.done,
                                    description=f"Партия {batch_id} (испорчено {state.spoiled})")
                if os.environ.get("UNIONCARD_PROGRESS_LINES") == "1":
                    print(f"progress {state.done}/{state.to_make} spoiled {state.spoiled}", flush=True)

            try:
                report = bureau.BatchRun(make_uow, actor, batch_id, signer=signer, printer=the_printer,
                                         reader=the_reader, renderer=CardRenderer(load_layout(settings)),
                                         chunk_size=chunk, card_timeout=card_timeout, on_progress=show,
                                         issuer_prefix=settings.card_issuer_prefix).run()
            except UnionCardError as exc:
                # Running a finished batch again is what "safe to run again" promises: nothing to do.
                if exc.code != "batch_not_open":
                    raise
                console.print(f"Партия {batch_id} уже изготовлена: делать нечего")
                return
            finally:
                signer.close()
        console.print(f"Готово карт: {report.made}, испорчено и переделано: {report.spoiled}, "
                      f"заданий печати: {report.print_jobs}, команд чипу: {report.apdus}")

    _bureau(run)


@bureau_group.command("status", help=N_('Batches and their progress.'))
def bureau_status() -> None:
    from unioncard.personalization import services as bureau

    def run(settings, make_uow, actor):
        with make_uow() as uow:
            batches = bureau.list_batches(uow.session, actor)
            states = bureau.progress_many(uow.session, [b.id for b in batches])
            lines = [f"  {batch.id:>5}  {batch.region_code}  {batch.status:<9} готово {states[batch.id].done}/"
                     f"{states[batch.id].to_make}  испорчено {states[batch.id].spoiled}  {batch.last_error or ''}"
                     for batch in batches]
        if not lines:
            console.print("Партий пока нет")
        for line in lines:
            console.print(line)

    _bureau(run)


@bureau_group.command("manifest", help=N_('Write the shipment manifest of a batch as PDF and XLSX.'))
@click.argument("batch_id", type=ID)
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False))
def bureau_manifest(batch_id: int, out_dir: str) -> None:
    from pathlib import Path

    from unioncard.personalization import manifest, services as bureau

    def run(settings, make_uow, actor):
        with make_uow() as uow:
            batch, rows = bureau.manifest(uow.session, actor, batch_id)
            region = bureau.region_name(uow.session, batch)
            uow.commit()
        folder = Path(out_dir)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"batch-{batch_id}.pdf").write_bytes(manifest.pdf(batch, region, rows))
        (folder / f"batch-{batch_id}.xlsx").write_bytes(manifest.xlsx(batch, region, rows))
        console.print(f"Опись: {folder / f'batch-{batch_id}.pdf'}, {folder / f'batch-{batch_id}.xlsx'} "
                      f"({translate_plural('%(num)s card', '%(num)s cards', len(rows))})")

    _bureau(run)


@bureau_group.command("ship", help=N_('Mark a produced batch as sent to its region.'))
@click.argument("batch_id", type=ID)
def bureau_ship(batch_id: int) -> None:
    from unioncard.personalization import services as bureau

    def run(settings, make_uow, actor):
        with make_uow() as uow:
            count = bureau.ship(uow, actor, batch_id)
            uow.commit()
        console.print(f"Партия {batch_id} отправлена: {translate_plural('%(num)s card', '%(num)s cards', count)}")

    _bureau(run)


@bureau_group.command("printer", help=N_("Show the printer's state."))
@click.option("--printer", default=None)
def bureau_printer(printer: str | None) -> None:
    from unioncard.hardware.printers import open_printer

    def run(settings, make_uow, actor):
        state = open_printer(printer or settings.bureau_printer).state()
        console.print(f"{state.name}: {state.state} {state.message}")

    _bureau(run)


# --- the reader station (a registration desk) -------------------------------------------------------

def _station_home(home: str | None):
    from pathlib import Path

    from unioncard.reader_station.station import DEFAULT_HOME

    return Path(home) if home else DEFAULT_HOME


_home_option = click.option("--home", default=None, type=click.Path(file_okay=False),
                            help=N_("The desk's folder (default UNIONCARD_STATION_HOME or ~/.local/share/unioncard-station)."))


@main.group("station", help=N_('A registration desk that checks cards offline: enrol it once, then run it.'))
def station_group() -> None:
    pass


def _read_root_key(path: str | None) -> bytes | None:
    """The root public key from a PEM file; a file that is not one exits 2 with a message."""
    if not path:
        return None
    from pathlib import Path

    from cryptography.hazmat.primitives import serialization

    from unioncard.errors import ValidationError
    from unioncard.hsm.domain import public_key_der
    from unioncard.i18n import N_

    try:
        return public_key_der(serialization.load_pem_public_key(Path(path).read_bytes()))
    except (ValueError, TypeError, OSError, UnsupportedAlgorithmError):
        _fail(ValidationError(N_("%(path)s is not a public key in PEM form (the file «root.pem» that "
                                 "«unioncard keys export-trust --root-public-key» writes)"),
                              code="root_key_invalid", path=path))


def _check_server_address(server: str) -> None:
    from urllib.parse import urlsplit

    from unioncard.errors import ValidationError
    from unioncard.i18n import N_

    parts = urlsplit(server)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        _fail(ValidationError(N_("The server's address must start with https:// (or http:// on this computer), "
                                 "e.g. https://unioncard.example.org"), code="server_address_invalid"))


@station_group.command("enrol", help=N_("Enrol this laptop as a desk of an event and fetch the event's data."))
@_home_option
@click.option("--server", required=True, help=N_("The UnionCard server, e.g. https://unioncard.example.org"))
@click.option("--token", required=True, help=N_("The desk token from the event page."))
@click.option("--root-key", "root_key", default=None, type=click.Path(dir_okay=False, exists=True),
              help=N_("The union's root public key (PEM) to pin; without it the server's is pinned."))
def station_enrol(home, server, token, root_key) -> None:
    from unioncard.reader_station import sync
    from unioncard.reader_station.station import Station

    _check_server_address(server)
    root = _read_root_key(root_key)
    station = Station(_station_home(home))
    try:
        answer = sync.enrol(station, server, token, root)
    except UnionCardError as exc:
        _fail(exc)
    status = station.status()
    console.print(f"Стол «{answer['desk']}» подключён к мероприятию «{answer['event']}»")
    if status["bundle"]:
        console.print(f"Данные мероприятия: версия {status['bundle']['version']}, до {status['bundle']['expires_at']}")


@station_group.command("load-bundle", help=N_(
        'Load an event bundle from a file (a USB stick): checked exactly as a downloaded one.\n'
        '\n'
        "A fresh desk is bound to the bundle's event; a bound desk takes only its own event's bundles\n"
        '(moving it to another event is «unioncard station switch-event»).'))
@_home_option
@click.argument("path", type=click.Path(dir_okay=False, exists=True))
@click.option("--root-key", "root_key", default=None, type=click.Path(dir_okay=False, exists=True),
              help=N_("The union's root public key (PEM): pinned by a fresh desk that never talks to the server; "
                   "on a desk that has one it must be the same."))
@click.option("--desk", default="1", help=N_("The desk's name, for a fresh desk without the server."))
def station_load_bundle(home, path, root_key, desk) -> None:
    from pathlib import Path

    from unioncard.reader_station.station import Station

    root = _read_root_key(root_key)
    data = Path(path).read_bytes()
    folder = _station_home(home)
    if root is not None and not (folder / "journal.sqlite3").exists():
        # A fresh desk: a refused file leaves no half-made desk folder behind.
        from datetime import datetime, timezone

        from unioncard.reader_station import bundle as eb

        try:
            eb.check(data, root, datetime.now(timezone.utc))
        except UnionCardError as exc:
            _fail(exc)
    station = Station(folder)
    try:
        accepted = station.accept_bundle(data, root, desk=desk)
    except UnionCardError as exc:  # refusals of the bundle, its trust bundle or the desk
        _fail(exc)
    finally:
        station.close()
    console.print(f"Принято: «{accepted.event.name}», версия {accepted.version}, в списке {len(accepted.roster)}, "
                  f"заблокированных карт {len(accepted.revoked)}, действует до {accepted.valid_until:%d.%m.%Y %H:%M} UTC")


@station_group.command("switch-event", help=N_(
        'Move this desk to the event of the bundle PATH (stop «station run» first).\n'
        '\n'
        "The bundle is checked first. The current event's journal is kept in a file of its own and the\n"
        'desk starts an empty journal for the new event; check-ins not yet sent stay in that file.'))
@_home_option
@click.argument("path", type=click.Path(dir_okay=False, exists=True))
@click.option("--root-key", "root_key", default=None, type=click.Path(dir_okay=False, exists=True),
              help=N_("The union's root public key (PEM); it must be the one the desk has pinned."))
@click.option("--yes", is_flag=True, help=N_("Do not ask for confirmation."))
def station_switch_event(home, path, root_key, yes) -> None:
    from pathlib import Path

    from unioncard.reader_station.station import Station

    root = _read_root_key(root_key)
    data = Path(path).read_bytes()
    station = Station(_station_home(home))
    try:
        plan = station.switch_plan(data, root)
        if plan["archive"] is not None:
            counts = plan["counts"]
            console.print(f"Стол работает для мероприятия «{plan['from_event']}»: отметок за этим столом "
                          f"{counts['here']}, из них не отправлено на сервер {counts['unsynced']}.")
            console.print(f"Журнал этого мероприятия будет сохранён в файле {plan['archive'].name} (в папке стола), "
                          f"и стол начнёт новый, пустой журнал для «{plan['to_event']}». Подключение к серверу "
                          "для прежнего мероприятия будет снято.")
            if counts["unsynced"]:
                console.print("[yellow]Неотправленные отметки останутся только в сохранённом файле: "
                              "если сервер доступен, сначала синхронизируйте стол.[/yellow]")
            if not yes:
                click.confirm(f"Перевести стол на мероприятие «{plan['to_event']}»?", abort=True)
        done = station.switch_event(data, root, plan["archive"])
    except UnionCardError as exc:  # refusals of the bundle, its trust bundle or the desk
        _fail(exc)
    finally:
        station.close()
    accepted = done["bundle"]
    console.print(f"Стол работает для мероприятия «{accepted.event.name}», данные версии {accepted.version}, "
                  f"действуют до {accepted.valid_until:%d.%m.%Y %H:%M} UTC")


@station_group.command("run", help=N_('Serve the desk page on 127.0.0.1 and listen to the scanners and readers.'))
@_home_option
@click.option("--port", default=8765, show_default=True, type=int)
@click.option("--serial", "serials", multiple=True, help=N_("A serial scanner: serial:/dev/ttyUSB0[@9600] (repeatable)."))
@click.option("--reader", "readers", multiple=True, help=N_("A chip reader: pcsc:READER NAME or sim: (repeatable)."))
@click.option("--sync-interval", default=15.0, show_default=True, type=float)
@click.option("--printer", default=None, help=N_("The badge printer: cups:QUEUE[@HOST:PORT] or file:FOLDER."))
@click.option("--kiosk", is_flag=True, help=N_("Self check-in: members scan their own card and get a badge; "
                                               "no search and no undo on this screen."))
def station_run(home, port, serials, readers, sync_interval, printer, kiosk) -> None:
    from unioncard.hardware.smartcard import open_reader
    from unioncard.reader_station.app import create_station_app
    from unioncard.reader_station.inputs import ChipInput, SerialInput
    from unioncard.reader_station.station import Station
    from unioncard.reader_station.sync import Syncer

    from unioncard.reader_station.printing import PrintWorker

    station = Station(_station_home(home))
    app = create_station_app(station, kiosk=kiosk)
    threads = []
    try:
        if printer:
            from unioncard.hardware.errors import DeviceConfigError, DeviceError
            from unioncard.hardware.printers import open_printer

            try:
                open_printer(printer)
            except DeviceConfigError:
                raise  # a mistyped setting fails here
            except DeviceError as exc:  # a printer that is away: badges wait in the queue
                console.print(f"[yellow]{exc.render()}[/yellow]")
            station.printer_worker = PrintWorker(station, printer)
            threads.append(station.printer_worker)
        for config in serials:
            threads.append(SerialInput(station, config))
        for config in readers:
            threads.append(ChipInput(station, open_reader(config)))
    except UnionCardError as exc:
        _fail(exc)
    except Exception as exc:  # pyserial's own errors: a missing port
        _fail(UnionCardError(f"{exc}", code="device_error"))
    if station.journal.get("server"):
        syncer = Syncer(station, sync_interval)
        app.extensions["syncer"] = syncer
        threads.append(syncer)
    for thread in threads:
        thread.start()
    status = station.status()
    console.print(f"Стол регистрации: http://127.0.0.1:{port}/")
    if status["bundle_problem"]:
        console.print(f"[red]{status['bundle_problem']}[/red]")
    app.run(host="127.0.0.1", port=port, threaded=True)


@station_group.command("status", help=N_('What the desk has: event data, journal counts, sync state (--json for programs).'))
@_home_option
@click.option("--json", "as_json", is_flag=True, help=N_("Print the state as JSON."))
def station_status(home, as_json: bool) -> None:
    import json
    from datetime import datetime

    from unioncard.reader_station.station import Station

    station = Station(_station_home(home))
    try:
        status = station.status()
    finally:
        station.close()
    if as_json:
        console.print_json(json.dumps(status, ensure_ascii=False, default=str))
        return
    bundle, counts, sync_state = status["bundle"], status["counts"], status["sync"]
    console.print(f"Стол: «{status['desk'] or '—'}», {'подключён' if status['enrolled'] else 'не подключён'}")
    if bundle:
        until = datetime.fromisoformat(bundle["expires_at"].replace("Z", "+00:00")).astimezone()
        console.print(f"Мероприятие: «{bundle['event']}», данные версии {bundle['version']}, действуют до "
                      f"{until:%d.%m.%Y %H:%M}; в списке {bundle['roster']}, заблокированных билетов {bundle['revoked']}")
    else:
        console.print(f"Данных мероприятия нет{': ' + status['bundle_problem'] if status['bundle_problem'] else ''}")
    console.print(f"Отметок за этим столом: {counts['here']}, не отправлено на сервер: {counts['unsynced']}, "
                  f"отмечено на других столах: {counts['other_desks']}")
    if sync_state.get("at"):
        console.print(f"Синхронизация: {sync_state.get('message') or sync_state.get('state')} ({sync_state['at']})")
    for warning in (status["clock_warning"], status["expiry_warning"]):
        if warning:
            console.print(f"[yellow]{warning}[/yellow]")