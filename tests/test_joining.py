"""«Приём в Профсоюз» online: an applicant finds their organisation, reads the versioned consent
text, confirms their address with the code from the real SMTP server; the chairperson accepts
(electronic consents naming the version) or refuses with a reason; the applicant is told either
way; a person already registered is a transfer question, never a second record."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import func, select

from tests.mail_support import SmtpServer
from unioncard.db import UnitOfWork
from unioncard.errors import Conflict, NotFound, RateLimited, ValidationError
from unioncard.members import consent_text
from unioncard.members import joining
from unioncard.members.models import MembershipApplication
from unioncard.messaging import services as outbox
from unioncard.messaging.senders import open_sender
from unioncard.registry import services as registry
from unioncard.registry.models import AuditEntry, Membership, Person

SECRET = "test-secret"


def application(tree, **changes):
    values = dict(organisation_id=tree.primary_a, surname="Новикова", given_name="Ольга", patronymic="Игоревна",
                  birth_date=date(1994, 4, 12), sex="female", category="working", contact="novikova@school1.example",
                  consent_version=consent_text.VERSION, processing=True, partner_transfer=True, messaging=False)
    values.update(changes)
    return joining.Application(**values)


def deliver(session_factory, smtp):
    return outbox.deliver_due(lambda: UnitOfWork(session_factory), {"email": lambda: open_sender(smtp.url)})


def test_apply_confirm_accept_registers_with_electronic_consents_and_tells_the_applicant(
        make_uow, session_factory, tree):
    with SmtpServer() as smtp:
        with make_uow() as uow:
            application_id = joining.apply(uow, application(tree), SECRET)
        deliver(session_factory, smtp)
        code = smtp.mailbox.code_for("novikova@school1.example")
        # Unconfirmed: not in the queue.
        with session_factory() as s:
            assert joining.list_waiting(s, tree.actors["chair_a"], tree.primary_a) == []
        with make_uow() as uow:
            joining.confirm(uow, application_id, code, SECRET)
        with session_factory() as s:
            waiting = joining.list_waiting(s, tree.actors["chair_a"], tree.primary_a)
            assert [a.surname for a in waiting] == ["Новикова"]
            # Another organisation's chairperson sees nothing of it.
            assert joining.list_waiting(s, tree.actors["chair_b"], tree.primary_b) == []
            with pytest.raises(NotFound):
                joining.get_application(s, tree.actors["chair_b"], application_id)
        with make_uow() as uow:
            membership = joining.accept(uow, tree.actors["chair_a"], application_id)
        deliver(session_factory, smtp)
        told = smtp.mailbox.to("novikova@school1.example")[-1]
        assert "Профсоюз" in told["Subject"] and "ППО школы № 1 г. Сочи" in told.get_body(("plain",)).get_content()
    with session_factory() as s:
        membership = s.get(Membership, membership.id)
        assert membership.organisation_id == tree.primary_a and membership.person.email == "novikova@school1.example"
        consents = {c.section: c for c in registry.consent_history(s, membership.person_id)}
        assert set(consents) == {"processing", "partner_transfer"}  # section 3 was not chosen
        assert all(c.form == "electronic" for c in consents.values())
        entry = s.scalars(select(AuditEntry).where(AuditEntry.action == "application.accept")).one()
        assert entry.details["consent_version"] == consent_text.VERSION and entry.details["confirmed_at"]
    with make_uow() as uow, pytest.raises(Conflict):
        joining.accept(uow, tree.actors["chair_a"], application_id)


def test_refusal_needs_a_reason_and_the_applicant_hears_it(make_uow, session_factory, tree):
    with SmtpServer() as smtp:
        with make_uow() as uow:
            application_id = joining.apply(uow, application(tree), SECRET)
        deliver(session_factory, smtp)
        with make_uow() as uow:
            joining.confirm(uow, application_id, smtp.mailbox.code_for("novikova@school1.example"), SECRET)
        for invisible in ("   ", "\u200b", "\u200b\u2060\ufeff", "\u202e "):
            with make_uow() as uow, pytest.raises(ValidationError) as no_reason:
                joining.refuse(uow, tree.actors["chair_a"], application_id, invisible)
            assert no_reason.value.code == "refusal_reason_required"
        with make_uow() as uow:
            joining.refuse(uow, tree.actors["chair_a"], application_id, "не работает в школе № 1")
        deliver(session_factory, smtp)
        text = smtp.mailbox.to("novikova@school1.example")[-1].get_body(("plain",)).get_content()
        assert "не работает в школе № 1" in text
    with session_factory() as s:
        assert s.scalar(select(func.count()).select_from(Person).where(Person.surname == "Новикова")) == 0


def test_a_person_already_registered_is_a_transfer_question(make_uow, session_factory, tree):
    # Petrov is on the register of school № 2 and applies to school № 1.
    with SmtpServer() as smtp:
        with make_uow() as uow:
            application_id = joining.apply(uow, application(
                tree, surname="Петров", given_name="Пётр", patronymic=None, birth_date=date(1990, 3, 4), sex="male",
                contact="petrov@mail.example"), SECRET)
        deliver(session_factory, smtp)
        with make_uow() as uow:
            joining.confirm(uow, application_id, smtp.mailbox.code_for("petrov@mail.example"), SECRET)
    with session_factory() as s:
        waiting = joining.list_waiting(s, tree.actors["chair_a"], tree.primary_a)[0]
        question = joining.transfer_question(s, tree.actors["chair_a"], waiting)
        # Petrov's organisation is outside chair_a's part of the union: it is not named to her.
        assert question.same_full_name and question.organisation is None
        assert joining.transfer_question(s, tree.actors["region_a"], waiting).organisation == "ППО школы № 2 г. Сочи"
    with make_uow() as uow, pytest.raises(Conflict) as transfer:
        joining.accept(uow, tree.actors["chair_a"], application_id)
    assert transfer.value.code == "application_is_transfer"
    with make_uow() as uow, pytest.raises(Conflict):
        joining.accept(uow, tree.actors["chair_a"], application_id, different_person=True)  # same full name
    with session_factory() as s:
        assert s.scalar(select(func.count()).select_from(Person).where(Person.surname == "Петров")) == 1


def test_a_namesake_without_the_patronymic_is_a_question_not_a_second_record(make_uow, session_factory, tree):
    # Shchyolokova Anna Petrovna (1975-01-02) is on school № 1's register; she applies again online
    # leaving out her patronymic, or spelling it otherwise.
    ids = []
    with SmtpServer() as smtp:
        for patronymic, contact in ((None, "anna1@mail.example"), ("Петр-овна", "anna2@mail.example")):
            with make_uow() as uow:
                ids.append(joining.apply(uow, application(tree, organisation_id=tree.primary_a2, surname="ЩЕЛОКОВА",
                                                          given_name="анна", patronymic=patronymic,
                                                          birth_date=date(1975, 1, 2), contact=contact), SECRET))
            deliver(session_factory, smtp)
            with make_uow() as uow:
                joining.confirm(uow, ids[-1], smtp.mailbox.code_for(contact), SECRET)
    with session_factory() as s:
        for application_id in ids:
            question = joining.transfer_question(s, tree.actors["region_a"], s.get(MembershipApplication,
                                                                                   application_id))
            assert question is not None and not question.same_full_name
    with make_uow() as uow, pytest.raises(Conflict):
        joining.accept(uow, tree.actors["chair_a2"], ids[0])
    # The chairperson says it is someone else: accepted, and the audit keeps that she said so.
    with make_uow() as uow:
        joining.accept(uow, tree.actors["chair_a2"], ids[0], different_person=True)
    with session_factory() as s:
        entry = s.scalars(select(AuditEntry).where(AuditEntry.action == "application.accept")).one()
        assert entry.details["different_person"] is True


def test_bad_applications_are_refused_by_name(make_uow, session_factory, tree):
    cases = [
        (dict(consent_version="2020-01"), "consent_version_changed"),
        (dict(processing=False), "consent_processing_required"),
        (dict(organisation_id=987654), "organisation_not_found"),
        (dict(organisation_id=tree.region_a), "organisation_not_found"),
        (dict(contact="не адрес"), "contact_invalid"),
        (dict(category="boss"), "category_invalid"),
        (dict(surname="Н" * 300), None),
        (dict(birth_date=date(2999, 1, 1)), None),
        (dict(sex="other"), "sex_invalid"),
        (dict(contact="novikova@school1.example."), "contact_invalid"),
        (dict(contact="novikova@school1..example"), "contact_invalid"),
    ]
    for changes, code in cases:
        with make_uow() as uow, pytest.raises((ValidationError, NotFound)) as refused:
            joining.apply(uow, application(tree, **changes), SECRET)
        if code:
            assert refused.value.code == code, changes
    with session_factory() as s:
        assert s.scalar(select(func.count()).select_from(MembershipApplication)) == 0
    # A flood from one contact stops after three a day; a forged or reused code never confirms.
    ids = []
    for _ in range(3):
        with make_uow() as uow:
            ids.append(joining.apply(uow, application(tree, contact="flood@example.org"), SECRET))
    with make_uow() as uow, pytest.raises(RateLimited):
        joining.apply(uow, application(tree, contact="flood@example.org"), SECRET)
    for forged in ("000000", "", "１２３４５６", "1" * 50):
        with make_uow() as uow, pytest.raises(ValidationError):
            joining.confirm(uow, ids[0], forged, SECRET)
    with make_uow() as uow, pytest.raises(ValidationError):
        joining.confirm(uow, 987654, "123456", SECRET)


def test_joining_by_web_then_the_chairperson_decides(app, web, make_uow, session_factory, tree):
    client = app.test_client()
    start = client.get("/join", query_string={"region": tree.region_a, "q": "школы"}).get_data(as_text=True)
    assert "ППО школы № 1 г. Сочи" in start and "Чувашского" not in start
    page = client.get(f"/join/{tree.primary_a}").get_data(as_text=True)
    assert consent_text.SECTIONS["partner_transfer"][:40] in page and consent_text.VERSION in page
    token = page.split('name="csrf_token" value="')[1].split('"')[0]
    form = {"csrf_token": token, "surname": "Новикова", "given_name": "Ольга", "patronymic": "",
            "birth_date": "1994-04-12", "sex": "female", "category": "working", "contact": "novikova@school1.example",
            "consent_version": consent_text.VERSION, "processing": "yes", "messaging": "yes"}
    old = client.post(f"/join/{tree.primary_a}", data={**form, "consent_version": "2020-01"})
    assert old.status_code == 400 and "изменился" in old.get_data(as_text=True)
    with SmtpServer() as smtp:
        app.extensions["unioncard"].settings = app.extensions["unioncard"].settings.with_overrides(mail_channel=smtp.url)
        sent = client.post(f"/join/{tree.primary_a}", data=form)
        assert sent.status_code == 302 and sent.headers["Location"].endswith("/join/confirm")
        deliver(session_factory, smtp)
        done = client.post("/join/confirm", data={"csrf_token": token,
                                                   "code": smtp.mailbox.code_for("novikova@school1.example")})
        assert done.status_code == 200 and "ППО школы № 1 г. Сочи" in done.get_data(as_text=True)
    assert client.get("/join/987654").status_code == 404
    web.login("chair_a")
    queue = web.get(f"/registry/org/{tree.primary_a}/applications").get_data(as_text=True)
    assert "Новикова Ольга" in queue
    with session_factory() as s:
        application_id = s.scalar(select(MembershipApplication.id))
    accepted = web.post(f"/applications/{application_id}/accept", token_from=f"/registry/org/{tree.primary_a}/applications")
    assert accepted.status_code == 302
    with session_factory() as s:
        assert s.scalar(select(func.count()).select_from(Person).where(Person.surname == "Новикова")) == 1
    # Another chairperson: the queue and the decision are out of reach.
    web.client.post("/logout", data={"csrf_token": web.token("/")})
    web.login("chair_b")
    assert web.get(f"/registry/org/{tree.primary_a}/applications").status_code == 404
    assert web.post(f"/applications/{application_id}/refuse", data={"reason": "x"},
                    token_from="/").status_code == 404


@pytest.mark.browser
def test_an_applicant_joins_on_a_phone_and_the_chairperson_accepts(app, live_server, browser, make_uow,
                                                                   session_factory, tree):
    from tests.support import PASSWORD

    phone = {"width": 390, "height": 844}
    fits = "() => document.documentElement.scrollWidth <= window.innerWidth + 1"
    with SmtpServer() as smtp:
        context = browser.new_context(viewport=phone, is_mobile=True, locale="ru-RU")
        page = context.new_page()
        page.goto(f"{live_server}/login")
        page.get_by_role("link", name="Вступить в Профсоюз").click()
        page.select_option("#region", label="Краснодарская краевая организация")
        page.fill("#q", "школы № 1")
        page.get_by_role("button", name="Найти").click()
        # The search answers with a new page: measure it once it is there, not mid-navigation.
        found = page.get_by_role("link", name="ППО школы № 1 г. Сочи")
        found.wait_for()
        assert page.evaluate(fits)
        found.click()
        page.fill("#surname", "Новикова")
        page.fill("#given_name", "Ольга")
        page.fill("#birth_date", "1994-04-12")
        page.select_option("#category", "working")
        page.fill("#contact", "novikova@school1.example")
        page.check("#consent-processing input[type=checkbox]")
        page.check("#consent-messaging input[type=checkbox]")
        assert page.evaluate(fits)
        page.get_by_role("button", name="Отправить заявление").click()
        assert page.url.endswith("/join/confirm")
        deliver(session_factory, smtp)
        page.fill("#code", smtp.mailbox.code_for("novikova@school1.example"))
        page.get_by_role("button", name="Подтвердить").click()
        assert "ППО школы № 1 г. Сочи" in page.locator("main").inner_text() and page.evaluate(fits)
        context.close()
        # The chairperson, on her phone, finds the application and accepts it.
        context = browser.new_context(viewport=phone, is_mobile=True, locale="ru-RU")
        page = context.new_page()
        page.on("dialog", lambda dialog: dialog.accept())
        page.goto(f"{live_server}/login")
        page.fill("#login", "chair_a")
        page.fill("#password", PASSWORD)
        page.click("button[type=submit].primary")
        page.goto(f"{live_server}/registry/org/{tree.primary_a}")
        page.get_by_role("link", name="Заявления о вступлении").click()
        card = page.locator("section.card", has_text="Новикова Ольга")
        shown = card.inner_text()
        assert "3. SMS" in shown and "2. Передача" not in shown and page.evaluate(fits)
        card.get_by_role("button", name="Принять").click()
        assert "на учёте" in page.locator(".flash").first.inner_text()
        context.close()
        deliver(session_factory, smtp)
        assert "Добро пожаловать" in smtp.mailbox.to("novikova@school1.example")[-1].get_body(("plain",)).get_content()
    with session_factory() as s:
        person = s.scalars(select(Person).where(Person.surname == "Новикова")).one()
        assert registry.has_consent(s, person.id, "messaging") and not registry.has_consent(s, person.id,
                                                                                             "partner_transfer")


HOSTILE = ["", " ", "0", "-1", "9" * 40, "١٢٣", "１２３４５６", "<script>alert(1)</script>", "' OR 1=1 --", "ё" * 500,
           "\u200b", "\u202e", "a@b", "@", "+7", "2026-02-30", "1900-01-01", "9999-12-31", "yes", "other"]


def test_the_public_doors_answer_hostile_values_without_a_5xx(app, tree, session_factory):
    """The join form and its code, the members' sign-in and code, and the unsubscribe link, with
    values of every odd shape: a named refusal (4xx or the form again), never a 5xx."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    for limiter in app.extensions["limiter"]:
        limiter.enabled = False  # the per-address limits would answer 429 before the forms are reached
    client = app.test_client()
    token = client.get(f"/join/{tree.primary_a}").get_data(as_text=True).split('name="csrf_token" value="')[1]
    token = token.split('"')[0]
    values = st.one_of(st.sampled_from(HOSTILE), st.text(max_size=300).filter(lambda s: "\x00" not in s))
    fields = ("surname", "given_name", "patronymic", "birth_date", "sex", "category", "contact", "consent_version",
              "processing", "partner_transfer", "messaging")

    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.fixed_dictionaries({f: values for f in fields}), values, values)
    def probe(form, code, link):
        answers = [client.post(f"/join/{tree.primary_a}", data={"csrf_token": token, **form}),
                   client.post("/join/confirm", data={"csrf_token": token, "code": code}),
                   client.post("/me/", data={"csrf_token": token, "contact": form["contact"]}),
                   client.post("/me/code", data={"csrf_token": token, "code": code}),
                   client.get("/join", query_string={"region": form["sex"], "q": form["surname"]}),
                   client.post(f"/u/{link}"), client.get(f"/u/{link}")]
        for answer in answers:
            assert answer.status_code < 500, (answer.request.path, answer.status_code)

    probe()
