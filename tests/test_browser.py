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


def test_chairperson_hands_out_cards_on_a_phone(browser, live_server, tree, make_uow, session_factory, system,
                                                tmp_path):
    """«Выдан» for one card typed as a wedge scanner types it (digits + Enter), «Отказ» with a
    reason for another, on a 390-pixel screen."""
    from datetime import date

    from unioncard.issuer import cardnumber
    from unioncard.issuer import services as cards
    from unioncard.issuer.domain import CardStatus
    from unioncard.issuer.models import Card
    from unioncard.registry import services as registry

    with make_uow() as uow:
        for key in ("ivanov", "shchyolokova"):
            registry.give_consent(uow, system, tree.members[key], "processing", date(2020, 1, 1), "paper")
        uow.commit()
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, locale="ru-RU")
    page = context.new_page()
    page.goto(live_server + "/login")
    page.fill("#login", "chair_a")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit].primary")
    page.wait_for_url(f"**/registry/org/{tree.primary_a}")
    page.click("a.button:has-text('Билеты')")
    page.check(f"input[name=membership_id][value='{tree.members['ivanov']}']")
    page.check(f"input[name=membership_id][value='{tree.members['shchyolokova']}']")
    page.click("button:has-text('Заказать билеты отмеченным')")
    page.wait_for_selector("text=Заказано билетов: 2")
    assert no_horizontal_scroll(page)

    with make_uow() as uow:  # the region approves and the bureau produces and delivers
        ids = [c.id for c in uow.session.query(Card).order_by(Card.id)]
        cards.approve(uow, tree.actors["region_a"], ids)
        for target in (CardStatus.IN_PRODUCTION, CardStatus.PRODUCED, CardStatus.SHIPPED):
            cards.advance(uow, tree.actors["bureau"], ids, target)
        cards.advance(uow, tree.actors["region_a"], ids, CardStatus.DELIVERED)
        uow.commit()
    with session_factory() as s:
        first, second = [s.get(Card, i).number for i in ids]

    page.click("a.button:has-text('Выдача билетов')")
    page.wait_for_selector("h1:has-text('Выдача билетов')")
    assert page.locator("table").last.inner_text().count("передан в организацию") == 2
    page.focus("#numbers")
    page.keyboard.type(first + "\n", delay=5)  # what a keyboard-wedge scanner sends
    page.click("button:has-text('«Выдан»')")
    page.wait_for_selector("text=Отмечено «Выдан»: 1 из 1")
    assert "готово" in page.locator("table.results").inner_text()
    assert no_horizontal_scroll(page)
    page.fill("#numbers", cardnumber.format(second))
    page.fill("#reason", "в отпуске")
    page.click("button:has-text('«Отказ»')")
    page.wait_for_selector("text=Отмечено «Отказ»: 1 из 1")
    assert no_horizontal_scroll(page)
    page.screenshot(path=str(tmp_path / "hand-out.png"), full_page=True)
    with session_factory() as s:
        assert [s.get(Card, i).status for i in ids] == ["issued", "refused"]
        assert s.get(Card, ids[1]).status_reason == "в отпуске"
    context.close()
