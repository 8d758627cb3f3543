"""The registry in a real browser at phone size: log in, find a member typing «е» for «ё»,
record a consent, and nothing spills sideways off a 390-pixel screen."""

import pytest

from tests.support import PASSWORD

pytestmark = pytest.mark.browser


def no_horizontal_scroll(page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")


def test_chairperson_on_a_phone(browser, live_server, tree, tmp_path):
    context = browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True,
                                  locale="ru-RU")
    page = context.new_page()
    errors = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(live_server + "/")
    assert page.url.endswith("/login?next=%2F")
    page.fill("#login", "chair_a")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit].primary")
    page.wait_for_url(f"**/registry/org/{tree.primary_a}")
    assert page.locator("h1").inner_text() == "ППО школы № 1 г. Сочи"
    assert no_horizontal_scroll(page)
    page.screenshot(path=str(tmp_path / "organisation.png"), full_page=True)

    page.click("text=Члены Профсоюза")
    page.fill("#q", "щелок")
    page.click("button:has-text('Найти')")
    rows = page.locator("table.members tbody tr")
    assert rows.count() == 1 and "Щёлокова Анна Петровна" in rows.first.inner_text()
    assert no_horizontal_scroll(page)

    rows.first.locator("a").click()
    page.wait_for_selector("h1:has-text('Щёлокова')")
    section = page.locator("section.consent").first
    section.locator("input[type=date]").fill("2021-03-15")
    section.locator("button").click()
    page.wait_for_selector("text=Согласие записано")
    assert "Дано 15.03.2021" in page.locator("section.consent").first.inner_text()
    assert no_horizontal_scroll(page)
    page.screenshot(path=str(tmp_path / "member.png"), full_page=True)
    # The CSP forbids inline script and style: a violation would show up as a console error.
    assert [e for e in errors if "Content Security Policy" in e] == []
    context.close()


def test_wrong_password_message_in_browser(browser, live_server):
    page = browser.new_page()
    page.goto(live_server + "/login")
    page.fill("#login", "chair_a")
    page.fill("#password", "not the password")
    page.click("button[type=submit].primary")
    assert page.locator("[role=alert]").inner_text() == "Неверный логин или пароль"
    page.close()
