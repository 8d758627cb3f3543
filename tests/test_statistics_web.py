"""The statistics pages through the web: a campaign from opening to an accepted form, the XLSX in
the union's layout read back with openpyxl, the PDF read back with pdftotext, and every door of
another region's organisation answering 404."""

from __future__ import annotations

import io
import re
import subprocess


import openpyxl
import pytest

from tests.support import WebClient
from unioncard import clock

YEAR = clock.today().year


def _as(app, login):
    client = WebClient(app)
    client.login(login)
    return client


def _version(page: str) -> str:
    return re.search(r'name="version" value="(\d+)"', page).group(1)


@pytest.fixture
def opened(app, tree):
    admin = _as(app, "admin")
    answer = admin.post("/statistics/campaigns", {"year": str(YEAR), "deadline": f"{YEAR + 1}-02-01"},
                        token_from="/statistics/")
    assert answer.status_code == 302
    return admin


def test_a_chairperson_fills_sends_and_the_region_accepts(app, tree, opened):
    chair = _as(app, "chair_a")
    home = chair.get("/", follow_redirects=True).get_data(as_text=True)
    assert f"Форма 2 за {YEAR} год" in home and "Открыть нашу форму" in home
    page = chair.get(f"/statistics/{YEAR}/org/{tree.primary_a}").get_data(as_text=True)
    assert "Форма 2" in page and "не начата" in page
    assert "Строка 1: численности работающих нет в паспорте организации" in page
    # The passport: a headcount below the registry's two working members is refused, in Russian.
    refused = chair.post(f"/statistics/passport/{tree.primary_a}", {
        "institution_type": "school", "employees_total": "1", "employees_women": "1", "employees_youth": "0",
        "founded_on": "2001-09-01", "legal_entity": "no", "phone": "89001234567"},
        token_from=f"/statistics/passport/{tree.primary_a}")
    assert "Членов профсоюза здесь по реестру: 2" in refused.get_data(as_text=True)
    saved = chair.post(f"/statistics/passport/{tree.primary_a}", {
        "institution_type": "school", "employees_total": "30", "employees_women": "25", "employees_youth": "4",
        "founded_on": "2001-09-01", "legal_entity": "no", "phone": "89001234567"},
        token_from=f"/statistics/passport/{tree.primary_a}")
    assert saved.status_code == 302
    page = chair.get(f"/statistics/{YEAR}/org/{tree.primary_a}").get_data(as_text=True)
    assert "Все проверки пройдены" in page
    sent = chair.post(f"/statistics/{YEAR}/org/{tree.primary_a}/submit", {"version": _version(page)},
                      token_from=f"/statistics/{YEAR}/org/{tree.primary_a}")
    assert sent.status_code == 302
    # Sent twice from the same page: the second is told, nothing changes.
    again = chair.post(f"/statistics/{YEAR}/org/{tree.primary_a}/submit", {"version": _version(page)},
                       token_from=f"/statistics/{YEAR}/org/{tree.primary_a}", follow_redirects=True)
    assert "Кто-то уже изменил эту форму" in again.get_data(as_text=True)
    region = _as(app, "region_a")
    board = region.get(f"/statistics/{YEAR}/?status=submitted").get_data(as_text=True)
    assert "ППО школы № 1 г. Сочи" in board and "ППО школы № 2" not in board
    page = region.get(f"/statistics/{YEAR}/org/{tree.primary_a}").get_data(as_text=True)
    accepted = region.post(f"/statistics/{YEAR}/org/{tree.primary_a}/accept", {"version": _version(page)},
                           token_from=f"/statistics/{YEAR}/org/{tree.primary_a}", follow_redirects=True)
    assert "Форма принята" in accepted.get_data(as_text=True)
    # The chairperson cannot accept or return: that is the level above.
    page = chair.get(f"/statistics/{YEAR}/org/{tree.primary_a}").get_data(as_text=True)
    assert "Вернуть на исправление" not in page
    assert chair.post(f"/statistics/{YEAR}/org/{tree.primary_a}/return", {"version": "3", "comment": "x"},
                      token_from="/statistics/").status_code == 404
    # Form 7 of the territorial organisation now holds the school's figures.
    form7 = region.get(f"/statistics/{YEAR}/org/{tree.territorial_a}").get_data(as_text=True)
    assert "Форма 7" in form7 and "Таблица III" in form7


def test_the_xlsx_and_pdf_are_in_the_unions_layout(app, tree, opened):
    admin = opened
    answer = admin.get(f"/statistics/{YEAR}/org/{tree.primary_a}.xlsx")
    assert answer.status_code == 200
    book = openpyxl.load_workbook(io.BytesIO(answer.data))
    sheet = book.worksheets[0]
    assert sheet["A1"].value.startswith("Форма 2. Статистический отчёт первичной профсоюзной организации")
    assert sheet["A2"].value == "ППО школы № 1 г. Сочи"
    assert (sheet["A5"].value, sheet["B5"].value, sheet["C5"].value, sheet["D5"].value) == (
        "№ п/п", "Наименование показателей", "Всего", "В том числе:")
    assert (sheet["D6"].value, sheet["E6"].value) == ("Женщин", "Молодёжи до 35 лет")
    assert [sheet.cell(row=7, column=c).value for c in range(1, 6)] == [1, 2, 3, 4, 5]
    rows = {sheet.cell(row=r, column=1).value: r for r in range(8, 22)}
    # Row 2 (members working): Иванов and Щёлокова; one woman; nobody under 35.
    assert [sheet.cell(row=rows["2"], column=c).value for c in (3, 4, 5)] == [2, 1, 0]
    assert "D6:E6" not in {str(r) for r in sheet.merged_cells.ranges}
    assert "D5:E5" in {str(r) for r in sheet.merged_cells.ranges}
    assert [ws.title for ws in book.worksheets] == ["Таблица II", "Сравнение с прошлым годом"]
    pdf = admin.get(f"/statistics/{YEAR}/org/{tree.primary_a}.pdf")
    assert pdf.status_code == 200 and pdf.data.startswith(b"%PDF")
    text = subprocess.run(["pdftotext", "-layout", "-", "-"], input=pdf.data, capture_output=True,
                          check=True).stdout.decode()
    assert "ППО школы № 1 г. Сочи" in text and "(подпись)" in text and "Председатель первичной" in text
    form7 = admin.get(f"/statistics/{YEAR}/org/{tree.region_a}.xlsx")
    book = openpyxl.load_workbook(io.BytesIO(form7.data))
    assert [ws.title for ws in book.worksheets] == ["Таблица II", "Таблица III", "Сравнение с прошлым годом"]
    assert book.worksheets[0]["C5"].value == "Предприятия, учреждения, организации"


FOREIGN_PAGES = ("/statistics/{year}/org/{org}", "/statistics/{year}/org/{org}.xlsx", "/statistics/{year}/org/{org}.pdf",
                 "/statistics/passport/{org}", "/statistics/positions/{org}")
FOREIGN_POSTS = ("/statistics/{year}/org/{org}/correct", "/statistics/{year}/org/{org}/explain",
                 "/statistics/{year}/org/{org}/submit", "/statistics/{year}/org/{org}/accept",
                 "/statistics/{year}/org/{org}/return", "/statistics/passport/{org}",
                 "/statistics/positions/{org}/add", "/statistics/positions/{org}/1/end")


def test_another_regions_organisation_is_404_at_every_door(app, tree, opened):
    other = _as(app, "region_b")
    for org in (tree.primary_a, tree.territorial_a, tree.region_a, 10**12):
        for path in FOREIGN_PAGES:
            url = path.format(year=YEAR, org=org)
            assert other.get(url).status_code == 404, url
        for path in FOREIGN_POSTS:
            url = path.format(year=YEAR, org=org)
            answer = other.post(url, {"version": "1", "row": "2", "col": "total", "value": "5", "reason": "x",
                                      "comment": "x", "code": "x", "text": "x", "employees_total": "1",
                                      "person_id": "1", "kind": "committee", "starts_on": "2024-01-01",
                                      "ends_on": "2025-01-01"}, token_from="/statistics/")
            assert answer.status_code == 404, url


def test_a_year_without_campaign_and_bad_input_are_named(app, tree, opened):
    admin = opened
    answer = admin.get(f"/statistics/1999/org/{tree.primary_a}", follow_redirects=True)
    assert "Отчётная кампания за 1999 год не открыта" in answer.get_data(as_text=True)
    page = admin.get(f"/statistics/{YEAR}/org/{tree.primary_a}").get_data(as_text=True)
    for value, message in (("12abc", "Введите целое число"), ("99999999999", "Введите число от 0 до 10 000 000")):
        answer = admin.post(f"/statistics/{YEAR}/org/{tree.primary_a}/correct",
                            {"version": _version(page), "row": "2", "col": "total", "value": value, "reason": "r"},
                            token_from="/statistics/", follow_redirects=True)
        assert message in answer.get_data(as_text=True)
        page = answer.get_data(as_text=True)
    answer = admin.post(f"/statistics/{YEAR}/org/{tree.primary_a}/correct",
                        {"version": _version(page), "row": "2", "col": "total", "value": "7", "reason": "a\x01b"},
                        token_from="/statistics/", follow_redirects=True)
    assert answer.status_code == 200 and "Текст содержит символы" in answer.get_data(as_text=True)
    answer = admin.post("/statistics/campaigns", {"year": str(YEAR), "deadline": f"{YEAR + 1}-02-01"},
                        token_from="/statistics/", follow_redirects=True)
    assert f"Кампания за {YEAR} год уже открыта" in answer.get_data(as_text=True)
    answer = admin.post("/statistics/campaigns", {"year": "99999999999999999999", "deadline": "x"},
                        token_from="/statistics/", follow_redirects=True)
    assert answer.status_code == 200
    passports = admin.get("/statistics/passports").get_data(as_text=True)
    assert "Заполнено обязательных полей" in passports


def test_an_organisation_name_like_a_formula_stays_text_in_the_form(app, tree, opened, session_factory):
    from unioncard.registry.models import Organisation

    with session_factory() as session:
        session.get(Organisation, tree.primary_a).name = '=HYPERLINK("http://example.org","ППО")'
        session.commit()
    book = openpyxl.load_workbook(io.BytesIO(opened.get(f"/statistics/{YEAR}/org/{tree.primary_a}.xlsx").data))
    cell = book.worksheets[0]["A2"]
    assert cell.value.startswith("=HYPERLINK") and cell.data_type == "s" and cell.quotePrefix
