"""Moving in from the earlier registry (docs/migration.md): the check, the load per region, the
round trip of the demo union, legacy card numbers at the desk and the partner API, kill -9 and
resume, and every refusal the check names."""

from __future__ import annotations

import csv
import os
import re
import signal
import subprocess
import sys
import time
import zipfile
from datetime import date, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from unioncard import clock, db
from unioncard.cli import main
from unioncard.clock import today as union_today
from unioncard.issuer import cardnumber
from unioncard.issuer import services as cards
from unioncard.issuer.coverage import coverage
from unioncard.issuer.domain import CardStatus
from unioncard.issuer.models import Card, CardNumberCounter, Revocation
from unioncard.migration import domain as md
from unioncard.migration import export as exporter
from unioncard.migration import load as loader
from unioncard.migration import reconcile as reconciler
from unioncard.migration.models import MigrationLoad
from unioncard.migration.staging import stage
from unioncard.registry.actor import Actor
from unioncard.registry.models import AuditEntry, Consent, Membership, Organisation, Person

OWN = cardnumber.DEFAULT_ISSUER_PREFIX
LEGACY = "7000"
PREFIXES = (OWN, LEGACY)


def legacy_number(serial: int) -> str:
    body = f"{LEGACY}{serial:011d}"
    return body + cardnumber.calc_check_digit(body)


def own_number(region: str, serial: int) -> str:
    return cardnumber.build(OWN, region, serial)


def base_rows() -> dict[str, list[list[str]]]:
    """A small union in the exchange format: two regions, three members, consents, cards."""
    return {
        "organisations": [
            ["0", "", "central", "Общероссийский Профсоюз образования", "", "", "", "2019-01-01"],
            ["23", "0", "regional", "Краснодарская краевая организация Профсоюза", "", "23", "", ""],
            ["23-001", "23", "territorial", "Сочинская городская организация Профсоюза", "", "", "", ""],
            ["23-001-0001", "23-001", "primary", "ППО МБОУ СОШ № 7", "workers", "23", "", "2019-03-01"],
            ["77", "0", "региональная", "Московская городская организация Профсоюза", "", "77", "", ""],
            ["77-0001", "77", "первичная", "ППО студентов МПГУ", "students", "", "", ""],
        ],
        "members": [
            ["A-1", "23-001-0001", "Ёлкина", "Анна", "Петровна", "1980-02-03", "ж", "working", "2005-09-01",
             "+7 918 000-00-01", "anna@example.org"],
            ["A-2", "23-001-0001", "Иванов", "Иван", "", "1975-06-07", "male", "pensioner", "1999-01-15", "", ""],
            ["B-1", "77-0001", "Щёлокова", "Мария", "Ивановна", "2003-04-05", "female", "обучающийся",
             "2021-09-01", "", ""],
        ],
        "consents": [
            ["A-1", "1", "2019-03-01", "paper"], ["A-1", "2", "2019-03-01", "paper"],
            ["A-2", "1", "2019-04-01", "электронная"], ["B-1", "1", "2021-09-01", "paper"],
        ],
        "cards": [
            [legacy_number(123), "A-1", "plastic", "Выдан", "2019-10-01", "2019-11-15"],
            [own_number("23", 4100), "A-2", "virtual", "issued", "2020-01-10", "2020-01-10"],
            [legacy_number(124), "A-2", "plastic", "Заблокирован", "2019-10-01", "2020-02-01"],
            [own_number("77", 7), "B-1", "plastic", "Отказ", "2021-10-01", "2021-12-01"],
        ],
        "positions": [["23-001-0001", "A-1", "chairperson", "2021-05-01", "2026-05-01"]],
    }


def write_folder(folder: Path, rows: dict | None = None, *, skip: tuple = (), raw: dict | None = None) -> Path:
    rows = base_rows() if rows is None else rows
    folder.mkdir(parents=True, exist_ok=True)
    for kind, spec in md.FILES.items():
        if kind in skip:
            continue
        if raw and kind in raw:
            (folder / spec.name).write_bytes(raw[kind])
            continue
        with (folder / spec.name).open("w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(spec.columns)
            writer.writerows(rows.get(kind, []))
    return folder


def staged_of(folder: Path, prefixes=PREFIXES):
    return stage(folder, today=clock.today(), card_prefixes=prefixes)


def codes_of(staged) -> dict[str, int]:
    return staged.problem_codes()


# --- the check ------------------------------------------------------------------------------------

def test_a_clean_folder_has_no_problems_and_counts_per_region(tmp_path):
    staged = staged_of(write_folder(tmp_path / "x"))
    try:
        assert staged.fatal is None and codes_of(staged) == {}
        counts = staged.counts()
        assert counts["23"].members == 2 and counts["77"].members == 1
        assert counts["23"].cards == {"issued": 2, "blocked": 1} and counts["77"].cards == {"refused": 1}
        assert counts["23"].consents == {"processing": 2, "partner_transfer": 1}
        assert counts["23"].organisations == 3 and counts["23"].positions == 1
    finally:
        staged.close()


def test_each_defect_is_named_by_file_row_column_and_region(tmp_path):
    rows = base_rows()
    rows["organisations"] += [["99-1", "99", "primary", "ППО без родителя", "", "", "", ""],
                              ["23", "0", "regional", "Повтор", "", "23", "", ""],
                              ["23-002", "23-001-0001", "territorial", "Не на своём месте", "", "", "", ""]]
    rows["members"] += [
        ["A-1", "23-001-0001", "Петров", "Пётр", "", "1970-01-01", "", "working", "2000-01-01", "", ""],
        ["A-3", "23-001-0001", "Ёлкина", "Анна", "Петровна", "1980-02-03", "", "working", "2006-01-01", "", ""],
        ["A-4", "23-001-0001", "Сидоров", "Сидор", "", "2090-01-01", "", "working", "2000-01-01", "", ""],
        ["A-5", "23-001-0001", "Кузнецов", "Кузьма", "", "1980-01-01", "", "working", "1970-01-01", "", ""],
        ["A-6", "23-001-0002", "Орлов", "Олег", "", "1980-01-01", "", "working", "2000-01-01", "", ""],
        ["A-7", "23-001", "Зайцев", "Захар", "", "1980-01-01", "", "working", "2000-01-01", "", ""],
        ["A-8", "23-001-0001", "Волков", "Вадим", "", "1980-01-01", "", "working", "2000-01-01", "", ""],
    ]
    rows["consents"] += [["A-1", "1", "2019-03-01", "paper"], ["Z-9", "1", "2019-03-01", "paper"],
                         ["A-8", "4", "2019-03-01", "paper"]]
    bad_luhn = own_number("23", 55)[:-1] + str((int(own_number("23", 55)[-1]) + 1) % 10)
    rows["cards"] += [
        [bad_luhn, "A-2", "plastic", "Выдан", "2020-01-01", "2020-01-02"],
        ["1234567812345670", "A-2", "plastic", "Выдан", "2020-01-01", "2020-01-02"],
        [legacy_number(123), "B-1", "virtual", "Выдан", "2020-01-01", "2020-01-02"],
        [legacy_number(200), "Z-9", "plastic", "Выдан", "2020-01-01", "2020-01-02"],
        [legacy_number(201), "A-8", "plastic", "Выдан", "2020-01-01", "2020-01-02"],
        [legacy_number(202), "A-1", "plastic", "Выдан", "2020-01-01", "2020-01-02"],
        [legacy_number(203), "A-2", "plastic", "Выдан", "2020-03-01", "2020-01-02"],
    ]
    staged = staged_of(write_folder(tmp_path / "x", rows))
    try:
        codes = codes_of(staged)
        for code in ("parent_unknown", "code_duplicate", "parent_level_invalid", "member_id_duplicate",
                     "person_duplicate", "date_impossible", "joined_before_birth", "organisation_unknown",
                     "member_org_level", "consent_duplicate", "member_unknown", "section_unknown",
                     "card_number_checksum", "card_number_issuer", "card_number_duplicate",
                     "card_without_consent", "card_second_active", "status_before_order"):
            assert code in codes, (code, codes)
        problems = {(f, r, c, code): region for f, r, c, code, _m, region in staged.problems()}
        assert problems[("members.csv", 6, None, "person_duplicate")] == "23"
        assert problems[("cards.csv", 10, "member_id", "card_without_consent")] == "23"
        assert problems[("consents.csv", 7, "member_id", "member_unknown")] == ""   # no region: the whole union
        messages = [m for *_rest, m, _r in staged.problems()]
        assert any("уже есть в строке" in m for m in messages) and any("опечатка" in m for m in messages)
        # Region 77 has one problem of its own (a number used twice, given to its member).
        assert staged.problems_by_region().get("77", 0) == 1
    finally:
        staged.close()


@pytest.mark.parametrize("content, code", [
    ("code,parent_code,level,name\n0,,central,Профсоюз\n".encode("cp1251"), "encoding_cp1251"),
    (b"code,parent_code,level,name\n0,,central,\x98\x98\x81\n", "encoding_not_utf8"),
    (b"code;parent;level;name\n", "header_invalid"),
    (b"", "header_invalid"),
    (b"code,parent_code,level,name\n" + b"0" * 9000 + b"\n", "row_too_long"),
    (b'code,parent_code,level,name\n"0,,central,open quote\n', "csv_malformed"),
])
def test_unreadable_files_are_refused_whole_with_a_code(tmp_path, content, code):
    staged = staged_of(write_folder(tmp_path / "x", raw={"organisations": content}))
    try:
        assert staged.fatal is not None and staged.fatal.code == code, staged.fatal
        assert staged.fatal.render() and "organisations.csv" in staged.fatal.render()
    finally:
        staged.close()


def test_formula_nul_and_overlong_cells_are_row_problems(tmp_path):
    rows = base_rows()
    rows["members"] += [
        ["A-9", "23-001-0001", "=HYPERLINK(\"http://x\")", "Анна", "", "1980-01-01", "", "working", "2000-01-01",
         "", ""],
        ["A-10", "23-001-0001", "Нулева", "Ан\x00на", "", "1980-01-01", "", "working", "2000-01-01", "", ""],
        ["A-11", "23-001-0001", "Д" * 400, "Анна", "", "1980-01-01", "", "working", "2000-01-01", "", ""],
        ["A-12", "23-001-0001", "Короткая", "Строка"],
        ["A-13", "23-001-0001", "Плюсова", "Анна", "", "1980-01-01", "", "working", "2000-01-01", "@SUM(1)", ""],
    ]
    staged = staged_of(write_folder(tmp_path / "x", rows))
    try:
        codes = codes_of(staged)
        assert {"formula_cell", "nul_character", "cell_too_long", "row_width"} <= set(codes), codes
        assert codes["formula_cell"] == 2
        # A phone «+7 918…» is data, not a formula: the clean rows have no problem.
        assert not [p for p in staged.problems() if p[1] in (2, 3)]
    finally:
        staged.close()


def test_a_zip_of_the_folder_is_read_and_a_zip_bomb_is_refused(tmp_path):
    folder = write_folder(tmp_path / "x")
    archive = tmp_path / "x.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in folder.iterdir():
            zf.write(path, f"export/{path.name}")
    staged = staged_of(archive)
    assert staged.fatal is None and staged.counts()["23"].members == 2
    staged.close()
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in folder.iterdir():
            zf.write(path, path.name)
        zf.writestr("members.csv.bak", b"0" * (50 * 1024 * 1024))  # 50 MB of zeros in ~50 kB
    staged = staged_of(bomb)
    assert staged.fatal is not None and staged.fatal.code == "zip_bomb"
    staged.close()
    damaged = tmp_path / "damaged.zip"
    data = bytearray(archive.read_bytes())
    data[60:80] = b"\x00" * 20
    damaged.write_bytes(bytes(data))
    staged = staged_of(damaged)
    assert staged.fatal is not None and staged.fatal.code == "zip_damaged"
    staged.close()
    garbage = tmp_path / "not.zip"
    garbage.write_bytes(b"not a zip at all")
    staged = staged_of(garbage)
    assert staged.fatal is not None and staged.fatal.code == "zip_damaged"
    staged.close()


def test_a_missing_file_is_named(tmp_path):
    staged = staged_of(write_folder(tmp_path / "x", skip=("cards",)))
    assert staged.fatal is not None and staged.fatal.code == "file_missing" and "cards.csv" in staged.fatal.render()
    staged.close()
    # positions.csv is the one optional file.
    staged = staged_of(write_folder(tmp_path / "y", skip=("positions",)))
    assert staged.fatal is None and not codes_of(staged)
    staged.close()


def test_check_command_writes_a_russian_report_and_changes_nothing(tmp_path, database_url, engine):
    rows = base_rows()
    rows["cards"].append(["1234", "A-1", "plastic", "Выдан", "2020-01-01", "2020-01-02"])
    folder = write_folder(tmp_path / "x", rows)
    env = {"UNIONCARD_DATABASE_URL": database_url, "UNIONCARD_INSTANCE_DIR": str(tmp_path / "i"),
           "UNIONCARD_LEGACY_CARD_PREFIXES": LEGACY}
    report = tmp_path / "check.md"
    result = CliRunner().invoke(main, ["migrate", "check", str(folder), "--report", str(report)], env=env)
    assert result.exit_code == 1, result.output
    text = report.read_text("utf-8")
    assert "cards.csv" in text and "card_number_length" in text and "16 цифр" in text
    assert "Краснодарская" in text and "По регионам" in text
    assert "Проблем" in result.output
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(Organisation)) == 0
    rows_csv = list(csv.reader(report.with_suffix(".csv").open(encoding="utf-8")))
    assert rows_csv[0] == ["file", "row", "column", "code", "message", "region"] and len(rows_csv) == 2
    clean = write_folder(tmp_path / "y")
    result = CliRunner().invoke(main, ["migrate", "check", str(clean), "--report", str(report)], env=env)
    assert result.exit_code == 0, result.output


# --- the load -----------------------------------------------------------------------------------------

def load_folder(engine, folder, prefixes=PREFIXES):
    staged = staged_of(folder, prefixes)
    try:
        return loader.load(engine, staged, source_name=folder.name), staged.problem_codes()
    finally:
        staged.close()


def test_load_moves_the_union_in_with_numbers_history_audit_and_counters(tmp_path, engine, session_factory):
    result, codes = load_folder(engine, write_folder(tmp_path / "x"))
    assert codes == {} and [r.status for r in result.regions] == ["loaded", "loaded"]
    with session_factory() as session:
        assert session.scalar(select(func.count()).select_from(Person)) == 3
        card = session.scalar(select(Card).where(Card.number == legacy_number(123)))
        assert card.status == "issued" and card.person.surname == "Ёлкина" and card.region_code == "23"
        assert card.status_changed_at.date() == date(2019, 11, 15) and card.credential is None
        blocked = session.scalar(select(Revocation).where(Revocation.number == legacy_number(124)))
        assert blocked is not None and blocked.status == "blocked"
        # Counters above the highest migrated serial of our own scheme, per region.
        counters = dict(session.execute(select(CardNumberCounter.region_code, CardNumberCounter.next_serial)).all())
        assert counters == {"23": 4101, "77": 8}
        # Every source row is audited with its file and row.
        entries = session.scalars(select(AuditEntry).where(AuditEntry.action == "migration.row")).all()
        by_file = {}
        for entry in entries:
            by_file.setdefault(entry.details["file"], set()).add(entry.details["row"])
            if "consents" in entry.details:  # a member's row names the rows of their consents
                by_file.setdefault(entry.details["consents"]["file"], set()).update(entry.details["consents"]["rows"])
        assert by_file == {"organisations.csv": {2, 3, 4, 5, 6, 7}, "members.csv": {2, 3, 4},
                           "consents.csv": {2, 3, 4, 5}, "cards.csv": {2, 3, 4, 5}, "positions.csv": {2}}
        consent = session.scalar(select(Consent).where(Consent.form == "electronic"))
        assert consent.given_on == date(2019, 4, 1)
    items = reconciler.reconcile(engine)
    assert len(items) == 2 and all(not item.differences for item in items)


def test_a_second_load_changes_nothing_and_a_changed_region_is_refused(tmp_path, engine):
    folder = write_folder(tmp_path / "x")
    load_folder(engine, folder)
    with engine.connect() as conn:
        before = [conn.scalar(select(func.count()).select_from(t)) for t in (Person, Card, AuditEntry, Consent)]
    result, _ = load_folder(engine, folder)
    assert [r.status for r in result.regions] == ["unchanged", "unchanged"]
    rows = base_rows()
    rows["members"][2][3] = "Марина"  # region 77's only member renamed in the old registry
    result, _ = load_folder(engine, write_folder(tmp_path / "y", rows))
    assert [r.status for r in result.regions] == ["unchanged", "changed"]
    with engine.connect() as conn:
        after = [conn.scalar(select(func.count()).select_from(t)) for t in (Person, Card, AuditEntry, Consent)]
    assert after == before


def test_a_region_with_a_defect_is_refused_whole_and_the_others_load(tmp_path, engine):
    rows = base_rows()
    rows["cards"].append([own_number("77", 9), "B-1", "virtual", "Выдан", "2021-10-01", "2021-12-02"])
    rows["consents"] = [c for c in rows["consents"] if c[0] != "B-1"]
    result, codes = load_folder(engine, write_folder(tmp_path / "x", rows))
    assert codes == {"card_without_consent": 2}   # both of B-1's cards (a refused card is still B-1's)
    assert {r.code: r.status for r in result.regions} == {"23": "loaded", "77": "refused"}
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(Organisation).where(Organisation.code.like("77%"))) == 0
        assert conn.scalar(select(func.count()).select_from(Person)) == 2


def test_members_registered_in_unioncard_since_are_conflicts_never_merged(tmp_path, engine, make_uow, system):
    from unioncard.registry import services as registry

    folder = write_folder(tmp_path / "x")
    rows = base_rows()
    rows["organisations"] = [o for o in rows["organisations"] if not o[0].startswith("77")]
    rows["members"] = rows["members"][:2]
    rows["consents"] = [c for c in rows["consents"] if c[0] != "B-1"]
    rows["cards"] = rows["cards"][:3]
    load_folder(engine, write_folder(tmp_path / "only23", rows))
    # Region 77 is set up in UnionCard by hand meanwhile, and its student registered there.
    with make_uow() as uow:
        central = uow.session.scalar(select(Organisation).where(Organisation.code == "0"))
        region = registry.create_organisation(uow, system, code="77", name="Московская", level="regional",
                                              parent_id=central.id, region_code="77")
        primary = registry.create_organisation(uow, system, code="77-0001", name="ППО МПГУ", level="primary",
                                               parent_id=region.id, kind="students")
        registry.register_member(uow, system, primary.id, registry.PersonData(
            surname="Щёлокова", given_name="Мария", patronymic="Ивановна", birth_date=date(2003, 4, 5)),
            category="student", join_date=date(2022, 1, 1))
        uow.commit()
    result, codes = load_folder(engine, folder)
    assert {r.code: r.status for r in result.regions} == {"23": "unchanged", "77": "refused"}
    assert codes.get("conflict_person") == 1 and codes.get("conflict_organisation") == 2
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(Person).where(Person.surname == "Щёлокова")) == 1


def test_round_trip_of_the_demo_union_gives_the_same_coverage_and_counts(tmp_path, engine, session_factory):
    from unioncard.registry import demo

    source_url = f"sqlite:///{tmp_path / 'source.db'}"
    db.upgrade(source_url)
    source = db.make_engine(source_url)
    demo.generate(source, scale=0.002, seed=7)
    exported = exporter.export(source, tmp_path / "out")
    assert all((tmp_path / "out" / name).stat().st_mode & 0o077 == 0 for name in exported.rows)  # personal data
    assert exported.rows["members.csv"] > 1500 and exported.rows["cards.csv"] > 1000
    result, codes = load_folder(engine, tmp_path / "out", (OWN,))
    assert codes == {} and result.count("loaded") == 37
    assert all(not item.differences for item in reconciler.reconcile(engine))
    actor = Actor.system("test")
    source_factory = db.make_session_factory(source)
    with source_factory() as before, session_factory() as after:
        rows_before, totals_before = coverage(before, actor, clock.today())
        rows_after, totals_after = coverage(after, actor, clock.today())
        assert [(r.name, r.members, r.plastic, r.virtual, r.with_card) for r in rows_before] == \
            [(r.name, r.members, r.plastic, r.virtual, r.with_card) for r in rows_after]
        assert (totals_before.members, totals_before.with_card) == (totals_after.members, totals_after.with_card)
        # On the data date of the figures too, not only today.
        assert coverage(before, actor, demo.DATA_DATE)[1].with_card == coverage(after, actor, demo.DATA_DATE)[1].with_card
    # The exported folder of the loaded registry is the same folder (ids aside).
    exporter.export(engine, tmp_path / "again")
    for name in ("organisations.csv", "consents.csv", "cards.csv"):
        first = sorted(r[:1] + r[2:] for r in csv.reader((tmp_path / "out" / name).open(encoding="utf-8")))
        second = sorted(r[:1] + r[2:] for r in csv.reader((tmp_path / "again" / name).open(encoding="utf-8")))
        if name != "organisations.csv":
            assert len(first) == len(second), name
    source.dispose()


# --- legacy numbers: the partner API, the desk, reissue ------------------------------------------------

def test_legacy_numbers_pass_the_partner_api_and_reissue_gives_a_signed_card(tmp_path, engine, database_url,
                                                                           make_uow, session_factory):
    from unioncard.checkin_web import create_app
    from unioncard.config import Settings
    from unioncard.partner import services as partners

    load_folder(engine, write_folder(tmp_path / "x"))
    settings = Settings(instance_dir=tmp_path / "instance", database_url=database_url, secret_key="t",
                        legacy_card_prefixes=(LEGACY,))
    app = create_app(settings)
    try:
        with make_uow() as uow:
            _key, key = partners.create_key(uow.session, Actor.system("test"), "Кооператив", "general", 1000)
            uow.commit()
        client = app.test_client()

        def ask(number, surname):
            return client.post("/api/v1/partner/verify", json={"card_number": number, "surname": surname},
                               headers={"Authorization": f"Bearer {key}"})

        assert ask(cardnumber.format(legacy_number(123)), "Елкина").get_json()["valid"] is True
        assert ask(legacy_number(124), "Иванов").get_json()["valid"] is False      # blocked in the old registry
        assert ask(own_number("23", 4100), "Иванов").get_json()["valid"] is True
        unknown_prefix = "5555" + legacy_number(123)[4:-1]
        unknown_prefix += cardnumber.calc_check_digit(unknown_prefix)
        refused = ask(unknown_prefix, "Ёлкина")
        assert refused.status_code == 422 and refused.get_json()["error"]["code"] == "card_number_issuer"
        schema = client.get("/api/v1/openapi.json").get_json()
        assert LEGACY in str(schema)
    finally:
        app.extensions["unioncard"].engine.dispose()
    # Without the legacy prefix configured, the same number is not one of ours.
    assert not cardnumber.is_valid(legacy_number(123), (OWN,)) and cardnumber.is_valid(legacy_number(123), PREFIXES)
    # A lost legacy card is reissued as a new signed card of our own numbering, above the counter.
    actor = Actor.system("test")
    with make_uow() as uow:
        card_id = uow.session.scalar(select(Card.id).where(Card.number == legacy_number(123)))
        cards.report_loss(uow, actor, card_id, CardStatus.LOST, "потерян")
        new = cards.reissue(uow, actor, card_id).ordered[0]
        cards.approve(uow, actor, [new.id])
        uow.commit()
        number = new.number
    assert number.startswith(OWN + "23") and int(number[8:15]) == 4101


def test_the_desk_takes_a_legacy_number_as_a_typed_number(tmp_path, engine, make_uow, session_factory):
    from tests.station_support import export_trust, publish, root_public_key
    from tests.support import union_keys
    from unioncard.checkin import services as checkin
    from unioncard.reader_station import bundle as eb
    from unioncard.reader_station.domain import Scan, Source, decide

    load_folder(engine, write_folder(tmp_path / "x"))
    stores = union_keys(tmp_path / "keys")
    export_trust(make_uow, stores)
    with make_uow() as uow:
        central = uow.session.scalar(select(Organisation.id).where(Organisation.code == "0"))
        event = checkin.create_event(uow, Actor.system("test"), code="K1", name="Конференция", kind="conference",
                                     organisation_id=central, starts_on=union_today(),
                                     ends_on=union_today() + timedelta(days=1), venue="Сочи", admission="members")
        uow.commit()
        event_id = event.id
    data = publish(make_uow, event_id, stores, card_prefixes=PREFIXES)
    bundle = eb.check(data, root_public_key(stores), clock.now())
    assert bundle.event.card_prefixes == PREFIXES
    now = clock.now()
    typed = decide(Scan(Source.TYPED, text=legacy_number(123)), bundle, now)
    assert typed.code == "admitted_number_only" and typed.region_code is None  # its digits name no region
    assert decide(Scan(Source.TYPED, text=own_number("23", 4100)), bundle, now).region_code == "23"
    assert decide(Scan(Source.WEDGE, text=legacy_number(123)), bundle, now).colour.value == "amber"
    assert decide(Scan(Source.TYPED, text=legacy_number(124)), bundle, now).code == "revoked"
    # A desk given only our own prefix refuses the legacy number as not the union's card.
    own_only = eb.check(publish(make_uow, event_id, stores), root_public_key(stores), clock.now())
    assert decide(Scan(Source.TYPED, text=legacy_number(123)), own_only, now).code == "not_our_card"


# --- kill -9 and resume ------------------------------------------------------------------------------

def _loads_so_far(database_url: str, engine) -> int:
    """Regions loaded so far, read without waiting for the loader: on SQLite the app's engine
    begins every transaction IMMEDIATE, which queues behind the loader's writes (and the kill would
    then come after the last region); a plain deferred read of the WAL file never waits."""
    if database_url.startswith("sqlite:///"):
        import sqlite3

        conn = sqlite3.connect(f"file:{database_url[len('sqlite:///'):]}?mode=ro", uri=True, timeout=5)
        try:
            return conn.execute("SELECT count(*) FROM migration_load").fetchone()[0]
        finally:
            conn.close()
    with engine.connect() as conn:
        return conn.scalar(select(func.count()).select_from(MigrationLoad))


def test_a_load_killed_with_minus_9_resumes_with_exactly_one_copy_of_every_row(tmp_path, database_url, engine):
    from unioncard.registry import demo

    source_url = f"sqlite:///{tmp_path / 'source.db'}"
    db.upgrade(source_url)
    source = db.make_engine(source_url)
    demo.generate(source, scale=0.01, seed=11)
    exporter.export(source, tmp_path / "out")
    source.dispose()
    env = {**os.environ, "UNIONCARD_DATABASE_URL": database_url, "UNIONCARD_INSTANCE_DIR": str(tmp_path / "i")}
    command = [sys.executable, "-m", "unioncard", "migrate", "load", str(tmp_path / "out"),
               "--report", str(tmp_path / "load.md")]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    loaded = 0
    while time.monotonic() < deadline and process.poll() is None:
        loaded = _loads_so_far(database_url, engine)
        if loaded >= 3:
            break
        time.sleep(0.02)
    assert process.poll() is None, "the load ended before it could be killed"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    with engine.connect() as conn:
        done = conn.scalar(select(func.count()).select_from(MigrationLoad))
        members_done = sum(load.source_counts["members"] for load in conn.execute(select(MigrationLoad.__table__)))
        # Nothing of a region half-loaded: the people are exactly those of the regions recorded.
        assert conn.scalar(select(func.count()).select_from(Person)) == members_done
    assert 3 <= done < 37
    resumed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(MigrationLoad)) == 37
        members = sum(1 for _ in (tmp_path / "out" / "members.csv").open(encoding="utf-8")) - 1
        cards_in_files = sum(1 for _ in (tmp_path / "out" / "cards.csv").open(encoding="utf-8")) - 1
        assert conn.scalar(select(func.count()).select_from(Person)) == members
        assert conn.scalar(select(func.count(func.distinct(Person.identity_key)))) == members
        assert conn.scalar(select(func.count()).select_from(Membership)) == members
        assert conn.scalar(select(func.count()).select_from(Card)) == cards_in_files
        assert conn.scalar(select(func.count()).select_from(AuditEntry).where(
            AuditEntry.action == "migration.row", AuditEntry.object_type == "member")) == members
    assert all(not item.differences for item in reconciler.reconcile(engine))


# --- the documented pieces -------------------------------------------------------------------------

def test_legacy_prefix_lists_parse_or_are_refused_with_a_code():
    assert cardnumber.parse_prefixes("643100, 7000-7002;8") == ("643100", "7000", "7001", "7002", "8")
    assert cardnumber.parse_prefixes("") == () and cardnumber.parse_prefixes(None) == ()
    for bad in ("70a0", "7000-700", "7009-7000", "0-999", "1234567890123456", "١٢٣"):
        with pytest.raises(cardnumber.InvalidPrefixList) as info:
            cardnumber.parse_prefixes(bad)
        assert info.value.code == "card_prefixes_invalid" and "префикс" in info.value.render()
    shape = cardnumber.pattern((OWN, LEGACY))
    assert re.match(shape, cardnumber.format(legacy_number(5))) and re.match(shape, own_number("23", 1))
    assert not re.match(shape, "5555" + legacy_number(5)[4:])


def test_the_documented_example_folder_checks_clean_and_loads(tmp_path, engine):
    folder = Path(__file__).resolve().parent.parent / "docs" / "migration" / "example"
    staged = staged_of(folder)
    try:
        assert staged.fatal is None and codes_of(staged) == {}
        assert {k: v for k, v in staged.rows_read.items()} == {"organisations": 8, "members": 4, "consents": 7,
                                                               "cards": 5, "positions": 2}
    finally:
        staged.close()
    result, _ = load_folder(engine, folder)
    assert result.count("loaded") == 2
    # Every column the document lists is a column of the format, and the reverse.
    text = (folder.parent.parent / "migration.md").read_text("utf-8")
    for spec in md.FILES.values():
        assert f"### {spec.name}" in text
        section = text.split(f"### {spec.name}", 1)[1].split("###", 1)[0]
        documented = re.findall(r"^\| `([a-z_]+)`(?:, `([a-z_]+)`)? \|", section, re.M)
        names = {n for pair in documented for n in pair if n}
        assert names == set(spec.columns), (spec.name, names ^ set(spec.columns))


def test_every_refusal_code_of_the_move_is_in_the_document():
    root = Path(__file__).resolve().parent.parent
    source = "".join((root / "unioncard" / "migration" / name).read_text("utf-8")
                     for name in ("domain.py", "source.py", "staging.py", "load.py"))
    codes = set(re.findall(r'code="([a-z_0-9]+)"', source))
    codes |= set(re.findall(r'"([a-z_0-9]+)", (?:"[a-z_]+"|None), (?:row|value)=0', source))
    codes |= set(re.findall(r"'(conflict_[a-z_]+|central_mismatch)'", source))
    codes |= set(re.findall(r'"([a-z_]+_unknown)"', source))
    assert {"card_without_consent", "conflict_person", "zip_bomb", "person_duplicate"} <= codes
    text = (root / "docs" / "migration.md").read_text("utf-8")
    missing = sorted(code for code in codes if f"`{code}`" not in text)
    assert not missing, missing


def test_a_load_after_a_check_reuses_its_reading_and_a_changed_file_is_read_again(tmp_path, database_url):
    folder = write_folder(tmp_path / "x")
    instance = tmp_path / "i"
    env = {"UNIONCARD_DATABASE_URL": database_url, "UNIONCARD_INSTANCE_DIR": str(instance),
           "UNIONCARD_LEGACY_CARD_PREFIXES": LEGACY}
    runner = CliRunner()
    assert runner.invoke(main, ["migrate", "check", str(folder), "--report", str(tmp_path / "c.md")],
                         env=env).exit_code == 0
    kept = list((instance / "migration").glob("migration-*.sqlite"))
    assert len(kept) == 1
    staged = stage(folder, today=clock.today(), card_prefixes=PREFIXES, work_dir=instance / "migration", reuse=True)
    assert staged.reused and staged.counts()["23"].members == 2 and staged.central.data.code == "0"
    fresh = staged_of(folder)
    assert [staged.region_digest(r) for r in ("23", "77")] == [fresh.region_digest(r) for r in ("23", "77")]
    fresh.close()
    staged.close(keep=True)
    # Another day, other prefixes or other bytes are another reading.
    assert not stage(folder, today=clock.today() + timedelta(days=1), card_prefixes=PREFIXES,
                     work_dir=instance / "migration", reuse=True).reused
    rows = base_rows()
    rows["members"][0][3] = "Анастасия"
    write_folder(folder, rows)
    changed = stage(folder, today=clock.today(), card_prefixes=PREFIXES, work_dir=instance / "migration", reuse=True)
    assert not changed.reused
    changed.close(keep=True)
    result = runner.invoke(main, ["migrate", "load", str(folder), "--report", str(tmp_path / "l.md")], env=env)
    assert result.exit_code == 0, result.output
    # Everything loaded: the scratch file of these files is gone.
    assert not [p for p in (instance / "migration").glob("migration-*.sqlite")
                if p.name == changed.path.name]


def test_a_person_moved_in_with_one_region_is_a_conflict_in_another_regions_files(tmp_path, engine):
    rows = base_rows()
    only23 = {"organisations": [o for o in rows["organisations"] if not o[0].startswith("77")],
              "members": rows["members"][:2], "consents": [c for c in rows["consents"] if c[0] != "B-1"],
              "cards": rows["cards"][:3], "positions": rows["positions"]}
    load_folder(engine, write_folder(tmp_path / "first", only23))
    # A later export: region 77 now also lists Ёлкина (moved there), under a new member id.
    rows["members"].append(["B-2", "77-0001", "Ёлкина", "Анна", "Петровна", "1980-02-03", "", "working",
                            "2024-01-01", "", ""])
    result, codes = load_folder(engine, write_folder(tmp_path / "second", rows))
    # Both rows of the person are held back: in the files she is in two regions at once.
    assert {r.code: r.status for r in result.regions} == {"23": "refused", "77": "refused"}
    assert codes.get("conflict_person") == 1 and codes.get("person_duplicate") == 2
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(Person).where(Person.surname == "Ёлкина")) == 1


# --- what the outsider found ----------------------------------------------------------------------------

def test_a_bad_cell_holds_back_only_its_own_region(tmp_path, engine):
    rows = base_rows()
    rows["members"][2][10] = '=HYPERLINK("http://x")'   # B-1's e-mail, region 77
    rows["organisations"][3][6] = "2320012346"           # a wrong INN of 23's primary organisation
    staged = staged_of(write_folder(tmp_path / "x", rows))
    try:
        problems = {(file, code): region for file, _row, _col, code, _m, region in staged.problems()}
        assert problems == {("members.csv", "formula_cell"): "77", ("organisations.csv", "inn_invalid"): "23"}
    finally:
        staged.close()
    rows["organisations"][3][6] = ""
    result, codes = load_folder(engine, write_folder(tmp_path / "y", rows))
    # No follow-on «member_unknown» for B-1's consents and card: the member is there, refused.
    assert codes == {"formula_cell": 1}
    assert {r.code: r.status for r in result.regions} == {"23": "loaded", "77": "refused"}


def test_union_wide_problems_hold_every_region_and_say_so(tmp_path, database_url):
    rows = base_rows()
    rows["consents"].append(["Z-9", "1", "2019-03-01", "paper"])
    folder = write_folder(tmp_path / "x", rows)
    env = {"UNIONCARD_DATABASE_URL": database_url, "UNIONCARD_INSTANCE_DIR": str(tmp_path / "i"),
           "UNIONCARD_LEGACY_CARD_PREFIXES": LEGACY}
    result = CliRunner().invoke(main, ["migrate", "load", str(folder), "--report", str(tmp_path / "l.md")], env=env)
    assert result.exit_code == 1
    assert "загружено сейчас: 0, загружено раньше: 0, не загружено: 2" in " ".join(result.output.split())
    assert "задерживают все регионы" in (tmp_path / "l.md").read_text("utf-8")


def test_the_check_names_a_region_changed_since_it_was_loaded(tmp_path, engine, database_url):
    load_folder(engine, write_folder(tmp_path / "x"))
    rows = base_rows()
    rows["members"][1][3] = "Пётр"
    env = {"UNIONCARD_DATABASE_URL": database_url, "UNIONCARD_INSTANCE_DIR": str(tmp_path / "i"),
           "UNIONCARD_LEGACY_CARD_PREFIXES": LEGACY}
    report = tmp_path / "c.md"
    result = CliRunner().invoke(main, ["migrate", "check", str(write_folder(tmp_path / "y", rows)),
                                       "--report", str(report)], env=env)
    assert result.exit_code == 1
    listed = list(csv.reader(report.with_suffix(".csv").open(encoding="utf-8")))
    assert [(r[3], r[5]) for r in listed[1:]] == [("region_changed", "23")]
    assert "слияние не выполняется" in listed[1][4]


@pytest.mark.parametrize("content, code", [
    ("code,parent_code,level,name\n0,,central,Профсоюз\n".encode("utf-16"), "encoding_not_utf8"),
    ("code,parent_code,level,name\n0,,central,Профсоюз образования\n".encode("koi8-r"), "encoding_not_utf8"),
])
def test_other_encodings_are_not_called_windows_1251(tmp_path, content, code):
    staged = staged_of(write_folder(tmp_path / "x", raw={"organisations": content}))
    assert staged.fatal is not None and staged.fatal.code == code
    staged.close()


def test_archives_symlinks_and_missing_folders_are_named(tmp_path, database_url):
    folder = write_folder(tmp_path / "x")
    crowded = tmp_path / "crowded.zip"
    with zipfile.ZipFile(crowded, "w") as zf:
        for path in folder.iterdir():
            zf.write(path, path.name)
        for i in range(100):
            zf.writestr(f"extra/{i}.txt", b"x")
    staged = staged_of(crowded)
    assert staged.fatal.code == "zip_too_many_entries" and "100" in staged.fatal.render()
    staged.close()
    linked = write_folder(tmp_path / "linked", skip=("members",))
    (linked / "members.csv").symlink_to("/etc/passwd")
    staged = staged_of(linked)
    assert staged.fatal.code == "file_symlink"
    staged.close()
    env = {"UNIONCARD_DATABASE_URL": database_url, "UNIONCARD_INSTANCE_DIR": str(tmp_path / "i")}
    runner = CliRunner()
    result = runner.invoke(main, ["migrate", "check", str(tmp_path / "nowhere"), "--report", str(tmp_path / "c.md")],
                           env=env)
    assert result.exit_code == 1 and "Нет папки или файла" in result.output
    assert "source_missing" in (tmp_path / "c.md").read_text("utf-8")
    result = runner.invoke(main, ["migrate", "load", str(folder), "--report", str(tmp_path / "no" / "l.md")], env=env)
    assert result.exit_code == 2 and "Нет папки" in result.output and "Traceback" not in result.output
    empty = {"UNIONCARD_DATABASE_URL": f"sqlite:///{tmp_path / 'empty.db'}", "UNIONCARD_INSTANCE_DIR": str(tmp_path)}
    for argv in (["migrate", "reconcile"], ["migrate", "export", str(tmp_path / "out")]):
        result = runner.invoke(main, argv, env=empty)
        assert result.exit_code == 2 and "db upgrade" in result.output, argv


def test_required_cells_long_codes_region_digits_and_dates_before_birth(tmp_path):
    rows = base_rows()
    rows["consents"].append(["A-2", "2", "", "paper"])
    rows["organisations"].append(["23-" + "9" * 30, "23-001", "primary", "ППО с длинным кодом", "", "", "", ""])
    rows["organisations"].append(["78", "0", "regional", "Ещё одна «23»", "", "23", "", ""])
    rows["cards"].append([legacy_number(300), "B-1", "virtual", "Выдан", "1990-01-01", "2020-01-01"])
    rows["members"].append(["A-9", "23-001-0001", "Полякова", "Анна", "", "1980-02-30", "", "working", "2000-01-01",
                            "", ""])
    staged = staged_of(write_folder(tmp_path / "x", rows))
    try:
        found = {code: (column, message) for _f, _r, column, code, message, _reg in staged.problems()}
        assert found["cell_required"][0] == "given_on" and "«given_on»" in found["cell_required"][1]
        assert found["code_invalid"][0] == "code" and "32" in found["code_invalid"][1]
        assert "region_code_duplicate" in found and "date_before_birth" in found
        assert found["date_impossible"][0] == "birth_date" and "Такого дня нет" in found["date_impossible"][1]
    finally:
        staged.close()


def test_legacy_prefixes_may_not_overlap_ours_and_export_never_overwrites(tmp_path, engine, database_url):
    with pytest.raises(cardnumber.OverlappingPrefix):
        cardnumber.legacy_prefixes("0-9")
    assert cardnumber.legacy_prefixes("7000;643100") == ("7000", "643100")
    result = CliRunner().invoke(main, ["migrate", "check", str(tmp_path)], env={
        "UNIONCARD_LEGACY_CARD_PREFIXES": "9643", "UNIONCARD_INSTANCE_DIR": str(tmp_path / "i")})
    assert result.exit_code == 2 and "пересекается" in result.output
    load_folder(engine, write_folder(tmp_path / "x"))
    with pytest.raises(Exception) as info:
        exporter.export(engine, tmp_path / "x")
    assert getattr(info.value, "code", None) == "export_folder_not_empty"
    assert (tmp_path / "x" / "members.csv").read_text("utf-8").count("\nA-") == 2   # the source is untouched
