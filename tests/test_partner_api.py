"""Partner verification API: answers, the same answer for unknown numbers and wrong names, keys,
rate limits (memory and Redis), back-off on wrong keys and passwords, QR credentials, errors,
the query log, and the administrator's key pages."""

from __future__ import annotations

import logging
from datetime import date, timedelta

import pytest
from sqlalchemy import func, select

from tests.support import WebClient, union_keys
from tests.test_web import text_of
from unioncard.clock import today as union_today
from unioncard.issuer import cardnumber
from unioncard.issuer import services as cards
from unioncard.issuer.domain import CardStatus
from unioncard.issuer.models import Card
from unioncard.partner import services as partners
from unioncard.partner.domain import CardFacts, NameQuery, Outcome, PartnerKind, judge, normalise_name
from unioncard.partner.models import PartnerKey, PartnerQuery
from unioncard.registry import services as registry

VERIFY = "/api/v1/partner/verify"
VERIFY_QR = "/api/v1/partner/verify-credential"


# --- rules in plain Python ------------------------------------------------------------------------

@pytest.mark.parametrize("given, stored", [
    ("ЩЕЛОКОВА", "Щёлокова"), ("  щёлокова ", "Щёлокова"), ("римский–корсаков", "Римский-Корсаков"),
    ("Римский - Корсаков", "Римский-Корсаков"), ("РИМСКИЙ\u2011КОРСАКОВ", "Римский-Корсаков"),
    ("Ван  дер   Берг", "ван дер Берг"), ("Ёлкин", "Елкин"),
])
def test_names_match_ignoring_case_yo_spaces_and_hyphen_kinds(given, stored):
    assert normalise_name(given) == normalise_name(stored)


@pytest.mark.parametrize("given, stored", [("Щелков", "Щёлокова"), ("Римский Корсаков", "Римский-Корсаков"),
                                           ("Иванова", "Иванов"), ("", "Иванов")])
def test_different_names_do_not_match(given, stored):
    assert normalise_name(given) != normalise_name(stored)


def test_the_rule_for_each_cause():
    facts = CardFacts(CardStatus.ISSUED, "Иванов", "Иван", "Иванович", True, False)
    name = NameQuery("иванов")
    assert judge(facts, PartnerKind.GENERAL, name) == Outcome.VALID
    assert judge(None, PartnerKind.GENERAL, name) == Outcome.UNKNOWN_NUMBER
    assert judge(facts, PartnerKind.GENERAL, NameQuery("Петров")) == Outcome.NAME_MISMATCH
    assert judge(facts, PartnerKind.GENERAL, NameQuery("Иванов", "Пётр")) == Outcome.NAME_MISMATCH
    assert judge(facts, PartnerKind.GENERAL, NameQuery("Иванов", "иван", "ИВАНОВИЧ")) == Outcome.VALID
    assert judge(facts, PartnerKind.BONUS_PROGRAMME, name) == Outcome.NO_PARTNER_CONSENT
    with_consent = CardFacts(CardStatus.ISSUED, "Иванов", "Иван", None, True, True)
    assert judge(with_consent, PartnerKind.BONUS_PROGRAMME, name) == Outcome.VALID
    assert judge(with_consent, PartnerKind.GENERAL, NameQuery("Иванов", patronymic="Иванович")) \
        == Outcome.NAME_MISMATCH
    for status in set(CardStatus) - {CardStatus.ISSUED}:
        assert judge(CardFacts(status, "Иванов", "Иван", None, True, True), PartnerKind.GENERAL, name) \
            == Outcome.CARD_NOT_ISSUED
    assert judge(CardFacts(CardStatus.ISSUED, "Иванов", "Иван", None, False, True), PartnerKind.GENERAL, name) \
        == Outcome.MEMBERSHIP_ENDED


# --- fixtures ---------------------------------------------------------------------------------------

def issue_virtual(make_uow, tree, system, *keys) -> dict[str, tuple[int, str]]:
    """Issued («Выдан») virtual cards for the named members: {key: (card id, number)}."""
    found = {}
    with make_uow() as uow:
        for key in keys:
            registry.give_consent(uow, system, tree.members[key], "processing", date(2020, 1, 1), "paper")
        uow.commit()
    for key in keys:
        chair = {"ivanov": "chair_a", "shchyolokova": "chair_a", "petrov": "chair_a2", "sidorova": "chair_b"}[key]
        region = "region_b" if key == "sidorova" else "region_a"
        with make_uow() as uow:
            card = cards.order_cards(uow, tree.actors[chair], [tree.members[key]], "virtual").ordered[0]
            cards.approve(uow, tree.actors[region], [card.id])
            cards.advance(uow, tree.actors[chair], [card.id], CardStatus.ISSUED)
            uow.commit()
            found[key] = (card.id, card.number)
    return found


def new_key(make_uow, tree, name="Кредитный кооператив", kind="general", per_minute=1000) -> str:
    with make_uow() as uow:
        _key, text = partners.create_key(uow.session, tree.actors["admin"], name, kind, per_minute)
        uow.commit()
    return text


def ask(client, key, number, surname, **more):
    return client.post(VERIFY, json={"card_number": number, "surname": surname, **more},
                       headers={"Authorization": f"Bearer {key}"} if key else {})


@pytest.fixture
def issued(make_uow, tree, system):
    return issue_virtual(make_uow, tree, system, "ivanov", "shchyolokova")


@pytest.fixture
def client(app):
    return app.test_client()


# --- answers ----------------------------------------------------------------------------------------

def test_a_valid_card_of_that_person(client, issued, make_uow, tree):
    key = new_key(make_uow, tree)
    number = issued["shchyolokova"][1]
    for surname in ("Щёлокова", "ЩЕЛОКОВА", "  щелокова  "):
        response = ask(client, key, cardnumber.format(number), surname)
        assert response.status_code == 200, response.get_json()
        body = response.get_json()
        assert body["valid"] is True and set(body) == {"valid", "checked_at", "reference"}
    assert ask(client, key, number, "Щёлокова", given_name="анна", patronymic="Петровна").get_json()["valid"] is True
    assert ask(client, key, number, "Щёлокова", given_name="Мария").get_json()["valid"] is False
    assert ask(client, key, number, "Иванов").get_json()["valid"] is False
    # Nothing personal in any answer.
    text = ask(client, key, number, "Щёлокова").get_data(as_text=True)
    assert "Анна" not in text and "Щёлокова" not in text and number not in text and "Сочи" not in text


def test_unknown_numbers_and_wrong_surnames_get_the_same_answer(client, issued, make_uow, tree, session_factory):
    key = new_key(make_uow, tree)
    real = issued["ivanov"][1]
    unknown = real[:-4] + "999"
    unknown += cardnumber.calc_check_digit(unknown)
    wrong_name = ask(client, key, real, "Петров")
    no_card = ask(client, key, unknown, "Иванов")
    assert wrong_name.status_code == no_card.status_code == 200
    a, b = wrong_name.get_json(), no_card.get_json()
    assert a["valid"] is b["valid"] is False
    assert set(a) == set(b) and len(wrong_name.data) == len(no_card.data)
    assert sorted(wrong_name.headers.keys()) == sorted(no_card.headers.keys())
    # The union's log tells them apart (for spotting someone trying numbers); the partner cannot.
    with session_factory() as s:
        outcomes = {q.reference: (q.outcome, q.card_id) for q in s.scalars(select(PartnerQuery))}
    assert outcomes[a["reference"]] == (Outcome.NAME_MISMATCH, None)
    assert outcomes[b["reference"]] == (Outcome.UNKNOWN_NUMBER, None)


def test_a_bad_check_digit_is_answered_without_the_database(client, issued, make_uow, tree, app, session_factory):
    key = new_key(make_uow, tree)
    number = issued["ivanov"][1]
    assert ask(client, key, number, "Иванов").status_code == 200  # the key is now known to this process
    runtime = app.extensions["unioncard"]
    real_factory = runtime.session_factory

    def no_database():
        raise AssertionError("the database was touched")

    runtime.session_factory = no_database
    try:
        bad = number[:-1] + str((int(number[-1]) + 1) % 10)
        response = ask(client, key, bad, "Иванов")
        assert response.status_code == 422
        assert response.get_json()["error"]["code"] == "card_number_checksum"
        assert "контрольн" in response.get_json()["error"]["message"].lower()
        response = ask(client, key, "1234", "Иванов")
        assert response.get_json()["error"]["code"] in ("card_number_length", "card_number_format")
    finally:
        runtime.session_factory = real_factory
    with session_factory() as s:
        assert s.scalar(select(func.count()).select_from(PartnerQuery)) == 1


def test_cards_that_are_not_valid_now(client, issued, make_uow, tree, system):
    key = new_key(make_uow, tree)
    number = issued["ivanov"][1]
    assert ask(client, key, number, "Иванов").get_json()["valid"] is True
    with make_uow() as uow:
        cards.report_loss(uow, tree.actors["chair_a"], issued["ivanov"][0], CardStatus.LOST)
        uow.commit()
    assert ask(client, key, number, "Иванов").get_json()["valid"] is False
    other = issued["shchyolokova"][1]
    with make_uow() as uow:
        registry.deregister_member(uow, system, tree.members["shchyolokova"], union_today(), "own_wish")
        uow.commit()
    assert ask(client, key, other, "Щёлокова").get_json()["valid"] is False


def test_a_bonus_programme_partner_needs_consent_section_2(client, issued, make_uow, tree, system):
    bonus = new_key(make_uow, tree, "Бонусная программа", "bonus_programme")
    general = new_key(make_uow, tree)
    number = issued["ivanov"][1]
    assert ask(client, bonus, number, "Иванов").get_json()["valid"] is False
    assert ask(client, general, number, "Иванов").get_json()["valid"] is True
    with make_uow() as uow:
        registry.give_consent(uow, system, tree.members["ivanov"], "partner_transfer", union_today(), "electronic")
        uow.commit()
    assert ask(client, bonus, number, "Иванов").get_json()["valid"] is True
    with make_uow() as uow:
        registry.withdraw_consent(uow, system, tree.members["ivanov"], "partner_transfer", union_today())
        uow.commit()
    assert ask(client, bonus, number, "Иванов").get_json()["valid"] is False
    assert ask(client, general, number, "Иванов").get_json()["valid"] is True


# --- keys, limits, back-off ---------------------------------------------------------------------------

def test_keys_are_stored_hashed_and_wrong_or_revoked_keys_are_refused(client, issued, make_uow, tree, app,
                                                                      session_factory):
    key = new_key(make_uow, tree)
    number = issued["ivanov"][1]
    with session_factory() as s:
        stored = s.scalars(select(PartnerKey)).one()
        assert key not in (stored.key_hash, stored.key_prefix) and stored.key_hash == partners.tokens.token_hash(key)
    for presented in (None, "ucp_wrong", key + "x", key.upper()):
        response = ask(client, presented, number, "Иванов")
        assert response.status_code == 401
        assert response.get_json()["error"]["code"] == "api_key_invalid"
        assert response.headers["WWW-Authenticate"] == "Bearer"
    assert ask(client, key, number, "Иванов").status_code == 200
    web = WebClient(app)
    web.login("admin")
    page = web.post(f"/partners/{stored.id}/revoke", token_from="/partners/", follow_redirects=True)
    assert page.status_code == 200 and "отозван" in text_of(page)
    assert ask(client, key, number, "Иванов").status_code == 401  # at once, in this process


def _limited_app(database_url, tmp_path, **settings):
    from unioncard.checkin_web import create_app
    from unioncard.config import Settings

    return create_app(Settings(instance_dir=tmp_path / "instance", database_url=database_url, secret_key="t",
                               **settings))


@pytest.mark.parametrize("storage", ["memory", "redis"])
def test_each_key_has_its_own_rate_limit(storage, database_url, tmp_path, issued, make_uow, tree):
    if storage == "redis":
        import redis
        import secrets

        database = 15
        redis.Redis(host="127.0.0.1", port=6379, db=database).ping()  # Redis must run: a failure, not a skip
        uri = f"redis://127.0.0.1:6379/{database}"
        name = "Партнёр " + secrets.token_hex(4)  # keys are per key id+hash; a fresh key each run
    else:
        uri, name = "memory://", "Партнёр"
    app = _limited_app(database_url, tmp_path, rate_limit_storage=uri)
    client = app.test_client()
    slow = new_key(make_uow, tree, name, per_minute=5)
    other = new_key(make_uow, tree, name + " 2", per_minute=1000)
    number = issued["ivanov"][1]
    answers = [ask(client, slow, number, "Иванов").status_code for _ in range(6)]
    assert answers == [200] * 5 + [429]
    refused = ask(client, slow, number, "Иванов")
    assert refused.get_json()["error"]["code"] == "rate_limited"
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert ask(client, other, number, "Иванов").status_code == 200
    app.extensions["unioncard"].engine.dispose()


def test_limits_hold_in_memory_when_redis_is_away(database_url, tmp_path, issued, make_uow, tree):
    """Redis down (nothing listens on port 1): queries are still answered, and the limits are
    counted in the process's memory meanwhile rather than not at all."""
    app = _limited_app(database_url, tmp_path, rate_limit_storage="redis://127.0.0.1:1/0")
    client = app.test_client()
    key = new_key(make_uow, tree, per_minute=3)
    number = issued["ivanov"][1]
    assert [ask(client, key, number, "Иванов").status_code for _ in range(4)] == [200, 200, 200, 429]
    app.extensions["unioncard"].engine.dispose()


def test_wrong_keys_make_the_address_wait(database_url, tmp_path, issued, make_uow, tree):
    app = _limited_app(database_url, tmp_path, api_key_failures_per_address="3 per 10 minutes")
    client = app.test_client()
    key = new_key(make_uow, tree)
    number = issued["ivanov"][1]
    assert [ask(client, f"ucp_guess{i}", number, "Иванов").status_code for i in range(4)] == [401, 401, 401, 429]
    # The guessing client waits; a partner with a good key at the same address (one NAT) does not.
    assert ask(client, "ucp_guess9", number, "Иванов").status_code == 429
    assert ask(client, key, number, "Иванов").status_code == 200
    other = client.post(VERIFY, json={"card_number": number, "surname": "Иванов"},
                        headers={"Authorization": f"Bearer {key}"}, environ_base={"REMOTE_ADDR": "10.1.2.3"})
    assert other.status_code == 200
    app.extensions["unioncard"].engine.dispose()


def test_failed_logins_make_the_address_wait(database_url, tmp_path, tree):
    app = _limited_app(database_url, tmp_path, login_failures_per_address="4 per 10 minutes")
    web = WebClient(app)
    # Different logins, so the per-account lockout (5 failures) does not come into it.
    statuses = [web.login(login, "wrong password").status_code for login in ("admin", "chair_a", "region_a", "x", "y")]
    assert statuses == [401, 401, 401, 401, 429]
    page = web.login("admin")  # the right password, from the same address: still waits
    assert page.status_code == 429 and "Слишком много" in text_of(page)
    assert int(page.headers["Retry-After"]) > 0
    app.extensions["unioncard"].engine.dispose()


# --- QR credentials -------------------------------------------------------------------------------------

def test_verify_a_card_by_its_qr_code(client, issued, make_uow, tree, tmp_path):
    from unioncard.hsm import ceremony
    from unioncard.issuer import credential

    key = new_key(make_uow, tree)
    headers = {"Authorization": f"Bearer {key}"}
    assert client.post(VERIFY_QR, json={"credential": "UC1:ABC"}, headers=headers).status_code == 422
    stores = union_keys(tmp_path)
    number = issued["ivanov"][1]
    signed = credential.issue(stores.operational, number, "Иванов", "Иван", "Иванович", "23", union_today(), "virtual")
    no_trust = client.post(VERIFY_QR, json={"credential": signed.qr_text}, headers=headers)
    assert no_trust.status_code == 503 and no_trust.get_json()["error"]["code"] == "trust_bundle_missing"
    with make_uow() as uow:
        ceremony.export_trust(uow, tree.actors["admin"], stores, timedelta(days=30))
        uow.commit()
    client.application.extensions["unioncard_partner_trust"].__init__()  # forget the "no bundle" answer
    answer = client.post(VERIFY_QR, json={"credential": signed.qr_text}, headers=headers)
    assert answer.status_code == 200 and answer.get_json()["valid"] is True
    assert "Иванов" not in answer.get_data(as_text=True)
    # Another name under the same signature: a forgery, not valid.
    forged = credential.Credential(signed.number, "Петров П. П.", signed.region_code, signed.issued_on, signed.kind,
                                   signed.key_id, signed.payload.replace("Иванов И. И.".encode(), "Петров П. П.".encode()),
                                   signed.signature)
    assert forged.payload != signed.payload
    assert client.post(VERIFY_QR, json={"credential": forged.qr_text}, headers=headers).get_json()["valid"] is False
    garbage = client.post(VERIFY_QR, json={"credential": "Здравствуйте"}, headers=headers)
    assert garbage.status_code == 422 and garbage.get_json()["error"]["code"] == "credential_invalid"
    with make_uow() as uow:
        cards.report_loss(uow, tree.actors["chair_a"], issued["ivanov"][0], CardStatus.LOST)
        uow.commit()
    assert client.post(VERIFY_QR, json={"credential": signed.qr_text}, headers=headers).get_json()["valid"] is False


# --- errors, log, pages -------------------------------------------------------------------------------

def test_errors_are_json_with_stable_codes(client, issued, make_uow, tree):
    key = new_key(make_uow, tree)
    headers = {"Authorization": f"Bearer {key}"}
    cases = [
        (client.get(VERIFY, headers=headers), 405, "method_not_allowed"),
        (client.get("/api/v1/partner/nothing", headers=headers), 404, "not_found"),
        (client.post(VERIFY, data="{not json", content_type="application/json", headers=headers), 400, "malformed_json"),
        (client.post(VERIFY, json={"surname": "Иванов"}, headers=headers), 422, "validation_failed"),
        (client.post(VERIFY, json={"card_number": "1", "surname": "x", "extra": 1}, headers=headers), 422,
         "validation_failed"),
        (client.post(VERIFY, json={"card_number": "1" * 16, "surname": "x" * 20000}, headers=headers), 413,
         "payload_too_large"),
    ]
    for response, status, code in cases:
        assert response.status_code == status, (status, response.get_json())
        assert response.is_json and response.get_json()["error"]["code"] == code
        assert response.get_json()["error"]["message"]
    assert cases[0][0].headers["Allow"] == "OPTIONS, POST" or "POST" in cases[0][0].headers["Allow"]
    assert "card_number" in cases[3][0].get_json()["error"]["fields"]["json"]
    # Pages keep their Russian pages.
    page = client.get("/no/such/page")
    assert page.status_code == 404 and not page.is_json and "не найдена" in text_of(page)


def test_every_query_is_logged_without_personal_data(client, issued, make_uow, tree, session_factory, caplog):
    key = new_key(make_uow, tree)
    number = issued["ivanov"][1]
    caplog.set_level(logging.DEBUG)
    references = [ask(client, key, number, surname).get_json()["reference"] for surname in ("Иванов", "Сидоров")]
    ask(client, key, number[:-1] + str((int(number[-1]) + 3) % 10), "Иванов")  # malformed: log line, no row
    with session_factory() as s:
        rows = s.scalars(select(PartnerQuery).order_by(PartnerQuery.id)).all()
    assert [r.reference for r in rows] == references
    assert [(r.outcome, r.method, r.card_id) for r in rows] == [
        (Outcome.VALID, "number", issued["ivanov"][0]), (Outcome.NAME_MISMATCH, "number", None)]
    assert all(r.client_ip == "127.0.0.1" for r in rows)
    logged = caplog.text
    assert "malformed card number" in logged
    assert "Иванов" not in logged and "Сидоров" not in logged and number not in logged and number[:-1] not in logged


def test_the_administrator_makes_and_revokes_keys_on_pages(app, tree, session_factory, issued):
    web = WebClient(app)
    web.login("chair_a")
    for path in ("/partners/", "/partners/1"):
        assert web.get(path).status_code == 404
    web.client.post("/logout", data={"csrf_token": web.token("/")})
    web.login("admin")
    page = web.post("/partners/", token_from="/partners/",
                    data={"partner_name": "Бонусы для учителей", "kind": "bonus_programme", "per_minute": "30"})
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "Бонусы для учителей" in html
    key = html.split('<pre class="token">')[1].split("</pre>")[0]
    assert key.startswith("ucp_")
    listing = text_of(web.get("/partners/"))
    assert "Бонусы для учителей" in listing and key not in listing and key[:12] in listing
    client = app.test_client()
    assert ask(client, key, issued["ivanov"][1], "Иванов").get_json()["valid"] is False  # no section 2
    with session_factory() as s:
        key_id = s.scalars(select(PartnerKey.id)).one()
    detail = text_of(web.get(f"/partners/{key_id}"))
    assert "нет согласия" in detail.lower()
    bad = web.post("/partners/", token_from="/partners/", data={"partner_name": " ", "kind": "general"},
                   follow_redirects=True)
    assert "Укажите" in text_of(bad)
    with session_factory() as s:
        assert s.scalar(select(func.count()).select_from(PartnerKey)) == 1


def test_the_openapi_document_and_its_docs_page(client):
    spec = client.get("/api/v1/openapi.json")
    assert spec.status_code == 200
    document = spec.get_json()
    assert document["openapi"].startswith("3.")
    operations = {(path, method) for path, item in document["paths"].items() for method in item}
    assert operations == {("/api/v1/partner/verify", "post"), ("/api/v1/partner/verify-credential", "post")}
    assert document["components"]["securitySchemes"]["partnerKey"]["scheme"] == "bearer"
    docs = client.get("/api/v1/docs/")
    assert docs.status_code == 200 and b"swagger-ui-bundle.js" in docs.data
    # The page opens in Russian: what the API is for, the key, the two checks, the error codes.
    intro = docs.get_data(as_text=True)
    assert "API проверки профсоюзных билетов для партнёров" in intro and "Authorization: Bearer ucp_" in intro
    assert "персональные данные не возвращаются" in intro
    assert client.get("/api/v1/docs/ui/swagger-ui-bundle.js").status_code == 200
    assert client.get("/api/v1/docs/ui/../../etc/passwd").status_code == 404


def test_keys_from_the_command_line(database_url, tmp_path, monkeypatch, app, issued):
    from click.testing import CliRunner

    from unioncard.cli import main

    monkeypatch.setenv("UNIONCARD_DATABASE_URL", database_url)
    monkeypatch.setenv("UNIONCARD_INSTANCE_DIR", str(tmp_path / "cli"))
    runner = CliRunner()
    made = runner.invoke(main, ["partner", "add-key", "--name", "Кооператив «Учитель»", "--per-minute", "60"])
    assert made.exit_code == 0, made.output
    key = made.output.strip().splitlines()[-1]
    assert key.startswith("ucp_")
    client = app.test_client()
    assert ask(client, key, issued["ivanov"][1], "Иванов").get_json()["valid"] is True
    key_id = made.output.split()[1]
    revoked = runner.invoke(main, ["partner", "revoke-key", key_id])
    assert revoked.exit_code == 0 and "отозван" in revoked.output
    app.extensions["unioncard_partner_keys"].clear()  # another process: its cached key expires in 10 s
    assert ask(client, key, issued["ivanov"][1], "Иванов").status_code == 401
    wrong = runner.invoke(main, ["partner", "add-key", "--name", " ", "--per-minute", "60"])
    assert wrong.exit_code == 2 and "Укажите" in wrong.output
