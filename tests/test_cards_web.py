"""Card pages through the web app: order, approve, hand out by number, loss and reissue."""

from __future__ import annotations

from datetime import date

from sqlalchemy import select

from tests.test_web import text_of
from unioncard.issuer import cardnumber
from unioncard.issuer import services as cards
from unioncard.issuer.domain import CardStatus
from unioncard.issuer.models import Card
from unioncard.registry import services as registry


def give_consents(make_uow, system, tree, *keys):
    with make_uow() as uow:
        for key in keys:
            registry.give_consent(uow, system, tree.members[key], "processing", date(2020, 1, 1), "paper")
        uow.commit()


def deliver(make_uow, tree, card_ids):
    with make_uow() as uow:
        for target in (CardStatus.IN_PRODUCTION, CardStatus.PRODUCED, CardStatus.SHIPPED):
            cards.advance(uow, tree.actors["bureau"], card_ids, target)
        cards.advance(uow, tree.actors["region_a"], card_ids, CardStatus.DELIVERED)
        uow.commit()


def test_order_approve_and_hand_out_through_the_pages(web, tree, make_uow, session_factory, system):
    give_consents(make_uow, system, tree, "ivanov")
    web.login("chair_a")
    page = text_of(web.get(f"/cards/org/{tree.primary_a}"))
    assert "Иванов Иван" in page and "нет согласия (раздел 1)" in page  # Щёлокова has no consent
    response = web.post(f"/cards/org/{tree.primary_a}/order", token_from=f"/cards/org/{tree.primary_a}",
                        data={"membership_id": [tree.members["ivanov"], tree.members["shchyolokova"]], "kind": "plastic"},
                        follow_redirects=True)
    body = text_of(response)
    assert "Заказано билетов: 1" in body
    assert "Щёлокова Анна: Нет согласия на обработку персональных данных" in body
    with session_factory() as s:
        card = s.scalar(select(Card))
        assert card.status == "ordered"
    card_page = text_of(web.get(f"/cards/{card.id}"))
    assert "Отменить заказ" in card_page and "Утерян" not in card_page  # buttons follow the state machine
    web.client.post("/logout", data={"csrf_token": web.token("/")})

    web.login("region_a")
    approvals = text_of(web.get(f"/cards/org/{tree.region_a}/approvals"))
    assert "Иванов Иван" in approvals
    response = web.post(f"/cards/org/{tree.region_a}/approvals", token_from=f"/cards/org/{tree.region_a}/approvals",
                        data={"card_id": [card.id], "action": "approve"}, follow_redirects=True)
    assert "Одобрено заказов: 1" in text_of(response)
    again = web.post(f"/cards/org/{tree.region_a}/approvals", token_from=f"/cards/org/{tree.region_a}/approvals",
                     data={"card_id": [card.id], "action": "approve"}, follow_redirects=True)
    assert "Билет в состоянии «одобрен» не может перейти в состояние «одобрен»" in text_of(again)
    web.client.post("/logout", data={"csrf_token": web.token("/")})

    deliver(make_uow, tree, [card.id])
    with session_factory() as s:
        number = s.get(Card, card.id).number
    web.login("chair_a")
    typo = number[:-1] + str((int(number[-1]) + 3) % 10)
    response = web.post(f"/cards/org/{tree.primary_a}/hand-out", token_from=f"/cards/org/{tree.primary_a}/hand-out",
                        data={"numbers": f"{cardnumber.format(number)}\n{typo}\n", "outcome": "issued"})
    body = text_of(response)
    assert "Отмечено «Выдан»: 1 из 2" in body
    assert "опечатка" in body  # the mistyped number is named, and kept in the box to fix
    assert typo in response.get_data(as_text=True).split("<textarea")[1].split("</textarea>")[0]
    with session_factory() as s:
        assert s.get(Card, card.id).status == "issued"
    card_page = text_of(web.get(f"/cards/{card.id}"))
    assert "Утерян" in card_page and "Отменить заказ" not in card_page

    # Loss → blocked → reissue, from the card page.
    web.post(f"/cards/{card.id}", token_from=f"/cards/{card.id}", data={"action": "lost", "reason": "потерял"})
    response = web.post(f"/cards/{card.id}", token_from=f"/cards/{card.id}", data={"action": "reissue"},
                        follow_redirects=True)
    assert "Заказан новый билет" in text_of(response)
    with session_factory() as s:
        statuses = sorted(c.status for c in s.scalars(select(Card)))
    assert statuses == ["blocked", "ordered"]


def test_virtual_card_private_link(web, tree, make_uow, session_factory, system):
    give_consents(make_uow, system, tree, "ivanov")
    with make_uow() as uow:
        card = cards.order_cards(uow, tree.actors["chair_a"], [tree.members["ivanov"]], "virtual").ordered[0]
        cards.approve(uow, tree.actors["region_a"], [card.id])
        cards.advance(uow, tree.actors["chair_a"], [card.id], CardStatus.ISSUED)
        uow.commit()
    web.login("chair_a")
    response = web.post(f"/cards/{card.id}", token_from=f"/cards/{card.id}", data={"action": "link"})
    html = response.get_data(as_text=True)
    link = html.split("/cards/v/")[1].split('"')[0]
    web.client.post("/logout", data={"csrf_token": web.token("/")})
    public = web.get(f"/cards/v/{link}")
    assert public.status_code == 200 and "Иванов" in text_of(public)
    with session_factory() as s:
        number = s.get(Card, card.id).number
    assert cardnumber.format(number) in text_of(public)
    assert web.get("/cards/v/not-a-token").status_code == 404
    with make_uow() as uow:
        cards.report_loss(uow, tree.actors["chair_a"], card.id, CardStatus.LOST)
        uow.commit()
    assert web.get(f"/cards/v/{link}").status_code == 404  # a blocked card's link stops working


def test_virtual_card_shows_the_signed_credential(database_url, tree, tmp_path, monkeypatch, make_uow,
                                                  session_factory, system):
    from unioncard.checkin_web import create_app
    from unioncard.config import Settings
    from unioncard.hsm.base import open_keystore
    from unioncard.hsm.domain import KeyRole, verify
    from unioncard.issuer import credential

    monkeypatch.setenv("UNIONCARD_KEYSTORE_SECRET", "virtual card test")
    store = open_keystore(f"software:{tmp_path / 'keys'}", "virtual card test", create=True)
    key = store.generate(KeyRole.CARD_CREDENTIAL)
    app = create_app(Settings(instance_dir=tmp_path / "instance", database_url=database_url, secret_key="t",
                              keystore_url=f"software:{tmp_path / 'keys'}"))
    give_consents(make_uow, system, tree, "ivanov")
    with make_uow() as uow:
        card = cards.order_cards(uow, tree.actors["chair_a"], [tree.members["ivanov"]], "virtual").ordered[0]
        cards.approve(uow, tree.actors["region_a"], [card.id])
        cards.advance(uow, tree.actors["chair_a"], [card.id], CardStatus.ISSUED)
        token = cards.new_private_link(uow, tree.actors["chair_a"], card.id)
        uow.commit()
    client = app.test_client()
    page = client.get(f"/cards/v/{token}")
    assert page.status_code == 200 and "<svg" in page.get_data(as_text=True)
    with session_factory() as s:
        stored = s.get(Card, card.id)
        text, number = stored.credential, stored.number
    parsed = credential.parse(text)
    assert parsed.number == number and parsed.full_name == "Иванов И. И." and parsed.key_id == key.key_id
    assert verify(key.public_key, key.algorithm, KeyRole.CARD_CREDENTIAL, parsed.payload, parsed.signature)
    image = client.get(f"/cards/v/{token}/card.svg")
    assert image.mimetype == "image/svg+xml" and cardnumber.format(number) in image.get_data(as_text=True)
    # The QR code fills its 560-unit box: the code's own svg scales (100 %, a viewBox), not 53 mm in a corner.
    import xml.etree.ElementTree as ET

    ns = {"s": "http://www.w3.org/2000/svg"}
    box = ET.fromstring(image.data).find("s:svg", ns)
    qr = box.find("s:svg", ns)
    assert (box.get("width"), box.get("height")) == ("560", "560")
    assert (qr.get("width"), qr.get("height")) == ("100%", "100%") and qr.get("viewBox").startswith("0 0 ")
    # A second view shows the same credential (made once).
    client.get(f"/cards/v/{token}")
    with session_factory() as s:
        assert s.get(Card, card.id).credential == text
    # A tampered credential is refused; scanning the real one marks the card like its number.
    import base45

    forged = credential.QR_PREFIX + base45.b45encode(
        parsed.payload.replace("Иванов".encode(), "Петров".encode()) + parsed.signature).decode()
    from unioncard.hsm import trust
    from unioncard.hsm.domain import KeyStoreError
    import pytest as _pytest

    root = open_keystore(f"software:{tmp_path / 'root'}", "root", roles={KeyRole.ROOT}, create=True)
    root_key = root.generate(KeyRole.ROOT)
    from unioncard import clock
    from datetime import timedelta

    now = clock.now()
    bundle = trust.check(trust.build(root, store.list(), version=1, issued_at=now, expires_at=now + timedelta(days=1)),
                         root_key.public_key, now)
    assert credential.verify(text, bundle).number == number
    with _pytest.raises(credential.CredentialError) as info:
        credential.verify(forged, bundle)
    assert info.value.code == "credential_bad_signature"
    del KeyStoreError
    app.extensions["unioncard"].engine.dispose()


def test_the_auto_approval_box_shows_what_was_saved(web, tree):
    page = f"/cards/org/{tree.region_a}/approvals"
    web.login("region_a")
    assert 'name="enabled" value="1">' in web.get(page).get_data(as_text=True)
    web.post(page, {"action": "auto", "enabled": "1"}, token_from=page)
    assert 'name="enabled" value="1" checked>' in web.get(page).get_data(as_text=True)
    web.post(page, {"action": "auto"}, token_from=page)
    assert 'name="enabled" value="1">' in web.get(page).get_data(as_text=True)


def test_a_member_page_shows_the_cards_and_orders_one(web, tree, make_uow, system):
    from datetime import date

    from unioncard.registry import services as registry

    with make_uow() as uow:
        registry.give_consent(uow, system, tree.members["ivanov"], "processing", date(2020, 1, 1), "paper")
        uow.commit()
    web.login("chair_a")
    page = f"/registry/member/{tree.members['ivanov']}"
    assert "Билетов пока нет" in web.get(page).get_data(as_text=True)
    answer = web.post(f"/cards/org/{tree.primary_a}/order", {"membership_id": str(tree.members["ivanov"]),
                                                            "kind": "plastic"}, token_from=page,
                      follow_redirects=True)
    assert answer.status_code == 200
    text = web.get(page).get_data(as_text=True)
    assert "Билетов пока нет" not in text and "/cards/" in text


def test_the_regions_approvals_name_each_members_organisation(web, tree, make_uow):
    from unioncard.issuer import services as cards
    from unioncard.registry import services as registry
    from datetime import date

    with make_uow() as uow:
        registry.give_consent(uow, tree.actors["admin"], tree.members["petrov"], "processing", date(2020, 1, 1), "paper")
        cards.order_cards(uow, tree.actors["chair_a2"], [tree.members["petrov"]])
        uow.commit()
    web.login("region_a")
    text = web.get(f"/cards/org/{tree.region_a}/approvals").get_data(as_text=True)
    assert "Петров" in text and "ППО школы № 2 г. Сочи" in text


def test_an_approved_virtual_card_says_how_to_hand_it_out(web, tree, make_uow, session_factory, system):
    give_consents(make_uow, system, tree, "ivanov")
    with make_uow() as uow:
        card = cards.order_cards(uow, tree.actors["chair_a"], [tree.members["ivanov"]], "virtual").ordered[0]
        cards.approve(uow, tree.actors["region_a"], [card.id])
        uow.commit()
    web.login("chair_a")
    page = text_of(web.get(f"/cards/{card.id}"))
    assert "Виртуальный билет выдаётся личной ссылкой" in page and "Выдать и создать ссылку" in page
    assert "Создать новую личную ссылку" not in page
    response = web.post(f"/cards/{card.id}", token_from=f"/cards/{card.id}", data={"action": "hand_out_virtual"})
    html = response.get_data(as_text=True)
    assert "Виртуальный билет выдан" in html and "/cards/v/" in html
    with session_factory() as s:
        stored = s.get(Card, card.id)
        assert stored.status == "issued" and stored.link_token_hash
    # Once a link exists, the button says a new one replaces it (and asks first).
    page = web.get(f"/cards/{card.id}").get_data(as_text=True)
    assert "Создать новую личную ссылку" in page and "data-confirm" in page
