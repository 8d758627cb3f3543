import io
import re
from datetime import date, timedelta
from urllib.parse import unquote

from sqlalchemy import func, select

from unioncard.clock import today as union_today
from unioncard.registry.models import AuditEntry, Consent, Membership
from tests.support import PASSWORD
from tests.test_import_export import ROWS, xlsx


def text_of(response) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", response.get_data(as_text=True)))


def test_login_page_is_russian_and_has_security_headers(web):
    page = web.get("/login")
    assert page.status_code == 200
    assert "Войти" in text_of(page) and "Логин" in text_of(page)
    csp = page.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert page.headers["X-Frame-Options"] == "DENY" and page.headers["X-Content-Type-Options"] == "nosniff"


def test_login_and_logout(web, tree):
    response = web.login("chair_a")
    assert response.status_code == 302
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    home = web.get("/", follow_redirects=True)
    assert home.request.path == f"/registry/org/{tree.primary_a}"
    assert "ППО школы № 1 г. Сочи" in text_of(home)
    out = web.post("/logout", token_from="/")
    assert out.status_code == 302
    assert web.get("/").status_code == 302  # back to the login page


def test_wrong_password_russian_message_and_lockout(web, app):
    threshold = app.extensions["unioncard"].settings.login_lockout_threshold
    for _ in range(threshold):
        page = web.login("chair_a", "wrong password")
        assert page.status_code == 401 and "Неверный логин или пароль" in text_of(page)
    # Locked: the right password gets exactly the page an unknown login gets, so it reveals nothing.
    locked = web.login("chair_a", PASSWORD)
    unknown = web.login("no-such-login", PASSWORD)
    assert locked.status_code == unknown.status_code == 401
    assert text_of(locked) == text_of(unknown)


def test_unknown_login_gets_same_answer_as_wrong_password(web):
    assert "Неверный логин или пароль" in text_of(web.login("nobody", "whatever"))


def test_post_without_csrf_token_is_refused(web, session_factory):
    response = web.client.post("/login", data={"login": "chair_a", "password": PASSWORD})
    assert response.status_code == 400 and "Форма устарела" in text_of(response)
    with session_factory() as s:
        assert s.scalar(select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "login.success")) == 0


def test_session_times_out(web, app):
    app.config["PERMANENT_SESSION_LIFETIME"] = timedelta(seconds=1)
    web.login("chair_a")
    assert web.get("/").status_code == 302
    import time

    time.sleep(2.1)
    response = web.get("/registry/org/1")
    assert response.status_code == 302 and "/login" in response.location


def test_expired_term_logs_out_an_open_session(web, tree, session_factory):
    from unioncard.registry.models import UserAccount

    web.login("chair_a")
    assert web.get(f"/registry/org/{tree.primary_a}").status_code == 200
    with session_factory() as s:
        s.get(UserAccount, tree.users["chair_a"]).valid_until = union_today() - timedelta(days=1)
        s.commit()
    assert web.get(f"/registry/org/{tree.primary_a}").status_code == 302


def test_english_is_available(web):
    web.post("/language/en", data={"next": "/login"})
    assert "Log in" in text_of(web.get("/login"))


def test_member_search_treats_yo_and_e_alike(web, tree):
    web.login("chair_a")
    members = f"/registry/org/{tree.primary_a}/members"
    for query in ("Щелокова", "щёл", "ЩЕЛ"):
        page = web.post(members, token_from=members, data={"q": query}, follow_redirects=True)
        # The surname is not in any address (server logs, history, Referer): it stays in the session.
        assert page.request.full_path.rstrip("?") == members and query not in page.request.url
        assert "Щёлокова Анна" in text_of(page), query
        assert "Иванов" not in text_of(page)
        assert "Щёлокова Анна" in text_of(web.get(members))  # the list remembers the search
    web.post(members, token_from=members, data={"q": ""})
    assert "Иванов" in text_of(web.get(members))


def test_register_member_with_bad_dates_shows_russian_error_and_saves_nothing(web, tree, session_factory):
    web.login("chair_a")
    form = f"/registry/org/{tree.primary_a}/members/new"
    future = (union_today() + timedelta(days=3)).isoformat()
    page = web.post(form, token_from=form, data={
        "surname": "Новикова", "given_name": "Нина", "birth_date": future, "category": "working",
        "join_date": union_today().isoformat()})
    assert page.status_code == 200 and "в будущем" in text_of(page)
    with session_factory() as s:
        assert s.scalar(select(func.count()).select_from(Membership)) == 4


def test_register_member_registered_elsewhere_refused_then_transferred(web, tree, session_factory):
    web.login("admin")
    form = f"/registry/org/{tree.primary_a}/members/new"
    data = {"surname": "Сидорова", "given_name": "Мария", "patronymic": "Олеговна", "birth_date": "2003-09-10",
            "category": "student", "join_date": union_today().isoformat()}
    page = web.post(form, token_from=form, data=data)
    assert "уже состоит на учёте в другой первичной организации" in text_of(page)
    page = web.post(form, token_from=form, data={**data, "transfer": "y"})
    assert page.status_code == 302
    with session_factory() as s:
        assert not s.get(Membership, tree.members["sidorova"]).is_active


def test_member_page_consent_entry_is_audited(web, tree, session_factory):
    web.login("chair_a")
    member = f"/registry/member/{tree.members['ivanov']}"
    page = web.get(member)
    assert "Иванов Иван Иванович" in text_of(page) and "17.05.1980" in text_of(page)
    response = web.post(f"{member}/consent", token_from=member, data={
        "section_key": "processing", "processing-section": "processing", "processing-action": "give",
        "processing-on": "2020-02-01", "processing-form": "electronic"})
    assert response.status_code == 302
    assert "Дано 01.02.2020 (простая электронная подпись)" in text_of(web.get(member))
    with session_factory() as s:
        consent = s.scalars(select(Consent)).one()
        assert consent.form == "electronic" and consent.recorded_by == tree.users["chair_a"]
        views = s.scalar(select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "member.view"))
        assert views >= 2


def test_import_preview_then_confirm(web, tree, session_factory):
    web.login("chair_a")
    path = f"/registry/org/{tree.primary_a}/import"
    preview = web.post(path, token_from=path, data={"file": (io.BytesIO(xlsx(ROWS)), "список.xlsx")},
                       content_type="multipart/form-data")
    body = text_of(preview)
    assert "Новых членов Профсоюза: 2" in body and "Изменятся: 1" in body
    with session_factory() as s:
        assert s.scalar(select(func.count()).select_from(Membership)) == 4  # nothing yet
    token = re.search(r'name="token" type="hidden" value="([^"]+)"', preview.get_data(as_text=True)).group(1)
    done = web.post(f"{path}/confirm", token_from=path, data={"token": token})
    assert done.status_code == 302
    with session_factory() as s:
        assert s.scalar(select(func.count()).select_from(Membership)) == 6
    again = web.post(path, token_from=path, data={"file": (io.BytesIO(xlsx(ROWS)), "список.xlsx")},
                     content_type="multipart/form-data")
    assert "менять нечего" in text_of(again)


def test_import_errors_listed_with_row_numbers(web, tree):
    web.login("chair_a")
    path = f"/registry/org/{tree.primary_a}/import"
    bad = [ROWS[0][:3] + ["не дата"] + ROWS[0][4:]]
    page = web.post(path, token_from=path, data={"file": (io.BytesIO(xlsx(bad)), "x.xlsx")},
                    content_type="multipart/form-data")
    assert "Ничего не загружено" in text_of(page) and "«не дата» не является датой" in text_of(page)
    assert re.search(r"<td class=\"num\">2</td>", page.get_data(as_text=True))


def test_oversized_upload_refused_in_russian(web, tree, session_factory):
    web.login("chair_a")
    path = f"/registry/org/{tree.primary_a}/import"
    big = b"a;b\n" * (300 * 1024 // 4)
    page = web.post(path, token_from=path, data={"file": (io.BytesIO(big), "big.csv")},
                    content_type="multipart/form-data")
    assert page.status_code == 413 and "слишком большой" in text_of(page)


def test_export_is_xlsx_and_audited(web, tree, session_factory):
    from openpyxl import load_workbook

    web.login("chair_a")
    response = web.get(f"/registry/org/{tree.primary_a}/export.xlsx")
    assert response.status_code == 200
    rows = list(load_workbook(io.BytesIO(response.data)).active.iter_rows(values_only=True))
    assert rows[0][0] == "Фамилия" and {r[0] for r in rows[1:]} == {"Иванов", "Щёлокова"}
    with session_factory() as s:
        assert s.scalar(select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "member.export")) == 1


def test_no_personal_data_in_urls(web, tree, make_uow, system):
    """Addresses end up in server logs, browser history and Referer headers: no link, form
    address or GET form on the pages a chairperson uses carries a name, a birth date or a card
    number, also after a search."""
    from unioncard.issuer import services as cards
    from unioncard.registry import services as registry

    with make_uow() as uow:
        registry.give_consent(uow, system, tree.members["ivanov"], "processing", date(2020, 1, 1), "paper")
        card = cards.order_cards(uow, tree.actors["chair_a"], [tree.members["ivanov"]]).ordered[0]
        cards.approve(uow, tree.actors["region_a"], [card.id])
        uow.commit()
        number = card.number
    web.login("chair_a")
    members = f"/registry/org/{tree.primary_a}/members"
    web.post(members, token_from=members, data={"q": "Иванов"})
    web.post(f"/cards/org/{tree.primary_a}", token_from=members, data={"q": "Иванов"})
    pages = [members, f"/cards/org/{tree.primary_a}", f"/registry/member/{tree.members['ivanov']}",
             f"/cards/{card.id}", f"/registry/org/{tree.primary_a}"]
    checked = 0
    for path in pages:
        response = web.get(path)
        assert response.status_code == 200, path
        html = response.get_data(as_text=True)
        if "/registry/org/" not in path or path == members:
            assert "Иванов" in html, path  # the data is on the page…
        for address in re.findall(r'(?:href|action|src)="([^"]+)"', html):
            decoded = unquote(address)
            assert "Иванов" not in decoded and "1980" not in decoded and number not in decoded, (path, address)
            checked += 1
        for form in re.findall(r'<form[^>]*method="get".*?</form>', html, re.I | re.S):  # …nor sent by GET forms
            assert set(re.findall(r'name="([^"]+)"', form)) <= {"code", "on", "page"}, (path, form)
    assert checked > 20


def test_security_headers_and_cookies_behind_https(database_url, tmp_path, tree):
    from unioncard.checkin_web import create_app
    from unioncard.config import Settings

    app = create_app(Settings(instance_dir=tmp_path / "i", database_url=database_url, secret_key="t",
                              secure_cookies=True))
    client = app.test_client()
    https = {"base_url": "https://localhost"}  # a Secure cookie is only sent back over HTTPS
    token = re.search(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"',
                      client.get("/login", **https).get_data(as_text=True)).group(1)
    response = client.post("/login", data={"csrf_token": token, "login": "chair_a", "password": PASSWORD},
                           headers={"Referer": "https://localhost/login"}, **https)  # CSRF checks it on HTTPS
    assert response.status_code == 302
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith("__Host-unioncard_session=") and "Secure" in cookie and "HttpOnly" in cookie \
        and "SameSite=Lax" in cookie and "Path=/" in cookie and "Domain" not in cookie
    page = client.get("/login", **https)
    assert page.headers["Strict-Transport-Security"].startswith("max-age=")
    assert "camera=(self)" in page.headers["Permissions-Policy"]
    assert page.headers["Cache-Control"] == "no-store"
    assert page.headers["Cross-Origin-Opener-Policy"] == "same-origin"
    app.extensions["unioncard"].engine.dispose()


def test_desk_api_errors_are_json_too(web):
    response = web.get("/station-api/v1/no-such-thing")
    assert response.status_code == 404 and response.get_json()["error"]["code"] == "not_found"
    response = web.client.delete("/station-api/v1/hello")
    assert response.status_code == 405 and response.get_json()["error"]["code"] == "method_not_allowed"
