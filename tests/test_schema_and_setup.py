import subprocess
import sys
from pathlib import Path

import pytest
from alembic import command
from click.testing import CliRunner
from sqlalchemy import func, inspect, select, text

from unioncard import db
from unioncard.registry.models import AuditEntry, Membership, Organisation, UserAccount

ROOT = Path(__file__).resolve().parent.parent


def test_models_match_migrations(database_template):
    # alembic check raises if the models describe anything the migrations did not create.
    command.check(db.alembic_config(database_template))


def test_migrations_go_down_and_up(database_url, engine):
    engine.dispose()
    config = db.alembic_config(database_url)
    command.downgrade(config, "base")
    assert "organisation" not in inspect(db.make_engine(database_url)).get_table_names()
    command.upgrade(config, "head")
    check = db.make_engine(database_url)
    assert {"organisation", "person", "membership", "consent", "user_account", "audit_entry"} <= set(
        inspect(check).get_table_names())
    assert db.current_revision(check) is not None
    check.dispose()


def test_sqlite_runs_in_wal_mode(tmp_path):
    engine = db.make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


def test_postgres_url_uses_psycopg3():
    assert db.normalise_url("postgresql://u@h/db").startswith("postgresql+psycopg://")


def _key(value):
    # A plural entry's id and translation are lists (singular, plural forms…).
    return tuple(value) if isinstance(value, (list, tuple)) else value


def test_every_message_has_a_russian_translation_and_mo_is_current(tmp_path):
    from babel.messages.mofile import read_mo
    from babel.messages.pofile import read_po

    result = subprocess.run([sys.executable, "scripts/i18n.py", "check"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout
    translations = ROOT / "unioncard/checkin_web/translations"
    # The committed catalogue must already hold every msgid the code and templates use.
    import runpy

    keywords = runpy.run_path(str(ROOT / "scripts" / "i18n.py"))["KEYWORDS"]
    subprocess.run([sys.executable, "-m", "babel.messages.frontend", "extract", "-F", "babel.cfg", *keywords,
                    "--no-location", "-o",
                    str(tmp_path / "now.pot"), "."], cwd=ROOT, check=True, capture_output=True)
    with open(tmp_path / "now.pot", "rb") as handle:
        used = {_key(m.id) for m in read_po(handle) if m.id}
    with open(translations / "ru/LC_MESSAGES/messages.po", "rb") as handle:
        po = {_key(m.id): _key(m.string) for m in read_po(handle) if m.id}
    assert used - set(po) == set(), "run: python scripts/i18n.py update, then translate"
    with open(translations / "ru/LC_MESSAGES/messages.mo", "rb") as handle:
        mo = {_key(m.id): _key(m.string) for m in read_mo(handle) if m.id}
    assert mo == po, "run: python scripts/i18n.py compile"


def test_demo_data_builds_the_37_regions_in_proportion(engine):
    from unioncard.registry import demo

    progress = []
    # A small batch makes the writer flush many times mid-way: children never before parents.
    result = demo.generate(engine, scale=0.002, progress=progress.append, batch_size=97)
    figures = demo.coverage_figures()
    assert result.regions == 37 == len(figures)
    assert sum(progress) == result.members == sum(max(1, round(f.members * 0.002)) for f in figures)
    with engine.connect() as conn:
        krasnodar = conn.scalar(select(Organisation).where(Organisation.code == "23"))
        assert krasnodar is not None
        count = conn.scalar(select(func.count()).select_from(Membership).where(
            Membership.org_path.like(conn.scalar(select(Organisation.path).where(Organisation.code == "23")) + "%")))
        assert count == round(170988 * 0.002)
        # Every demo person passes the same validation as typed-in data.
        names = conn.execute(text("SELECT surname, given_name, patronymic FROM person LIMIT 200")).all()
    from unioncard.registry.domain import validate_person_name

    for surname, given, patronymic in names:
        validate_person_name(surname, given, patronymic)
    with pytest.raises(Exception) as info:
        demo.generate(engine, scale=0.001)
    assert getattr(info.value, "code", None) == "registry_not_empty"


def test_cli_demo_data_and_import(database_url, tmp_path, monkeypatch):
    from unioncard.cli import main

    monkeypatch.setenv("UNIONCARD_DATABASE_URL", database_url)
    monkeypatch.setenv("UNIONCARD_INSTANCE_DIR", str(tmp_path / "inst"))
    runner = CliRunner()
    result = runner.invoke(main, ["demo-data", "--scale", "0.001"])
    assert result.exit_code == 0, result.output
    assert "Регионов: 37" in result.output
    engine = db.make_engine(database_url)
    with engine.connect() as conn:
        assert {u for u in conn.scalars(select(UserAccount.login))} == {"admin", "region", "chair", "bureau", "events"}
        from unioncard.issuer.models import Card
        from unioncard.registry.models import Consent

        # Cards in every state a chairperson or a region acts on, so each action can be tried at once.
        states = {(kind, status) for kind, status in conn.execute(select(Card.kind, Card.status))}
        assert {("plastic", s) for s in ("ordered", "approved", "rejected", "cancelled", "delivered", "issued",
                                         "refused", "blocked")} | {("virtual", "approved"), ("virtual", "issued")} \
            <= states, states
        # No card handed out to someone without consent to processing (section 1).
        consenting = select(Consent.person_id).where(Consent.section == "processing", Consent.withdrawn_on.is_(None))
        assert conn.scalar(select(func.count()).select_from(Card).where(
            Card.status == "issued", Card.person_id.not_in(consenting))) == 0
        assert conn.scalar(select(func.count()).select_from(Card).where(Card.status == "issued")) > 10
        # «Северная районная организация», not «Северный районная организация».
        territorials = conn.scalars(select(Organisation.name).where(Organisation.level == "territorial")).all()
        assert territorials and all(n.split()[0].endswith("ая") for n in territorials), territorials[:5]
        primary_code = conn.scalar(select(Organisation.code).where(Organisation.level == "primary")
                                   .order_by(Organisation.id))
        # This year's reporting campaign is open, and the neighbours' sent forms pass their checks.
        from unioncard.statistics.models import ReportingCampaign, StatForm

        assert conn.scalar(select(func.count()).select_from(ReportingCampaign)) == 1
        assert set(conn.scalars(select(StatForm.status))) <= {"submitted", "accepted"}
    bad = tmp_path / "bad.csv"
    bad.write_bytes("Фамилия;Имя;Дата рождения;Категория;Дата вступления\r\nИванов;Иван;31.02.1980;работающий;01.01.2000\r\n"
                    .encode("cp1251"))
    result = runner.invoke(main, ["import-members", str(bad), "--org-code", primary_code])
    assert result.exit_code == 1 and "Строка 2" in result.output and "ничего не загружено" in result.output
    good = tmp_path / "good.csv"
    good.write_bytes("Фамилия;Имя;Дата рождения;Категория;Дата вступления\r\nЁжикова;Ёлка;28.02.1980;работающий;01.01.2000\r\n"
                     .encode("cp1251"))
    result = runner.invoke(main, ["import-members", str(good), "--org-code", primary_code])
    assert result.exit_code == 0 and "Новых: 1" in result.output
    result = runner.invoke(main, ["import-members", str(good), "--org-code", "no-such-code"])
    assert result.exit_code == 2 and "нет" in result.output
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "member.import")) == 1
    engine.dispose()


def test_python_dash_m_entry_point():
    result = subprocess.run([sys.executable, "-m", "unioncard", "--help"], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0 and "demo-data" in result.stdout


def test_card_credentials_move_to_their_own_table_and_back(database_url, engine, make_uow, tmp_path):
    """Migration 0018 carries every stored credential from the card row into card_credential,
    and its downgrade carries them back, on both databases."""
    from unioncard.hsm.base import open_keystore
    from unioncard.hsm.domain import KeyRole
    from unioncard.issuer import services as cards
    from unioncard.registry import demo

    demo.generate(engine, scale=0.0005)
    signer = open_keystore(f"software:{tmp_path / 'keys'}", "t", create=True)
    signer.generate(KeyRole.CARD_CREDENTIAL)
    with engine.connect() as conn:
        ids = list(conn.scalars(text("SELECT id FROM card WHERE number IS NOT NULL ORDER BY id")))[:25]
    with make_uow() as uow:
        made = cards.make_credentials(uow.session, ids, signer)
        uow.commit()
    assert len(made) == 25
    engine.dispose()
    config = db.alembic_config(database_url)
    command.downgrade(config, "0017")
    check = db.make_engine(database_url)
    with check.connect() as conn:
        back = dict(conn.execute(text("SELECT id, credential FROM card WHERE credential IS NOT NULL")).all())
    check.dispose()
    assert back == made and "card_credential" not in inspect(db.make_engine(database_url)).get_table_names()
    command.upgrade(config, "head")
    check = db.make_engine(database_url)
    with check.connect() as conn:
        moved = dict(conn.execute(text("SELECT card_id, credential FROM card_credential")).all())
        assert "credential" not in {c["name"] for c in inspect(conn).get_columns("card")}
    check.dispose()
    assert moved == made
