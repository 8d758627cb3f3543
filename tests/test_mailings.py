"""Mailings reach exactly the members of the sender's subtree who agreed to messages (consent
section 3), through a real SMTP server and an HTTP SMS gateway stand-in; each carries a link that
withdraws section 3 without signing in, which a changed or reused link cannot abuse."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from tests.mail_support import SmsGateway, SmtpServer
from unioncard import clock
from unioncard.db import UnitOfWork
from unioncard.errors import NotFound, PermissionDenied, ValidationError
from unioncard.messaging import domain as msg
from unioncard.messaging import mailings
from unioncard.messaging import services as outbox
from unioncard.messaging.models import OutboxMessage
from unioncard.messaging.senders import open_sender
from unioncard.registry import services as registry
from unioncard.registry.models import Consent, Membership, Person

SECRET = "test-secret"
PUBLIC = "http://127.0.0.1:5000"
CONTACTS = {"ivanov": ("email", "ivanov@school1.example"), "shchyolokova": ("phone", "+79181234567"),
            "petrov": ("email", "petrov@school2.example"), "sidorova": ("email", "sidorova@chuvsu.example")}


@pytest.fixture
def audience(make_uow, tree, system):
    """Everyone has an address; Ivanov, Shchyolokova (by phone) and Sidorova agreed to messages,
    Petrov did not."""
    with make_uow() as uow:
        for key, (kind, value) in CONTACTS.items():
            person = uow.session.get(Person, uow.session.get(Membership, tree.members[key]).person_id)
            setattr(person, kind, value)
        for key in ("ivanov", "shchyolokova", "sidorova"):
            registry.give_consent(uow, system, tree.members[key], "messaging", clock.today(), "paper")
        uow.commit()


def deliver(session_factory, smtp, gateway):
    link = lambda consent_id: f"{PUBLIC}/u/{msg.unsubscribe_token(SECRET, consent_id)}"  # noqa: E731
    return outbox.deliver_due(lambda: UnitOfWork(session_factory),
                              {"email": lambda: open_sender(smtp.url), "sms": lambda: open_sender(gateway.url)},
                              link_for=link)


def test_a_mailing_reaches_exactly_the_consenting_members_in_scope(make_uow, session_factory, tree, audience):
    region = tree.actors["region_a"]
    with session_factory() as s:
        assert mailings.count_audience(s, region, mailings.Audience(tree.region_a)) == 2
        assert mailings.count_audience(s, tree.actors["admin"], mailings.Audience(tree.central)) == 3
        assert mailings.count_audience(s, region, mailings.Audience(tree.primary_a2)) == 0  # Petrov: no consent
        # Larger than the sender's scope: refused as if it did not exist.
        with pytest.raises(NotFound):
            mailings.count_audience(s, region, mailings.Audience(tree.central))
        with pytest.raises(NotFound):
            mailings.count_audience(s, tree.actors["chair_a"], mailings.Audience(tree.region_a))
        with pytest.raises(PermissionDenied):
            mailings.count_audience(s, tree.actors["bureau"], mailings.Audience(tree.central))
    with make_uow() as uow:
        mailing = mailings.create_mailing(uow, region, mailings.Audience(tree.region_a), "Слёт молодых педагогов",
                                          "Приглашаем на краевой слёт 12 декабря.")
    assert mailing.recipients == 2
    for subject, body in (("\u200b", "Текст"), ("Тема", "\u200b\u200b"), ("", "Текст"), ("Т" * 201, "Текст")):
        with make_uow() as uow, pytest.raises(ValidationError):
            mailings.create_mailing(uow, region, mailings.Audience(tree.region_a), subject, body)
    with SmtpServer() as smtp, SmsGateway() as gateway:
        run = deliver(session_factory, smtp, gateway)
        assert run.sent == 2 and run.failed == 0
        # The server's mailbox holds exactly the consenting members in scope.
        assert [m["To"] for m in smtp.mailbox.messages] == ["ivanov@school1.example"]
        assert [r["to"] for r in gateway.received] == ["+79181234567"]
        mail = smtp.mailbox.messages[0]
        assert mail["Subject"] == "Слёт молодых педагогов"
        text = mail.get_body(("plain",)).get_content()
        assert "12 декабря" in text and f"{PUBLIC}/u/" in text
        assert mail["List-Unsubscribe"].startswith(f"<{PUBLIC}/u/") and mail["List-Unsubscribe-Post"]
        sms = gateway.received[0]["text"]
        assert f"{PUBLIC}/u/" in sms and sms.startswith("Слёт молодых педагогов. Приглашаем")
        assert len(sms.split("\n")[0]) <= msg.SMS_TEXT_MAX
    with session_factory() as s:
        assert mailings.progress(s, region, mailing.id) == {"queued": 0, "sent": 2, "failed": 0, "suppressed": 0}
        with pytest.raises(NotFound):
            mailings.progress(s, tree.actors["chair_b"], mailing.id)


def test_consent_withdrawn_after_queuing_stops_the_message(make_uow, session_factory, tree, system, audience):
    with make_uow() as uow:
        mailing = mailings.create_mailing(uow, tree.actors["admin"], mailings.Audience(tree.central), "Новости",
                                          "Текст")
    with make_uow() as uow:
        registry.withdraw_consent(uow, system, tree.members["sidorova"], "messaging", clock.today())
        uow.commit()
    with SmtpServer() as smtp, SmsGateway() as gateway:
        run = deliver(session_factory, smtp, gateway)
        assert (run.sent, run.skipped) == (2, 1)
        assert "sidorova@chuvsu.example" not in [m["To"] for m in smtp.mailbox.messages]
    with session_factory() as s:
        assert mailings.progress(s, tree.actors["admin"], mailing.id)["suppressed"] == 1


def test_the_unsubscribe_link_works_without_signing_in_and_cannot_be_abused(app, make_uow, session_factory, tree,
                                                                              system, audience):
    with make_uow() as uow:
        mailings.create_mailing(uow, tree.actors["region_a"], mailings.Audience(tree.primary_a), "Новости", "Текст")
    with SmtpServer() as smtp, SmsGateway() as gateway:
        deliver(session_factory, smtp, gateway)
        link = re.search(r"/u/[0-9]+-[0-9a-f]{32}", smtp.mailbox.messages[0].get_body(("plain",)).get_content()).group(0)
    client = app.test_client()  # nobody signed in
    confirm = client.get(link)
    assert confirm.status_code == 200 and "Больше не присылать" in confirm.get_data(as_text=True)
    consent_id = int(link.split("/u/")[1].split("-")[0])
    # A changed link: a digit of the id or of the signature.
    other = link.replace(f"/u/{consent_id}-", f"/u/{consent_id + 1}-")
    flipped = link[:-1] + ("0" if link[-1] != "0" else "1")
    for bad in (other, flipped, "/u/abc", "/u/1-" + "0" * 32, "/u/" + "9" * 40 + "-x"):
        assert client.post(bad).status_code == 404, bad
        assert client.get(bad).status_code == 404, bad
    with session_factory() as s:
        assert s.get(Consent, consent_id).withdrawn_on is None
    done = client.post(link)  # a mail program's one-click POST: no CSRF token, no session
    assert done.status_code == 200 and "отозвано" in done.get_data(as_text=True)
    with session_factory() as s:
        consent = s.get(Consent, consent_id)
        assert consent.withdrawn_on == clock.today()
        person_id = consent.person_id
    # Given again later: the old link, replayed, cannot touch the new consent.
    with make_uow() as uow:
        membership_id = registry.active_membership(uow.session, person_id).id
        registry.give_consent(uow, system, membership_id, "messaging", clock.today(), "paper")
        uow.commit()
    replay = client.post(link)
    assert replay.status_code == 200 and "уже" in replay.get_data(as_text=True)
    with session_factory() as s:
        assert registry.has_consent(s, person_id, "messaging")


def test_mailings_by_web_count_first_then_send_and_show_progress(web, tree, session_factory, audience):
    web.login("region_a")
    token = web.token("/mailings")
    counted = web.client.post("/mailings", data={"csrf_token": token, "subject": "Слёт", "body": "Приглашаем",
                                                 "organisation_id": str(tree.region_a), "confirm": "count"})
    page = counted.get_data(as_text=True)
    assert counted.status_code == 200 and "получат 2 члена Профсоюза" in page
    with session_factory() as s:
        assert s.scalar(select(OutboxMessage.id)) is None  # counting sends nothing
    counted_key = page.split('name="counted" value="')[1].split('"')[0]
    # Sent under another filter than the one counted (a category chosen after counting): refused.
    changed = web.client.post("/mailings", data={"csrf_token": token, "subject": "Слёт", "body": "Приглашаем",
                                                 "organisation_id": str(tree.region_a), "category": "pensioner",
                                                 "confirm": "send", "counted": counted_key})
    assert changed.status_code == 200 and "посчитайте" in changed.get_data(as_text=True)
    sent = web.client.post("/mailings", data={"csrf_token": token, "subject": "Слёт", "body": "Приглашаем",
                                              "organisation_id": str(tree.region_a), "confirm": "send",
                                              "counted": counted_key})
    assert sent.status_code == 302
    progress = web.client.get(sent.headers["Location"]).get_data(as_text=True)
    assert 'id="queued">2<' in progress
    # Another region's organisation: refused, nothing queued.
    refused = web.client.post("/mailings", data={"csrf_token": token, "subject": "Слёт", "body": "Приглашаем",
                                                 "organisation_id": str(tree.region_b), "confirm": "send",
                                                 "counted": f"{tree.region_b}|||1"})
    assert refused.status_code == 200
    with session_factory() as s:
        assert len(s.scalars(select(OutboxMessage)).all()) == 2


def test_a_mailing_is_not_reachable_from_another_region_or_by_unknown_ids(web, make_uow, tree, audience):
    with make_uow() as uow:
        mailing = mailings.create_mailing(uow, tree.actors["region_a"], mailings.Audience(tree.region_a), "Слёт",
                                          "Приглашаем на краевой слёт.")
    for login in ("chair_b", "bureau"):
        web.client.post("/logout", data={"csrf_token": web.token("/")})
        web.login(login)
        for path in (f"/mailings/{mailing.id}", "/mailings/987654", "/mailings/99999999999"):
            response = web.get(path)
            assert response.status_code == 404, (login, path)
            assert "краевой слёт" not in response.get_data(as_text=True)


@pytest.mark.browser
def test_a_mailing_composed_on_a_phone_reaches_exactly_the_consenting_members(app, live_server, browser,
                                                                              session_factory, tree, audience):
    from tests.support import PASSWORD

    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, locale="ru-RU")
    page = context.new_page()
    page.on("dialog", lambda dialog: dialog.accept())
    page.goto(f"{live_server}/login")
    page.fill("#login", "region_a")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit].primary")
    page.get_by_role("link", name="Рассылки").click()
    page.fill("#subject", "Слёт молодых педагогов")
    page.fill("#body", "Приглашаем на краевой слёт 12 декабря.")
    page.get_by_role("button", name="Посчитать получателей").click()
    assert "получат 2 члена Профсоюза" in page.locator("#audience").inner_text()
    assert page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth + 1")
    page.get_by_role("button", name="Отправить").click()
    assert page.locator("#queued").inner_text() == "2"
    with SmtpServer() as smtp, SmsGateway() as gateway:
        deliver(session_factory, smtp, gateway)
        assert [m["To"] for m in smtp.mailbox.messages] == ["ivanov@school1.example"]
        assert [r["to"] for r in gateway.received] == ["+79181234567"]
    page.reload()
    assert page.locator("#sent").inner_text() == "2" and page.locator("#queued").inner_text() == "0"
    context.close()


def test_an_event_invites_everyone_on_its_list_and_only_its_organiser_may(make_uow, session_factory, tree, system,
                                                                          audience):
    from datetime import timedelta

    from unioncard.checkin import services as checkin
    from unioncard.checkin.models import RosterEntry

    with make_uow() as uow:
        event = checkin.create_event(uow, system, code="SLET", name="Слёт молодых педагогов", kind="conference",
                                     organisation_id=tree.region_a, starts_on=clock.today() + timedelta(days=7),
                                     ends_on=clock.today() + timedelta(days=8), venue="Сочи", admission="roster")
        for key, role in (("ivanov", "delegate"), ("petrov", "guest")):  # Petrov has no consent 3: still invited
            person_id = uow.session.get(Membership, tree.members[key]).person_id
            uow.session.add(RosterEntry(event_id=event.id, person_id=person_id, role=role))
        uow.commit()
        event_id = event.id
    with make_uow() as uow, pytest.raises(PermissionDenied):
        mailings.invite_roster(uow, tree.actors["chair_a"], event_id)  # no right to manage events
    with make_uow() as uow, pytest.raises(NotFound):
        mailings.invite_roster(uow, tree.actors["region_b"], event_id)  # another region's event
    with make_uow() as uow:
        assert mailings.invite_roster(uow, tree.actors["region_a"], event_id) == 2
    with SmtpServer() as smtp, SmsGateway() as gateway:
        deliver(session_factory, smtp, gateway)
        got = {m["To"]: m.get_body(("plain",)).get_content() for m in smtp.mailbox.messages}
    assert set(got) == {"ivanov@school1.example", "petrov@school2.example"}
    assert "Слёт молодых педагогов" in got["ivanov@school1.example"] and "делегат" in got["ivanov@school1.example"]
    assert "/u/" not in got["petrov@school2.example"]  # not a mailing: no unsubscribe link
