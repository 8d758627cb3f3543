"""The administrator's and event staff's screens that replaced the shell: logins (list, create,
new password, disable, role and organisation, history), appointing a chairperson with the login
for the term, and an event's list with names (add one person, take one off, edit, cancel).
Driven in Chromium at 390 px, then the same rules through the test client with foreign ids."""

from __future__ import annotations

import re
from datetime import date

import pytest
from sqlalchemy import func, select

from tests.support import PASSWORD, WebClient
from tests.test_web import text_of
from unioncard.registry.models import AuditEntry, ChairpersonTerm, Membership, UserAccount

PHONE = {"width": 390, "height": 844}


def _phone(browser, base, login, password=PASSWORD):
    context = browser.new_context(viewport=PHONE, is_mobile=True, locale="ru-RU")
    page = context.new_page()
    page.on("dialog", lambda dialog: dialog.accept())  # the confirmations before what cannot be undone
    page.goto(base + "/login")
    page.fill("#login", login)
    page.fill("#password", password)
    page.click("button[type=submit].primary")
    page.wait_for_load_state()
    return context, page


def _fits(page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")


def _can_log_in(base, browser, login, password) -> bool:
    context = browser.new_context()
    page = context.new_page()
    page.goto(base + "/login")
    page.fill("#login", login)
    page.fill("#password", password)
    page.click("button[type=submit].primary")
    page.wait_for_load_state()
    ok = "/login" not in page.url
    context.close()
    return ok


@pytest.mark.browser
def test_an_administrator_manages_logins_on_a_phone(browser, live_server, tree, session_factory):
    context, page = _phone(browser, live_server, "admin")
    page.click("a.navlink:has-text('Пользователи')")
    page.wait_for_selector("h1:has-text('Пользователи')")
    assert page.locator("table.users").inner_text().count("chair_a") >= 1 and _fits(page)

    # A new login: the password is made by the system and shown once.
    page.click("text=Новый пользователь")
    page.fill("#full_name", "Кузнецова Ольга Ивановна")
    page.fill("#login", "kuznetsova")
    page.select_option("#role", "registrar")
    page.fill("#organisation", "школы № 1")
    page.click("button:has-text('Создать логин')")
    page.wait_for_selector("h1:has-text('Логин создан')")
    assert _fits(page)
    first_password = page.locator("#password").inner_text().strip()
    assert re.fullmatch(r"[a-z2-9]{4}-[a-z2-9]{4}-[a-z2-9]{4}", first_password)
    assert _can_log_in(live_server, browser, "kuznetsova", first_password)

    # A new password: the old one stops working at once.
    page.click("text=На страницу пользователя")
    page.wait_for_selector("h1:has-text('Кузнецова Ольга Ивановна')")
    assert _fits(page)
    page.click("button:has-text('Сделать новый пароль')")
    page.wait_for_selector("h1:has-text('Новый пароль')")
    second_password = page.locator("#password").inner_text().strip()
    assert second_password != first_password
    assert not _can_log_in(live_server, browser, "kuznetsova", first_password)
    assert _can_log_in(live_server, browser, "kuznetsova", second_password)

    # Role and organisation: a registry officer of one school becomes regional staff of the region.
    page.click("text=На страницу пользователя")
    page.select_option("#role", "regional_staff")
    page.fill("#organisation", "23")
    page.click("button:has-text('Сохранить роль и организацию')")
    page.wait_for_selector("text=Роль и организация изменены")
    assert "Краснодарская" in page.locator("dl.facts").inner_text()

    # Disable: asked first, then the login no longer works.
    page.click("button:has-text('Отключить логин')")
    page.wait_for_selector("text=Логин отключён")
    assert not _can_log_in(live_server, browser, "kuznetsova", second_password)
    history = page.locator("table.list").last.inner_text()
    for what in ("логин создан", "новый пароль", "изменены роль или организация", "логин отключён"):
        assert what in history, what
    assert _fits(page)
    context.close()

    with session_factory() as s:
        user = s.scalar(select(UserAccount).where(UserAccount.login == "kuznetsova"))
        assert (user.role, user.organisation_id, user.is_enabled) == ("regional_staff", tree.region_a, False)
        actions = s.scalars(select(AuditEntry.action).where(AuditEntry.object_type == "user",
                                                            AuditEntry.object_id == str(user.id))).all()
        assert {"user.create", "user.password_set", "user.role_change", "user.disable"} <= set(actions)


@pytest.mark.browser
def test_an_administrator_appoints_a_chairperson_and_makes_the_login(browser, live_server, tree, session_factory):
    context, page = _phone(browser, live_server, "admin")
    page.goto(live_server + f"/registry/org/{tree.primary_a}")
    page.click("text=Назначить председателя")
    page.wait_for_selector("h1:has-text('Назначить председателя')")
    assert "Иванов Иван" in page.locator("main").inner_text()  # the chairperson now
    page.fill("#q", "щелок")
    page.click("button:has-text('Найти')")
    page.click("button:has-text('Назначить')")
    page.wait_for_selector("text=Председатель назначен")
    # The login form comes prefilled with the person, the role and the organisation.
    assert page.input_value("#full_name") == "Щёлокова Анна Петровна"
    assert page.input_value("#role") == "chairperson"
    assert page.input_value("#organisation") == "23-01-001"
    page.fill("#login", "shchyolokova")
    page.click("button:has-text('Создать логин')")
    password = page.locator("#password").inner_text().strip()
    assert _fits(page)
    context.close()
    context, page = _phone(browser, live_server, "shchyolokova", password)
    assert page.locator("h1").inner_text() == "ППО школы № 1 г. Сочи"
    context.close()
    with session_factory() as s:
        person_id = s.get(Membership, tree.members["shchyolokova"]).person_id
        terms = s.scalars(select(ChairpersonTerm).where(ChairpersonTerm.organisation_id == tree.primary_a)
                          .order_by(ChairpersonTerm.id)).all()
        # The old term ends the day the new one starts; the new one runs five years.
        assert terms[-1].person_id == person_id and terms[0].ends_on == terms[-1].starts_on
        assert (terms[-1].ends_on - terms[-1].starts_on).days in (1825, 1826)
        user = s.scalar(select(UserAccount).where(UserAccount.login == "shchyolokova"))
        assert user.chairperson_term_id == terms[-1].id


@pytest.mark.browser
def test_event_staff_keep_the_list_by_name_edit_and_cancel_on_a_phone(browser, live_server, tree, make_uow,
                                                                       session_factory, tmp_path, app):
    from tests.station_support import enrol, export_trust, issued_cards, make_event
    from tests.support import union_keys
    from unioncard.checkin.models import Event, RosterEntry, Station
    from unioncard.registry import services

    stores = union_keys(tmp_path)
    export_trust(make_uow, stores)
    held = issued_cards(make_uow, tree, 2, stores.operational, prefix="Делегатова")
    event_id = make_event(make_uow, tree, stores, roster=[held[0].number])
    station_id, _token = enrol(make_uow, event_id, "Стол 1")
    with make_uow() as uow:
        services.create_user(uow, services.Actor.system("t"), login="events", password=PASSWORD,
                             full_name="Организатор", role="event_staff", organisation_id=tree.central)
        # Someone on the list without a card: «expected» says more than the desk data hold, and why.
        person_id = uow.session.get(Membership, tree.members["sidorova"]).person_id
        uow.session.add(RosterEntry(event_id=event_id, person_id=person_id, role="guest"))
        uow.commit()
    context, page = _phone(browser, live_server, "events")
    page.goto(live_server + f"/events/{event_id}")
    note = page.locator("#expected_note").inner_text()
    assert "У 1 человека из списка нет карты" in note
    page.click("text=Список с фамилиями")
    page.wait_for_selector("h1:has-text('Список делегатов и гостей')")
    listed = page.locator("table.roster").inner_text()
    assert "Делегатова" in listed and "Сидорова Мария Олеговна" in listed and "нет карты" in listed
    assert "2 человека" in page.locator("main").inner_text()
    assert _fits(page)

    # Add one person found by surname, as a guest.
    page.fill("#find", "петров")
    page.click("form:has(#find) button")
    candidate = page.locator("form.card-row").filter(has_text="Петров Пётр")
    candidate.locator("select").select_option("guest")
    candidate.locator("button").click()
    page.wait_for_selector("text=Добавлен в список")
    assert "Петров Пётр" in page.locator("table.roster").inner_text()
    # Take one off (asked first).
    page.locator("table.roster tr").filter(has_text="Сидорова").locator("button").click()
    page.wait_for_selector("text=Исключён из списка")
    assert "Сидорова" not in page.locator("table.roster").inner_text()
    assert _fits(page)

    # Edit, then cancel: the desks are revoked and nothing more can be added.
    page.click(f"text={'XI съезд Профсоюза'}")
    page.click("text=Изменить или отменить мероприятие")
    page.fill("#venue", "Москва, Дом союзов")
    page.click("button:has-text('Сохранить')")
    page.wait_for_selector("text=Москва, Дом союзов")
    page.click("text=Изменить или отменить мероприятие")
    page.fill("#reason", "перенос на весну")
    page.click("button:has-text('Отменить мероприятие')")
    page.wait_for_selector("text=Мероприятие отменено")
    assert "перенос на весну" in page.locator("main").inner_text()
    assert page.locator("text=Подключить стол").count() == 0 and _fits(page)
    context.close()
    with session_factory() as s:
        event = s.get(Event, event_id)
        assert event.venue == "Москва, Дом союзов" and event.cancelled_at is not None
        assert s.get(Station, station_id).revoked_at is not None
        roles = dict(s.execute(select(RosterEntry.person_id, RosterEntry.role)
                               .where(RosterEntry.event_id == event_id)).all())
        petrov = s.get(Membership, tree.members["petrov"]).person_id
        assert roles.get(petrov) == "guest" and person_id not in roles


def test_adding_an_organisation_as_guests_keeps_its_delegates(make_uow, tree, tmp_path, session_factory):
    from tests.station_support import export_trust, issued_cards, make_event
    from tests.support import union_keys
    from unioncard.checkin import services as checkin
    from unioncard.checkin.models import RosterEntry

    stores = union_keys(tmp_path)
    export_trust(make_uow, stores)
    held = issued_cards(make_uow, tree, 1, stores.operational, prefix="Делегатова")
    event_id = make_event(make_uow, tree, stores, roster=[held[0].number])
    with make_uow() as uow:
        result = checkin.add_organisation_members(uow, tree.actors["admin"], event_id, tree.primary_a, "guest")
        uow.commit()
    assert result.kept == 1 and result.updated == 0 and result.added >= 2
    with session_factory() as s:
        roles = [r for (r,) in s.execute(select(RosterEntry.role).where(RosterEntry.event_id == event_id))]
    assert roles.count("delegate") == 1


def test_user_screens_are_for_administrators_in_their_own_scope(web, app, tree, make_uow, system):
    from unioncard.registry import services

    for login in ("chair_a", "region_a", "bureau"):
        client = WebClient(app)
        client.login(login)
        for path in ("/users/", "/users/new", f"/users/{tree.users['chair_a']}",
                     f"/users/chairperson/{tree.primary_a}"):
            assert client.get(path).status_code == 404, (login, path)
    # An administrator of one region sees and changes logins of that region only.
    with make_uow() as uow:
        services.create_user(uow, system, login="admin_b", password=PASSWORD, full_name="Админ Чувашии",
                             role="admin", organisation_id=tree.region_b)
        uow.commit()
    web.login("admin_b")
    listing = text_of(web.get("/users/"))
    assert "chair_b" in listing and "chair_a" not in listing and "region_a" not in listing
    token = web.token("/users/")
    for user_id in (tree.users["chair_a"], tree.users["admin"], 987654):
        assert web.get(f"/users/{user_id}").status_code == 404
        for action, data in (("password", {}), ("enabled", {"enabled": "0"}),
                             ("role", {"role": "admin", "organisation": "21"})):
            response = web.post(f"/users/{user_id}/{action}", data={"csrf_token": token, **data})
            assert response.status_code == 404, (user_id, action)
    # Nor can a login be moved out of, or created outside, the administrator's part of the union.
    response = web.post(f"/users/{tree.users['chair_b']}/role",
                        data={"csrf_token": token, "role": "admin", "organisation": "23"}, follow_redirects=True)
    assert "Организации с кодом или названием «23» нет" in text_of(response)
    response = web.post("/users/new", data={"csrf_token": token, "login": "x1", "full_name": "Икс", "role": "admin",
                                            "organisation": "23-01-001"})
    assert "Организации с кодом или названием «23-01-001» нет" in text_of(response)
    assert web.get(f"/users/chairperson/{tree.primary_a}").status_code == 404
    with web.app.extensions["unioncard"].session_factory() as s:
        assert s.get(UserAccount, tree.users["chair_a"]).is_enabled
        assert s.get(UserAccount, tree.users["chair_b"]).role == "chairperson"
        assert s.scalar(select(func.count()).select_from(UserAccount).where(UserAccount.login == "x1")) == 0


def test_an_administrator_cannot_lock_themselves_out(web, tree):
    web.login("admin")
    token = web.token("/users/")
    own = tree.users["admin"]
    page = text_of(web.post(f"/users/{own}/enabled", data={"csrf_token": token, "enabled": "0"},
                            follow_redirects=True))
    assert "Свой логин отключить нельзя" in page
    page = text_of(web.post(f"/users/{own}/role", data={"csrf_token": token, "role": "registrar",
                                                         "organisation": "23-01-001"}, follow_redirects=True))
    assert "Свою роль и организацию менять нельзя" in page
    with web.app.extensions["unioncard"].session_factory() as s:
        admin = s.get(UserAccount, own)
        assert admin.is_enabled and admin.role == "admin"


def test_a_chairperson_login_needs_a_term_and_an_ambiguous_organisation_is_named(web, tree):
    web.login("admin")
    token = web.token("/users/new")
    page = text_of(web.post("/users/new", data={"csrf_token": token, "login": "newchair", "full_name": "Н",
                                                "role": "chairperson", "organisation": "23-01-002"}))
    # School 2's chairperson (Петров) has a login already: a term of office has one login, so nobody
    # else can borrow it, by the form or by naming the term.
    assert "У этого председателя уже есть логин" in page
    with web.app.extensions["unioncard"].session_factory() as s:
        term_id = s.get(UserAccount, tree.users["chair_a2"]).chairperson_term_id
    page = text_of(web.post("/users/new", data={"csrf_token": token, "login": "hack3", "full_name": "Хакер",
                                                "role": "chairperson", "organisation": "23-01-002",
                                                "term": str(term_id)}))
    assert "У этого председателя уже есть логин" in page
    # Nor does another login become a chairperson by a change of role.
    page = text_of(web.post(f"/users/{tree.users['region_a']}/role", data={
        "csrf_token": token, "role": "chairperson", "organisation": "23-01-002"}, follow_redirects=True))
    assert "Логин председателя создаётся после назначения" in page
    # An administrator's own password is not reset from the administration pages.
    page = text_of(web.post(f"/users/{tree.users['admin']}/password", data={"csrf_token": token},
                            follow_redirects=True))
    assert "Это ваш собственный логин" in page and "Новый пароль" not in page
    with web.app.extensions["unioncard"].session_factory() as s:
        assert s.scalar(select(func.count()).select_from(UserAccount).where(
            UserAccount.login.in_(["newchair", "hack3"]))) == 0
        assert s.get(UserAccount, tree.users["region_a"]).role == "regional_staff"
    page = text_of(web.post("/users/new", data={"csrf_token": token, "login": "someone", "full_name": "Н",
                                                "role": "registrar", "organisation": "ППО школы"}))
    assert "несколько организаций" in page
    page = text_of(web.post("/users/new", data={"csrf_token": token, "login": "someone", "full_name": "Н",
                                                "role": "no-such-role", "organisation": "23-01-001"}))
    assert "Выберите роль" in page


def test_a_chairperson_sees_their_own_organisations_coverage_and_the_region_a_chart(web, app, tree, make_uow,
                                                                                     tmp_path):
    from tests.station_support import export_trust, issued_cards
    from tests.support import union_keys

    stores = union_keys(tmp_path)
    export_trust(make_uow, stores)
    issued_cards(make_uow, tree, 2, stores.operational, prefix="Выданова")  # in school 1 of region 23
    web.login("chair_a")
    page = web.get("/reports/coverage").get_data(as_text=True)
    assert "Охват ЭПБ вашей организации" in page and "ППО школы № 1 г. Сочи" in page
    text = text_of(web.get("/reports/coverage"))
    # Ivanov and Shchyolokova plus the two card holders: 4 members, 2 with the card, 50 %.
    assert "ППО школы № 1 г. Сочи 4 2 0 2 50" in text
    region = WebClient(app)
    region.login("region_a")
    page = region.get("/reports/coverage").get_data(as_text=True)
    assert "<svg" in page and "Краснодарская" in page and 'role="img"' in page


def test_a_login_is_plain_latin_and_a_name_is_required(web, tree, session_factory):
    web.login("admin")
    token = web.token("/users/new")
    for login, name, said in (("Иванова", "Иванова Мария", "Логин — это латинские буквы"),
                              ("ivanova mp", "Иванова Мария", "Логин — это латинские буквы"),
                              ("ivanova", "   ", "Укажите фамилию, имя и отчество")):
        page = text_of(web.post("/users/new", data={"csrf_token": token, "login": login, "full_name": name,
                                                    "role": "registrar", "organisation": "23-01-001"}))
        assert said in page, login
    with session_factory() as s:
        assert s.scalar(select(func.count()).select_from(UserAccount).where(
            UserAccount.login.in_(["иванова", "ivanova mp", "ivanova"]))) == 0
