"""The reporting campaign in Chromium at 390 px: the administrator opens the year, a chairperson
fills the passport and sends Form 2, the region returns it with a comment, the chairperson corrects
a figure with its reason and sends it again, the region accepts it; nothing spills sideways."""

from __future__ import annotations


import pytest

from tests.test_admin_screens import _phone as _signed_in
from unioncard.clock import today as union_today

pytestmark = pytest.mark.browser


def _fits(page) -> None:
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1"), page.url


def test_a_campaign_from_opening_to_acceptance_on_a_phone(browser, live_server, tree):
    year = union_today().year
    admin, page = _signed_in(browser, live_server, "admin")
    page.click("header >> text=Статистика")
    page.fill("#year", str(year))
    page.fill("#deadline", f"{year + 1}-02-01")
    page.click("button:has-text('Открыть кампанию')")
    page.wait_for_selector(f"h1:has-text('Отчёты за {year} год')")
    _fits(page)
    admin.close()

    chair, page = _signed_in(browser, live_server, "chair_a")
    banner = page.locator(".flash", has_text=f"Форма 2 за {year} год")
    assert "не начата" in banner.inner_text()
    page.click("text=Открыть нашу форму")
    page.wait_for_selector("h1:has-text('Форма 2')")
    assert "численности работающих нет в паспорте" in page.inner_text("main")
    assert page.locator("button:has-text('Отправить форму')").is_disabled()
    _fits(page)
    page.click("main >> text=Паспорт")
    page.select_option("#institution_type", "school")
    for field, value in (("employees_total", "30"), ("employees_women", "25"), ("employees_youth", "4"),
                         ("phone", "8 862 000-00-01")):
        page.fill(f"#{field}", value)
    page.fill("#founded_on", "1985-09-01")
    page.select_option("#legal_entity", "no")
    page.click("button:has-text('Сохранить паспорт')")
    page.wait_for_selector("text=Паспорт сохранён")
    _fits(page)
    page.goto(f"{live_server}/statistics/{year}/org/{tree.primary_a}")
    assert "Все проверки пройдены" in page.inner_text("main")
    page.click("button:has-text('Отправить форму')")
    page.wait_for_selector("text=Форма отправлена в вышестоящую организацию")
    assert "отправлена" in page.inner_text(".facts")
    _fits(page)

    region, rpage = _signed_in(browser, live_server, "region_a")
    rpage.goto(f"{live_server}/statistics/{year}/?status=submitted")
    rpage.click("text=ППО школы № 1 г. Сочи")
    rpage.fill("#comment", "Проверьте строку 3: принятых за год было трое")
    rpage.click("button:has-text('Вернуть на исправление')")
    rpage.wait_for_selector("text=Форма возвращена на исправление")
    _fits(rpage)

    page.goto(live_server + "/")
    banner = page.locator(".flash", has_text="Форма 2 за")
    assert "возвращена на исправление" in banner.inner_text()
    assert "Проверьте строку 3" in banner.inner_text()
    page.click("text=Открыть нашу форму")
    page.select_option("#row", "3")
    page.select_option("#col", "total")
    page.fill("#value", "3")
    page.fill("#reason", "двое приняты по бумажным заявлениям, в реестре ещё нет")
    page.click("button:has-text('Сохранить значение')")
    page.wait_for_selector("text=Значение исправлено")
    main = page.inner_text("main")
    assert "Строка 3, всего: 3 вместо 0" in main
    # Three admitted this year, but only two members work here: the check names the rows.
    assert "Строка 3 (всего) больше строки 2" in main
    page.fill("input[name=text]", "Двое ещё не внесены в реестр")
    page.click("button:has-text('Сохранить пояснение')")
    page.wait_for_selector("text=Пояснение сохранено")
    page.click("button:has-text('Отправить форму')")
    page.wait_for_selector("text=Форма отправлена в вышестоящую организацию")
    _fits(page)

    rpage.goto(f"{live_server}/statistics/{year}/org/{tree.primary_a}")
    rpage.click("button:has-text('Принять форму')")
    rpage.wait_for_selector("text=Форма принята")
    assert "принята" in rpage.inner_text(".facts")
    history = rpage.inner_text("main")
    assert "форма возвращена на исправление" in history and "исправлено значение" in history
    rpage.goto(f"{live_server}/statistics/{year}/")
    assert "принята (1)" in rpage.inner_text("main")
    _fits(rpage)
    page.goto(live_server + "/")
    assert page.locator(".flash", has_text="Форма 2 за").count() == 0   # accepted: nothing to do
    chair.close()
    region.close()
