"""The uploaded-table parsers under Hypothesis: member imports (XLSX and CSV) and event rosters,
from damaged bytes and from hostile cell values. Never a traceback: every file is either read or
refused with a coded error, and a plan with errors imports nothing. (Bombs and floods with
measured memory are in test_hardening.py; event and trust bundles in test_fuzz_bundles.py.)"""

from __future__ import annotations

import io

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openpyxl import Workbook

from tests.test_import_export import HEADERS, ROWS, csv_bytes, xlsx
from unioncard import tables
from unioncard.checkin import services as checkin
from unioncard.errors import UnionCardError
from unioncard.registry import importer

FUZZ = settings(max_examples=150, deadline=3000, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                       HealthCheck.too_slow])
VALID_XLSX = xlsx(ROWS)
VALID_CSV = csv_bytes(ROWS)


def _roster_xlsx(rows) -> bytes:
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

    book = Workbook()
    for row in rows:
        book.active.append([ILLEGAL_CHARACTERS_RE.sub("", v) if isinstance(v, str) else v for v in row])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


VALID_ROSTER = _roster_xlsx([["Номер карты", "Роль"], ["9643012300000014", "делегат"]])


@st.composite
def damaged(draw, original: bytes):
    data = bytearray(original)
    for _ in range(draw(st.integers(1, 6))):
        action = draw(st.sampled_from(["flip", "cut", "append", "splice"]))
        if action == "flip" and data:
            index = draw(st.integers(0, len(data) - 1))
            data[index] ^= 1 << draw(st.integers(0, 7))
        elif action == "cut" and data:
            del data[draw(st.integers(0, len(data) - 1)):]
        elif action == "append":
            data += draw(st.binary(max_size=64))
        elif data:
            index = draw(st.integers(0, len(data) - 1))
            data[index:index + draw(st.integers(0, 16))] = draw(st.binary(max_size=16))
    return bytes(data)


def _plan(make_uow, tree, content, name):
    with make_uow() as uow:
        plan = importer.plan_import(uow.session, tree.actors["chair_a"], tree.primary_a, content, name)
        uow.rollback()
    for error in plan.errors:
        assert error.message and "%(" not in error.message
    return plan


@FUZZ
@given(content=damaged(VALID_XLSX))
def test_damaged_member_workbooks(make_uow, tree, content):
    _plan(make_uow, tree, content, "members.xlsx")


@FUZZ
@given(content=damaged(VALID_CSV))
def test_damaged_member_csv(make_uow, tree, content):
    _plan(make_uow, tree, content, "members.csv")


cell = st.one_of(st.text(max_size=120), st.integers(-10 ** 20, 10 ** 20), st.floats(allow_nan=True),
                 st.sampled_from(["=1+1", "'=cmd", "31.02.2020", "01.01.9999", "00.00.0000", "да", "нет", "ж",
                                  "м", "работающий", "9" * 300, "Иванов\x00", "Ив\u200bанов", "Müller", "Смиpнова"]))


@FUZZ
@given(rows=st.lists(st.lists(cell, min_size=0, max_size=len(HEADERS) + 2), max_size=6), repeat=st.booleans())
def test_member_rows_of_any_content(make_uow, tree, rows, repeat):
    texts = [[str(v) for v in row] for row in rows]
    if repeat and texts:
        texts.append(texts[0])  # the same person twice
    content = csv_bytes([[v.replace(";", ",").replace("\n", " ").replace("\r", " ") for v in row]
                         for row in texts], "utf-8")
    plan = _plan(make_uow, tree, content, "m.csv")
    if plan.errors:
        with make_uow() as uow, pytest.raises(UnionCardError):
            importer.apply_import(uow, tree.actors["chair_a"], plan)


@FUZZ
@given(content=damaged(VALID_ROSTER))
def test_damaged_roster_files(content):
    try:
        rows = checkin.read_roster_file(content, "roster.xlsx")
    except UnionCardError as refused:
        assert refused.code
    else:
        assert all(isinstance(number, int) and isinstance(card, str) for number, card, _role in rows)


@FUZZ
@given(rows=st.lists(st.lists(cell, max_size=4), max_size=8))
def test_roster_rows_of_any_content(make_uow, tree, rows):
    event_id = _event(make_uow, tree)
    try:
        parsed = checkin.read_roster_file(_roster_xlsx(rows), "roster.xlsx")
    except UnionCardError as refused:
        assert refused.code
        return
    with make_uow() as uow:
        result = checkin.import_roster(uow, tree.actors["admin"], event_id, parsed)
        uow.rollback()
    assert all(message and "%(" not in message for _row, message in result.problems)


_EVENTS: dict = {}


def _event(make_uow, tree):
    from unioncard.clock import today as union_today

    key = id(tree)
    if key not in _EVENTS:
        with make_uow() as uow:
            event = checkin.create_event(uow, tree.actors["admin"], code=f"F{key}", name="Фаззинг", kind="seminar",
                                         organisation_id=tree.central, starts_on=union_today(), ends_on=union_today(),
                                         venue="—", admission="roster")
            uow.commit()
            _EVENTS[key] = event.id
    return _EVENTS[key]


@FUZZ
@given(content=st.binary(max_size=2048), name=st.sampled_from(["a.xlsx", "a.csv", "a.xls", "a", "a.ods"]))
def test_any_bytes_at_all(content, name):
    try:
        tables.read_table(content, name)
    except UnionCardError as refused:
        assert refused.code


@FUZZ
@given(values=st.lists(st.one_of(st.text(max_size=40), st.integers(-10 ** 30, 10 ** 30), st.floats(allow_nan=True),
                                 st.none(), st.booleans()), max_size=8))
def test_the_writer_takes_any_value_and_never_writes_a_formula(values):
    from openpyxl import load_workbook

    content = tables.write_tables(tables.Table(["a"] * max(1, len(values)), [values], title="\x07=T",
                                               sheet_title="[bad]:name*?/\\" * 3))
    sheet = load_workbook(io.BytesIO(content)).active
    assert all(c.data_type != "f" for row in sheet.iter_rows() for c in row)
