import io
from datetime import date

import pytest
from openpyxl import Workbook, load_workbook
from sqlalchemy import func, select

from unioncard.errors import ValidationError
from unioncard.registry import importer, services
from unioncard.registry.models import AuditEntry, Consent, Membership, Person

HEADERS = importer.HEADERS
ROWS = [
    ["Кузнецова", "Ольга", "Викторовна", "12.04.1985", "ж", "работающий", "8 918 555-12-34", "olga@example.ru",
     "01.09.2010", "да", "нет", "да", "01.09.2010", "бумажная"],
    ["Смирнов", "Алексей", "", "1979-02-28", "м", "неработающий пенсионер", "", "", "15.01.2001", "да", "", "", "", ""],
    ["Иванов", "Иван", "Иванович", "17.05.1980", "м", "работающий", "", "", "01.09.2015", "да", "", "", "", ""],
]


def xlsx(rows, headers=HEADERS) -> bytes:
    wb = Workbook()
    ws = wb.active
    ws.append(headers)
    for row in rows:
        ws.append(row)
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def csv_bytes(rows, encoding="cp1251", sep=";", headers=HEADERS) -> bytes:
    lines = [sep.join(headers)] + [sep.join(r) for r in rows]
    return ("\r\n".join(lines) + "\r\n").encode(encoding)


def do_import(make_uow, actor, org_id, content, name="members.xlsx", transfer=False):
    with make_uow() as uow:
        plan = importer.plan_import(uow.session, actor, org_id, content, name, transfer=transfer)
        if not plan.errors:
            importer.apply_import(uow, actor, plan)
            uow.commit()
        return plan


def snapshot(session_factory):
    with session_factory() as s:
        return (
            s.scalar(select(func.count()).select_from(Person)),
            s.scalar(select(func.count()).select_from(Membership)),
            s.scalar(select(func.count()).select_from(Consent)),
            s.scalar(select(func.count()).select_from(AuditEntry)),
        )


@pytest.mark.parametrize("kind", ["xlsx", "csv-cp1251", "csv-utf8-bom", "csv-utf8-comma"])
def test_import_then_reimport_changes_nothing(kind, tree, make_uow, session_factory):
    content = {
        "xlsx": lambda: xlsx(ROWS),
        "csv-cp1251": lambda: csv_bytes(ROWS),
        "csv-utf8-bom": lambda: b"\xef\xbb\xbf" + csv_bytes(ROWS, "utf-8"),
        "csv-utf8-comma": lambda: csv_bytes(ROWS, "utf-8", ","),
    }[kind]()
    actor = tree.actors["chair_a"]
    plan = do_import(make_uow, actor, tree.primary_a, content, "m." + kind[:4])
    assert plan.errors == []
    assert (plan.count("create"), plan.count("update"), plan.count("unchanged")) == (2, 1, 0)
    with session_factory() as s:
        rows, total = services.list_members(s, actor, tree.primary_a)
        assert total == 4
        olga = next(r for r in rows if r.person.surname == "Кузнецова")
        assert olga.person.phone == "+79185551234" and olga.category == "working"
        assert set(services.current_consents(s, olga.person_id)) == {"processing", "messaging"}
    before = snapshot(session_factory)
    again = do_import(make_uow, actor, tree.primary_a, content, "m." + kind[:4])
    assert again.errors == [] and again.count("unchanged") == 3 and not again.has_changes
    assert snapshot(session_factory) == before


def test_errors_reported_per_row_in_russian_and_nothing_imported(tree, make_uow, session_factory):
    bad = [
        ROWS[0],
        ["Петрова", "Анна", "", "31.02.1990", "ж", "работающий", "", "", "01.09.2010", "", "", "", "", ""],
        ["Орлов", "Олег", "", "01.01.2090", "м", "работающий", "", "", "01.09.2010", "", "", "", "", ""],
        ["Лебедев", "Лев", "", "01.01.1980", "м", "директор", "", "", "01.09.2010", "", "", "", "", ""],
        ["Сидорова", "Мария", "Олеговна", "10.09.2003", "ж", "обучающийся", "", "", "01.09.2021", "", "", "", "", ""],
        ["Зайцев", "Захар", "", "01.01.1980", "м", "работающий", "", "", "01.09.1970", "", "", "", "", ""],
    ]
    before = snapshot(session_factory)
    plan = do_import(make_uow, tree.actors["admin"], tree.primary_a, xlsx(bad))
    by_row = {e.row: e.message for e in plan.errors}
    assert set(by_row) == {3, 4, 5, 6, 7}
    assert "не является датой" in by_row[3]
    assert "будущем" in by_row[4]
    assert "директор" in by_row[5] and "Неизвестная категория" in by_row[5]
    assert "Чувашского" in by_row[6]  # registered in another organisation
    assert "раньше даты рождения" in by_row[7]
    assert snapshot(session_factory) == before


def test_transfer_on_import_when_asked(tree, make_uow, session_factory):
    row = ["Сидорова", "Мария", "Олеговна", "10.09.2003", "ж", "обучающийся", "", "", "01.09.2024", "", "", "", "", ""]
    plan = do_import(make_uow, tree.actors["admin"], tree.primary_a, xlsx([row]), transfer=True)
    assert plan.errors == [] and plan.count("transfer") == 1
    with session_factory() as s:
        assert not s.get(Membership, tree.members["sidorova"]).is_active


def test_chairperson_cannot_transfer_from_outside_scope(tree, make_uow):
    row = ["Сидорова", "Мария", "Олеговна", "10.09.2003", "ж", "обучающийся", "", "", "01.09.2024", "", "", "", "", ""]
    plan = do_import(make_uow, tree.actors["chair_a"], tree.primary_a, xlsx([row]), transfer=True)
    assert plan.errors and plan.errors[0].row == 2


@pytest.mark.parametrize("content,name,fragment", [
    (b"%PDF-1.4 not a table", "list.pdf", "Неверные заголовки"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 100, "old.xls", "ни книгой Excel"),
    (b"PK\x03\x04broken zip", "members.xlsx", "повреждён"),
    (b"", "empty.csv", "пуст"),
])
def test_files_that_are_not_tables(content, name, fragment, tree, make_uow, session_factory):
    before = snapshot(session_factory)
    plan = do_import(make_uow, tree.actors["chair_a"], tree.primary_a, content, name)
    assert plan.errors and fragment in plan.errors[0].message
    assert snapshot(session_factory) == before


def test_wrong_headers_named(tree, make_uow):
    plan = do_import(make_uow, tree.actors["chair_a"], tree.primary_a, xlsx([["a", "b"]], headers=["ФИО", "Год"]))
    message = plan.errors[0].message
    assert "Фамилия" in message and "ФИО" in message and plan.errors[0].row == 1


def test_utf8_file_read_as_cp1251_gives_header_error_not_garbage(tree, make_uow):
    # A KOI8-R file decodes as CP1251 into nonsense headers: refused, naming the encoding.
    plan = do_import(make_uow, tree.actors["chair_a"], tree.primary_a, csv_bytes(ROWS, "koi8_r"), "m.csv")
    assert plan.errors and "кодировк" in plan.errors[0].message


def test_apply_refuses_plan_with_errors(tree, make_uow):
    with make_uow() as uow:
        plan = importer.plan_import(uow.session, tree.actors["chair_a"], tree.primary_a, b"", "x.csv")
        with pytest.raises(ValidationError):
            importer.apply_import(uow, tree.actors["chair_a"], plan)


def test_export_neutralises_formulas_and_round_trips(tree, make_uow, session_factory):
    actor = tree.actors["admin"]
    with make_uow() as uow:
        content = importer.export_members(uow, actor, tree.primary_a)
        uow.commit()
    ws = load_workbook(io.BytesIO(content)).active
    rows = list(ws.iter_rows(values_only=True))
    assert list(rows[0]) == HEADERS and len(rows) == 3
    # Force a formula-like value through the exporter's writer and check it is text.
    from unioncard.tables import write_xlsx

    raw = write_xlsx(["a", "b", "c", "d"], [["=1+1", "+7918", "-x", "@SUM(A1)"]])
    cells = [c for c in load_workbook(io.BytesIO(raw)).active.iter_rows(min_row=2, values_only=True)][0]
    # Text cells with Excel's quote-prefix style: never a formula, and no apostrophe to see.
    assert cells == ("=1+1", "+7918", "-x", "@SUM(A1)")
    sheet = load_workbook(io.BytesIO(raw)).active
    assert all(c.data_type == "s" and c.quotePrefix for c in sheet[2])
    # Exported file re-imported into the same organisation changes nothing.
    before = snapshot(session_factory)
    plan = do_import(make_uow, tree.actors["chair_a"], tree.primary_a, content)
    assert plan.errors == [] and plan.count("unchanged") == 2
    assert snapshot(session_factory) == before


def test_export_with_phone_round_trips_through_neutralisation(tree, make_uow, session_factory):
    actor = tree.actors["chair_a"]
    plan = do_import(make_uow, actor, tree.primary_a, xlsx(ROWS[:1]))
    assert plan.errors == []
    with make_uow() as uow:
        content = importer.export_members(uow, actor, tree.primary_a)
    row = [r for r in load_workbook(io.BytesIO(content)).active.iter_rows(values_only=True) if r[0] == "Кузнецова"][0]
    assert row[6] == "+79185551234"
    before = snapshot(session_factory)
    assert do_import(make_uow, actor, tree.primary_a, content).count("unchanged") == 3
    assert snapshot(session_factory) == before


def test_bulk_registration_writes_the_same_audit_trail(tree, make_uow, session_factory):
    actor = tree.actors["chair_a"]
    with session_factory() as s:
        audit_before = s.scalar(select(func.count()).select_from(AuditEntry))
    plan = do_import(make_uow, actor, tree.primary_a, xlsx(ROWS[:2]))
    assert plan.count("create") == 2
    with session_factory() as s:
        actions = [a for (a,) in s.execute(select(AuditEntry.action).order_by(AuditEntry.id)).all()[audit_before:]]
        # Two registrations, Olga's two consents, Smirnov's one, and the import itself.
        assert sorted(actions) == sorted(["member.register"] * 2 + ["consent.give"] * 3 + ["member.import"])
        olga = s.scalar(select(Person).where(Person.surname == "Кузнецова"))
        consents = services.current_consents(s, olga.id)
        assert {c: (v.given_on, v.form) for c, v in consents.items()} == {
            "processing": (date(2010, 9, 1), "paper"), "messaging": (date(2010, 9, 1), "paper")}


def test_person_registered_elsewhere_between_check_and_apply(tree, make_uow, session_factory):
    """Someone registers one of the file's people after the preview: the import refuses as a
    whole and the other rows are not half-imported."""
    actor = tree.actors["admin"]
    with make_uow() as uow:
        plan = importer.plan_import(uow.session, actor, tree.primary_a, xlsx(ROWS[:2]), "m.xlsx")
    assert plan.count("create") == 2
    smirnov = services.PersonData("Смирнов", "Алексей", None, date(1979, 2, 28))
    with make_uow() as uow:
        services.register_member(uow, actor, tree.primary_b, smirnov, category="working", join_date=date(2020, 1, 1))
        uow.commit()
    before = snapshot(session_factory)
    with make_uow() as uow:
        with pytest.raises(Exception) as info:
            importer.apply_import(uow, actor, plan)
    assert getattr(info.value, "code", None) == "registry_changed"
    assert snapshot(session_factory) == before
