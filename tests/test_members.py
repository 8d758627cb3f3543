"""Members' own door: a one-time code sent through a real SMTP server (and an HTTP SMS gateway
stand-in), their page with the card, consents they withdraw with effect at once (the partner API
answers false for the card straight away), who read their data, their data to download; the
outbox's retries, back-off and addresses refused for good."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from tests.mail_support import SmsGateway, SmtpServer, code_in_eml
from tests.test_partner_api import ask, issue_virtual, new_key
from unioncard import clock
from unioncard.db import UnitOfWork
from unioncard.errors import RateLimited, ValidationError
from unioncard.members import domain as md
from unioncard.members import services as members
from unioncard.members.models import SignInCode
from unioncard.messaging import domain as msg
from unioncard.messaging import services as outbox
from unioncard.messaging.models import OutboxMessage, UndeliverableAddress
from unioncard.messaging.senders import open_sender
from unioncard.registry import services as registry
from unioncard.registry.models import Membership, Person

SECRET = "test-secret"  # the app fixture's secret key
EMAIL = "ivanov@school1.example"
PHONE = "+79181234567"


@pytest.fixture
def contacts(make_uow, tree):
    """Ivanov has an e-mail address, Shchyolokova a mobile phone on record."""
    with make_uow() as uow:
        uow.session.get(Person, uow.session.get(Membership, tree.members["ivanov"]).person_id).email = EMAIL
        uow.session.get(Person, uow.session.get(Membership, tree.members["shchyolokova"]).person_id).phone = PHONE
        uow.commit()


def deliver(session_factory, mail: str = "file:/nonexistent", sms: str = "file:/nonexistent", **kw):
    return outbox.deliver_due(lambda: UnitOfWork(session_factory),
                              {"email": lambda: open_sender(mail), "sms": lambda: open_sender(sms)}, **kw)


def test_a_code_by_e_mail_through_a_real_smtp_server_signs_the_member_in_once(make_uow, session_factory, tree,
                                                                              contacts, tmp_path):
    with SmtpServer(tls_folder=tmp_path, login=("unioncard", "relay-pass%word")) as smtp:
        with make_uow() as uow:
            members.request_code(uow, "  Ivanov@School1.example ", SECRET)
        run = deliver(session_factory, mail=smtp.url)
        assert (run.sent, run.failed, run.retried) == (1, 0, 0)
        assert len(smtp.mailbox.to(EMAIL)) == 1
        mail = smtp.mailbox.to(EMAIL)[0]
        assert "код" in mail["Subject"].lower()
        code = smtp.mailbox.code_for(EMAIL)
    with pytest.raises(msg.ChannelAddressInvalid):
        msg.parse_channel("smtp://unioncard:пароль@localhost:25")
    with make_uow() as uow:
        principal = members.sign_in(uow, EMAIL, code, SECRET)
    with session_factory() as s:
        assert principal.person_id == s.get(Membership, tree.members["ivanov"]).person_id
    # Used once: the same code again is refused, with the one refusal every bad code gets.
    with make_uow() as uow, pytest.raises(ValidationError) as again:
        members.sign_in(uow, EMAIL, code, SECRET)
    assert again.value.code == "sign_in_code_invalid"


def test_unknown_contacts_get_the_same_answer_and_nothing_is_sent(make_uow, session_factory, contacts):
    for contact in ("nobody@school1.example", "+7 900 000-00-00"):
        with make_uow() as uow:
            assert members.request_code(uow, contact, SECRET) is None
    with session_factory() as s:
        assert s.scalar(select(func.count()).select_from(SignInCode)) == 2  # a row either way
        assert s.scalar(select(func.count()).select_from(OutboxMessage)) == 0
    for contact in ("nobody@school1.example", "not a contact", "", "x@y"):
        with make_uow() as uow, pytest.raises(ValidationError) as refused:
            members.sign_in(uow, contact, "123456", SECRET)
        assert refused.value.code == "sign_in_code_invalid"
    with make_uow() as uow, pytest.raises(ValidationError) as refused:
        members.request_code(uow, "ни почта, ни телефон", SECRET)
    assert refused.value.code == "contact_invalid"


def test_guessing_and_flooding_are_bounded(make_uow, session_factory, contacts, tmp_path):
    with make_uow() as uow:
        members.request_code(uow, EMAIL, SECRET)
    deliver(session_factory, mail=f"file:{tmp_path}")
    code = code_in_eml(tmp_path)
    wrong = f"{(int(code) + 1) % 10 ** 6:06d}"
    for attempt in range(md.ATTEMPTS_PER_CODE):
        with make_uow() as uow, pytest.raises(ValidationError):
            members.sign_in(uow, EMAIL, wrong, SECRET)
    # Five wrong tries spend the code: even the right one no longer opens.
    with make_uow() as uow, pytest.raises(ValidationError):
        members.sign_in(uow, EMAIL, code, SECRET)
    # Forged codes of every shape are refused the same way.
    with make_uow() as uow:
        members.request_code(uow, EMAIL, SECRET)
    for forged in ("", "1", "12345678", "１２３４５６", "12345\x00", "' OR 1=1 --", "9" * 500):
        with make_uow() as uow, pytest.raises(ValidationError):
            members.sign_in(uow, EMAIL, forged, SECRET)
    # A new code makes the older ones stop working; then the contact's window is spent.
    with make_uow() as uow:
        members.request_code(uow, EMAIL, SECRET)
    with make_uow() as uow, pytest.raises(RateLimited) as flooded:
        members.request_code(uow, EMAIL, SECRET)
    assert flooded.value.code == "sign_in_codes_exhausted" and flooded.value.http_status == 429
    with session_factory() as s:
        live = s.scalars(select(SignInCode).where(SignInCode.contact == EMAIL, SignInCode.used_at.is_(None))).all()
        assert len(live) == 1
        # The unknown contact has the same window: the limit says nothing about who is a member.
    with make_uow() as uow:
        for _ in range(md.CODES_PER_CONTACT):
            members.request_code(uow, "stranger@example.org", SECRET)
    with make_uow() as uow, pytest.raises(RateLimited):
        members.request_code(uow, "stranger@example.org", SECRET)


def test_an_expired_code_is_refused(make_uow, session_factory, contacts, tmp_path):
    with make_uow() as uow:
        members.request_code(uow, EMAIL, SECRET)
    deliver(session_factory, mail=f"file:{tmp_path}")
    code = code_in_eml(tmp_path)
    with make_uow() as uow:
        row = uow.session.scalars(select(SignInCode)).one()
        row.expires_at = clock.now() - timedelta(seconds=1)
        uow.commit()
    with make_uow() as uow, pytest.raises(ValidationError):
        members.sign_in(uow, EMAIL, code, SECRET)


def test_an_sms_code_goes_through_the_http_gateway(make_uow, session_factory, tree, contacts):
    with SmsGateway() as gateway:
        with make_uow() as uow:
            members.request_code(uow, "8 (918) 123-45-67", SECRET)
        run = deliver(session_factory, sms=gateway.url)
        assert run.sent == 1 and gateway.received[0]["to"] == PHONE
        code = gateway.received[0]["text"].split("Ваш код: ")[1][:6]
    with make_uow() as uow:
        principal = members.sign_in(uow, "+7 918 123 45 67", code, SECRET)
    with session_factory() as s:
        assert principal.person_id == s.get(Membership, tree.members["shchyolokova"]).person_id


def test_refusals_retries_and_a_server_that_is_down(make_uow, session_factory, tmp_path):
    def queue(address, channel="email"):
        with make_uow() as uow:
            outbox.enqueue(uow.session, channel=channel, address=address, kind="card_ready", subject="Карта готова",
                           body="Ваша карта готова: заберите её в своей ППО.")
            uow.commit()

    with SmtpServer() as smtp:
        smtp.mailbox.refuse = {"gone@example.org": (550, "5.1.1 No such user"),
                               "full@example.org": (452, "4.2.2 Mailbox full")}
        for address in ("gone@example.org", "full@example.org", "fine@example.org"):
            queue(address)
        run = deliver(session_factory, mail=smtp.url)
        assert (run.sent, run.failed, run.retried) == (1, 1, 1)
        assert [m["To"] for m in smtp.mailbox.messages] == ["fine@example.org"]
        with session_factory() as s:
            rows = {r.address: r for r in s.scalars(select(OutboxMessage))}
            assert rows["gone@example.org"].status == "failed" and "550" in rows["gone@example.org"].last_error
            full = rows["full@example.org"]
            assert full.status == "queued" and full.attempts == 1
            assert full.next_attempt_at >= clock.now() + msg.RETRY_DELAYS[0] - timedelta(seconds=5)
            assert s.scalars(select(UndeliverableAddress.address)).all() == ["gone@example.org"]
        # Not due yet: a second run sends nothing. An address refused for good is not tried again.
        assert deliver(session_factory, mail=smtp.url).handled == 0
        queue("gone@example.org")
        with session_factory() as s:
            assert s.scalars(select(OutboxMessage.status).order_by(OutboxMessage.id.desc())).first() == "suppressed"
        # The box has room again once its retry is due.
        smtp.mailbox.refuse = {}
        later = clock.now() + timedelta(minutes=2)
        assert deliver(session_factory, mail=smtp.url, now=lambda: later).sent == 1
        assert smtp.mailbox.to("full@example.org")
    # The server is gone: nothing is lost, the message waits for the next run.
    queue("after@example.org")
    run = deliver(session_factory, mail=smtp.url)
    assert run.sent == 0 and "email" in run.channel_errors
    with session_factory() as s:
        waiting = s.scalars(select(OutboxMessage).where(OutboxMessage.address == "after@example.org")).one()
        assert waiting.status == "queued" and waiting.attempts == 0
    # Retrying gives up after the last delay.
    assert msg.next_attempt(msg.MAX_ATTEMPTS, clock.now()) is None
    # SMS: a 400 is for good, a 503 is for later.
    with SmsGateway() as gateway:
        gateway.status_for = {"+79000000001": 400, "+79000000002": 503}
        for phone in ("+79000000001", "+79000000002", "+79000000003"):
            queue(phone, "sms")
        run = deliver(session_factory, sms=gateway.url)
        assert (run.sent, run.failed, run.retried) == (1, 1, 1)
        assert [r["to"] for r in gateway.received] == ["+79000000003"]


def test_withdrawing_section_2_turns_the_partner_check_false_at_once(app, make_uow, session_factory, tree, system,
                                                                     contacts):
    issued = issue_virtual(make_uow, tree, system, "ivanov")
    number = issued["ivanov"][1]
    with make_uow() as uow:
        registry.give_consent(uow, system, tree.members["ivanov"], "partner_transfer", clock.today(), "electronic")
        uow.commit()
    client = app.test_client()
    bonus = new_key(make_uow, tree, "Бонусная программа", "bonus_programme")
    assert ask(client, bonus, number, "Иванов").get_json()["valid"] is True
    with session_factory() as s:
        person_id = s.get(Membership, tree.members["ivanov"]).person_id
    principal = members.MemberPrincipal("email", EMAIL, person_id)
    with make_uow() as uow:
        members.withdraw(uow, principal, "partner_transfer")
    assert ask(client, bonus, number, "Иванов").get_json()["valid"] is False
    with session_factory() as s:
        assert not registry.has_consent(s, person_id, "partner_transfer")
        assert registry.has_consent(s, person_id, "processing")
    # Given again from the page (electronic, today): the partner's check is true again at once.
    with make_uow() as uow:
        members.give(uow, principal, "partner_transfer")
    assert ask(client, bonus, number, "Иванов").get_json()["valid"] is True
    with make_uow() as uow, pytest.raises(ValidationError) as by_organisation:
        members.give(uow, principal, "processing")
    assert by_organisation.value.code == "consent_processing_by_organisation"
    # A principal whose contact is not the person's opens nothing.
    stranger = members.MemberPrincipal("email", "stranger@example.org", person_id)
    with session_factory() as s, pytest.raises(Exception) as refused:
        members.my_page(s, stranger)
    assert getattr(refused.value, "code", None) == "member_not_found"


def _sign_in_by_web(client, smtp, session_factory, contact=EMAIL):
    page = client.get("/me/")
    token = page.get_data(as_text=True).split('name="csrf_token" value="')[1].split('"')[0]
    sent = client.post("/me/", data={"csrf_token": token, "contact": contact})
    assert sent.status_code == 302 and sent.headers["Location"].endswith("/me/code")
    deliver(session_factory, mail=smtp.url)
    code = smtp.mailbox.code_for(contact)
    signed = client.post("/me/code", data={"csrf_token": token, "code": code})
    assert signed.status_code == 302 and signed.headers["Location"].endswith("/me/card"), signed.get_data(as_text=True)
    # The session was made anew at sign-in (no fixation): so was its CSRF token.
    fresh = client.get("/me/card").get_data(as_text=True).split('name="csrf_token" value="')[1].split('"')[0]
    assert fresh != token
    return fresh


def test_the_members_page_by_web_shows_only_their_own_data(app, make_uow, session_factory, tree, system, contacts):
    issued = issue_virtual(make_uow, tree, system, "ivanov", "shchyolokova")
    # An official opens Ivanov's registry card: the member sees that their data was read.
    with make_uow() as uow:
        registry.view_member(uow, tree.actors["chair_a"], tree.members["ivanov"])
        uow.commit()
    client = app.test_client()
    with SmtpServer() as smtp:
        app.extensions["unioncard"].settings = app.extensions["unioncard"].settings.with_overrides(mail_channel=smtp.url)
        token = _sign_in_by_web(client, smtp, session_factory)
    page = client.get("/me/card").get_data(as_text=True)
    number = issued["ivanov"][1]
    assert f"{number[:4]} {number[4:8]} {number[8:12]} {number[12:]}" in page
    assert "Иванов" in page and "Щёлокова" not in page and issued["shchyolokova"][1][-4:] not in page
    seen = client.get("/me/seen").get_data(as_text=True)
    assert "ППО школы № 1 г. Сочи" in seen and "председатель" in seen.lower()
    data = json.loads(client.get("/me/my-data.json").get_data(as_text=True))
    assert data["person"]["surname"] == "Иванов" and data["cards"][0]["number"] == number
    assert data["reads"] and data["reads"][0]["action"] == "member.view"
    # Choosing someone else's person id is refused; unknown sections are 404 and change nothing.
    with session_factory() as s:
        foreign = s.get(Membership, tree.members["sidorova"]).person_id
    chosen = client.post("/me/choose", data={"csrf_token": token, "person_id": str(foreign)}, follow_redirects=True)
    assert chosen.status_code == 200 and "Сидорова" not in chosen.get_data(as_text=True)
    assert "Сидорова" not in client.get("/me/card").get_data(as_text=True)
    assert client.post("/me/consents/everything", data={"csrf_token": token}).status_code == 404
    # Section 1 explains what follows before anything happens; the POST then blocks the card.
    explained = client.get("/me/consents/processing").get_data(as_text=True)
    assert "заблокир" in explained
    client.post("/me/consents/processing", data={"csrf_token": token})
    with session_factory() as s:
        from unioncard.issuer.models import Card

        assert s.get(Card, issued["ivanov"][0]).status not in ("issued",)
        assert s.get(Card, issued["shchyolokova"][0]).status == "issued"
    # Signed out, the page is gone, also for a copy of the cookie taken before.
    copied = app.test_client()
    copied.set_cookie("unioncard_session", client.get_cookie("unioncard_session").value)
    assert copied.get("/me/card").status_code == 200
    held = app.session_interface.get_signing_serializer(app).loads(client.get_cookie("unioncard_session").value)
    assert EMAIL not in repr(held) and set(held["member"]) == {"sid", "person_id"}  # no address in the cookie
    client.post("/me/sign-out", data={"csrf_token": token})
    assert client.get("/me/card").status_code == 302
    assert copied.get("/me/card").status_code == 302


@pytest.mark.browser
def test_a_member_signs_in_with_the_code_from_the_mailbox_and_withdraws_section_2_at_390_px(
        app, live_server, browser, make_uow, session_factory, tree, system, contacts, tmp_path):
    from tests.support import union_keys

    app.extensions["unioncard"]._signer = union_keys(tmp_path).operational
    issued = issue_virtual(make_uow, tree, system, "ivanov")
    number = issued["ivanov"][1]
    with make_uow() as uow:
        registry.give_consent(uow, system, tree.members["ivanov"], "partner_transfer", clock.today(), "electronic")
        registry.give_consent(uow, system, tree.members["ivanov"], "messaging", clock.today(), "electronic")
        uow.commit()
    bonus = new_key(make_uow, tree, "Бонусная программа", "bonus_programme")
    client = app.test_client()
    assert ask(client, bonus, number, "Иванов").get_json()["valid"] is True
    with SmtpServer() as smtp:
        page = browser.new_page(viewport={"width": 390, "height": 844}, locale="ru-RU")
        page.goto(f"{live_server}/login")
        page.get_by_role("link", name="Член Профсоюза? Откройте свою карту").click()
        page.fill("#contact", EMAIL)
        page.get_by_role("button", name="Прислать код").click()
        assert page.url.endswith("/me/code")
        deliver(session_factory, mail=smtp.url)
        page.fill("#code", smtp.mailbox.code_for(EMAIL))
        page.get_by_role("button", name="Войти").click()
    assert page.url.endswith("/me/card")
    shown = page.locator(".card-number").first.inner_text()
    assert shown.replace(" ", "").replace("\u00a0", "") == number
    assert page.locator(".qr svg").count() == 1
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 390
    page.locator("#consent-partner_transfer").get_by_role("link", name="Отозвать согласие").click()
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 390
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Отозвать согласие").click()
    assert "отозвано" in page.locator(".flash").first.inner_text()
    assert page.locator("#consent-partner_transfer .no").count() == 1
    assert ask(client, bonus, number, "Иванов").get_json()["valid"] is False
    page.get_by_role("link", name="Кто видел мои данные").click()
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 390
    page.close()


def test_a_card_ready_for_pickup_and_a_blocked_card_tell_the_member(make_uow, session_factory, tree, system,
                                                                    contacts):
    from tests.support import approved_cards
    from unioncard.issuer import services as cards
    from unioncard.issuer.domain import CardStatus as S
    from unioncard.issuer.models import Card

    card_ids = approved_cards(make_uow, tree, 2)
    with make_uow() as uow:
        person_ids = [uow.session.get(Card, i).person_id for i in card_ids]
        uow.session.get(Person, person_ids[0]).email = "ready@school1.example"
        uow.session.get(Person, person_ids[1]).phone = "+79180000002"
        uow.commit()
    with make_uow() as uow:
        loaded = [uow.session.get(Card, i) for i in card_ids]
        for step in (S.IN_PRODUCTION, S.PRODUCED, S.SHIPPED, S.DELIVERED):
            cards.transition_many(uow, system, loaded, step, system=True)
        uow.commit()
    with make_uow() as uow:
        cards.transition_many(uow, tree.actors["chair_a"], [uow.session.get(Card, i) for i in card_ids], S.ISSUED)
        uow.commit()
    # A change rolled back queues nothing.
    with make_uow() as uow:
        cards.report_loss(uow, tree.actors["chair_a"], card_ids[0], S.STOLEN, "проверка")
        uow.rollback()
    with make_uow() as uow:
        cards.report_loss(uow, tree.actors["chair_a"], card_ids[1], S.LOST, "утерян в дороге")
        uow.commit()
    with SmtpServer() as smtp, SmsGateway() as gateway:
        run = deliver(session_factory, mail=smtp.url, sms=gateway.url)
        assert run.sent == 3
        ready = smtp.mailbox.to("ready@school1.example")
        assert len(ready) == 1 and "готов" in ready[0]["Subject"]
        assert "ППО школы № 1 г. Сочи" in ready[0].get_body(("plain",)).get_content()
        texts = [r["text"] for r in gateway.received if r["to"] == "+79180000002"]
        assert len(texts) == 2 and "готов" in texts[0] and "заблокирован" in texts[1]


def test_a_member_orders_their_own_virtual_card_and_downloads_their_data_as_pdf(app, make_uow, session_factory,
                                                                                 tree, system, contacts):
    from unioncard.issuer import services as cards
    from unioncard.issuer.models import Card
    from unioncard.registry.actor import Actor

    with make_uow() as uow:
        registry.give_consent(uow, system, tree.members["ivanov"], "processing", clock.today(), "paper")
        uow.commit()
    with session_factory() as s:
        person_id = s.get(Membership, tree.members["ivanov"]).person_id
        other_id = s.get(Membership, tree.members["sidorova"]).person_id
    principal = members.MemberPrincipal("email", EMAIL, person_id)
    with make_uow() as uow:
        result = members.order_virtual_card(uow, principal, "964301")
    assert len(result.ordered) == 1 and result.ordered[0].kind == "virtual"
    with make_uow() as uow:
        again = members.order_virtual_card(uow, principal, "964301")
    assert again.refused[0].code == "card_already_active"
    # The member's own actor orders nothing else: no plastic card, no other member's card.
    with make_uow() as uow, pytest.raises(Exception) as plastic:
        cards.order_cards(uow, Actor.member(person_id), [tree.members["ivanov"]], "plastic")
    assert getattr(plastic.value, "code", "") == "forbidden"
    with make_uow() as uow:
        foreign = cards.order_cards(uow, Actor.member(person_id), [tree.members["sidorova"]], "virtual")
    assert foreign.refused[0].code == "member_not_found" and not foreign.ordered
    with session_factory() as s:
        assert not s.scalars(select(Card).where(Card.person_id == other_id)).all()
    client = app.test_client()
    with SmtpServer() as smtp:
        app.extensions["unioncard"].settings = app.extensions["unioncard"].settings.with_overrides(mail_channel=smtp.url)
        _sign_in_by_web(client, smtp, session_factory)
    pdf = client.get("/me/my-data.pdf")
    assert pdf.status_code == 200 and pdf.data.startswith(b"%PDF") and pdf.mimetype == "application/pdf"
    import pypdfium2

    text = "".join(page.get_textpage().get_text_range() for page in pypdfium2.PdfDocument(pdf.data))
    assert "Иванов" in text and "Сидорова" not in text
