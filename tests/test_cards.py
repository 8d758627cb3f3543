"""Card orders and the lifecycle state machine, on SQLite and PostgreSQL."""

from __future__ import annotations

import itertools
from datetime import date

import pytest
from sqlalchemy import func, select
from stdnum import luhn

from unioncard.clock import today as union_today
from unioncard.errors import NotFound, PermissionDenied
from unioncard.issuer import cardnumber
from unioncard.issuer import domain as cd
from unioncard.issuer import services as cards
from unioncard.issuer.domain import CardKind, CardStatus
from unioncard.issuer.models import Card, CardEvent, Revocation
from unioncard.registry import services as registry
from unioncard.registry.models import AuditEntry

S = CardStatus


@pytest.fixture
def consenting(tree, make_uow, system):
    """Section-1 consent for everyone but Petrov."""
    with make_uow() as uow:
        for key in ("ivanov", "shchyolokova", "sidorova"):
            registry.give_consent(uow, system, tree.members[key], "processing", date(2020, 1, 10), "paper")
        uow.commit()
    return tree


def order(make_uow, actor, *member_ids, kind=CardKind.PLASTIC):
    with make_uow() as uow:
        result = cards.order_cards(uow, actor, member_ids, kind)
        uow.commit()
    return result


def run(make_uow, fn, *args, **kw):
    with make_uow() as uow:
        value = fn(uow, *args, **kw)
        uow.commit()
        return value


def produce(make_uow, tree, card_id):
    """ordered → … → delivered, each step by the role that does it."""
    run(make_uow, cards.approve, tree.actors["region_a"], [card_id])
    for target in (S.IN_PRODUCTION, S.PRODUCED, S.SHIPPED):
        run(make_uow, cards.advance, tree.actors["bureau"], [card_id], target)
    run(make_uow, cards.advance, tree.actors["region_a"], [card_id], S.DELIVERED)


def status(session_factory, card_id):
    with session_factory() as s:
        return s.get(Card, card_id).status


def test_order_refuses_with_reasons(consenting, make_uow, session_factory):
    tree = consenting
    chair = tree.actors["chair_a"]
    result = order(make_uow, chair, tree.members["ivanov"], tree.members["shchyolokova"], tree.members["petrov"],
                   tree.members["sidorova"], 999999)
    assert [c.membership_id for c in result.ordered] == [tree.members["ivanov"], tree.members["shchyolokova"]]
    refused = {r.membership_id: r for r in result.refused}
    # Petrov and Sidorova are members of other organisations: answered as if they did not exist.
    assert refused[tree.members["petrov"]].code == "member_not_found"
    assert refused[tree.members["sidorova"]].code == "member_not_found"
    assert refused[999999].message == "Член Профсоюза не найден"
    with session_factory() as s:
        attempts = s.scalars(select(AuditEntry).where(AuditEntry.action == "card.order_refused")).all()
        assert {a.object_id for a in attempts} == {str(tree.members["petrov"]), str(tree.members["sidorova"]), "999999"}
    # Ordering twice is refused with the reason.
    again = order(make_uow, chair, tree.members["ivanov"])
    assert again.ordered == [] and again.refused[0].code == "card_already_active"
    assert "заказан" in again.refused[0].message
    # A virtual card is a different kind and may be ordered beside the plastic one.
    assert len(order(make_uow, chair, tree.members["ivanov"], kind=CardKind.VIRTUAL).ordered) == 1


def test_no_consent_no_card(consenting, make_uow):
    tree = consenting
    result = order(make_uow, tree.actors["chair_a2"], tree.members["petrov"])
    assert result.ordered == [] and result.refused[0].code == "consent_missing"
    assert "согласия" in result.refused[0].message


def test_full_plastic_lifecycle_and_history(consenting, make_uow, session_factory):
    tree = consenting
    card_id = order(make_uow, tree.actors["chair_a"], tree.members["ivanov"]).ordered[0].id
    produce(make_uow, tree, card_id)
    results = run(make_uow, cards.mark_by_numbers, tree.actors["chair_a"], [_number(session_factory, card_id)],
                  S.REFUSED, "не пришёл")
    assert results[0].ok, results[0].message
    results = run(make_uow, cards.mark_by_numbers, tree.actors["chair_a"], [_number(session_factory, card_id)],
                  S.ISSUED)
    assert results[0].ok and status(session_factory, card_id) == "issued"
    with session_factory() as s:
        history = [(e.from_status, e.to_status) for e in cards.card_history(s, card_id)]
        number = s.get(Card, card_id).number
    assert history == [(None, "ordered"), ("ordered", "approved"), ("approved", "in_production"),
                       ("in_production", "produced"), ("produced", "shipped"), ("shipped", "delivered"),
                       ("delivered", "refused"), ("refused", "issued")]
    assert cardnumber.is_valid(number) and number.startswith(cardnumber.DEFAULT_ISSUER_PREFIX + "23")


def _number(session_factory, card_id):
    with session_factory() as s:
        return s.get(Card, card_id).number


def test_loss_blocks_revokes_and_reissue_gets_a_new_number(consenting, make_uow, session_factory):
    tree = consenting
    chair = tree.actors["chair_a"]
    card_id = order(make_uow, chair, tree.members["ivanov"]).ordered[0].id
    produce(make_uow, tree, card_id)
    run(make_uow, cards.mark_by_numbers, chair, [_number(session_factory, card_id)], S.ISSUED)
    with pytest.raises(Exception) as info:
        run(make_uow, cards.reissue, chair, card_id)
    assert info.value.code == "card_not_blocked"
    run(make_uow, cards.report_loss, chair, card_id, S.STOLEN, "украли в автобусе")
    assert status(session_factory, card_id) == "blocked"
    with session_factory() as s:
        feed, version = cards.revocations_since(s, 0)
    assert [(r.number, r.status) for r in feed] == [(_number(session_factory, card_id), "blocked")]
    new = run(make_uow, cards.reissue, chair, card_id).ordered[0]
    assert new.replaces_card_id == card_id
    run(make_uow, cards.approve, tree.actors["region_a"], [new.id])
    assert _number(session_factory, new.id) != _number(session_factory, card_id)
    with session_factory() as s:
        assert cards.revocations_since(s, version)[0] == []


def test_virtual_card_skips_production(consenting, make_uow, session_factory):
    tree = consenting
    card_id = order(make_uow, tree.actors["chair_a"], tree.members["ivanov"], kind=CardKind.VIRTUAL).ordered[0].id
    run(make_uow, cards.approve, tree.actors["region_a"], [card_id])
    with pytest.raises(cd.IllegalTransition):
        run(make_uow, cards.advance, tree.actors["bureau"], [card_id], S.IN_PRODUCTION)
    run(make_uow, cards.advance, tree.actors["chair_a"], [card_id], S.ISSUED)
    token = run(make_uow, cards.new_private_link, tree.actors["chair_a"], card_id)
    with session_factory() as s:
        assert cards.card_by_private_link(s, token).id == card_id
    second = run(make_uow, cards.new_private_link, tree.actors["chair_a"], card_id)
    with session_factory() as s:
        assert cards.card_by_private_link(s, token) is None  # the old link stopped working
        assert cards.card_by_private_link(s, second).id == card_id


ALL_PAIRS = list(itertools.product(CardStatus, CardStatus))


@pytest.mark.parametrize("kind", list(CardKind))
def test_every_refused_transition_is_refused_with_a_code(kind):
    """The table is the whole truth: every pair not in it is refused with the same code and a
    Russian message naming both statuses."""
    refused = 0
    for current, target in ALL_PAIRS:
        permission = cd.required_permission(kind, current, target)
        if permission is False:
            with pytest.raises(cd.IllegalTransition) as info:
                cd.check(kind, current, target, "reason")
            assert info.value.code == "card_transition_not_allowed"
            message = info.value.render("ru")
            assert "«" in message and "cannot" not in message
            refused += 1
        else:
            assert cd.check(kind, current, target, "reason") == permission
    assert refused > 200


@pytest.mark.parametrize("current,target", [
    (S.ORDERED, S.ISSUED), (S.ISSUED, S.ORDERED), (S.BLOCKED, S.ISSUED), (S.VOID, S.PRODUCED),
    (S.CANCELLED, S.APPROVED), (S.DELIVERED, S.IN_PRODUCTION), (S.REVOKED, S.ISSUED), (S.ISSUED, S.ISSUED),
])
def test_refused_transitions_change_nothing_in_the_database(current, target, consenting, make_uow, session_factory):
    tree = consenting
    card_id = order(make_uow, tree.actors["chair_a"], tree.members["ivanov"]).ordered[0].id
    with session_factory() as s:  # put the card straight into the starting status
        s.get(Card, card_id).status = current.value
        s.commit()
        events_before = s.scalar(select(func.count()).select_from(CardEvent))
    admin = tree.actors["admin"]
    with pytest.raises(cd.IllegalTransition) as info:
        with make_uow() as uow:
            cards.transition(uow, admin, cards.get_card(uow.session, admin, card_id), target, "reason")
            uow.commit()
    assert info.value.params["from_status"] == current.value
    with session_factory() as s:
        assert s.get(Card, card_id).status == current.value
        assert s.scalar(select(func.count()).select_from(CardEvent)) == events_before


def test_roles_and_scope(consenting, make_uow):
    tree = consenting
    card_id = order(make_uow, tree.actors["chair_a"], tree.members["ivanov"]).ordered[0].id
    with pytest.raises(PermissionDenied):  # a chairperson cannot approve their own order
        run(make_uow, cards.approve, tree.actors["chair_a"], [card_id])
    with pytest.raises(NotFound):  # another region's staff cannot see it
        run(make_uow, cards.approve, tree.actors["region_b"], [card_id])
    with pytest.raises(NotFound):  # nor another organisation's chairperson
        run(make_uow, cards.cancel, tree.actors["chair_a2"], card_id)
    with pytest.raises(cd.ReasonRequired):
        run(make_uow, cards.reject, tree.actors["region_a"], [card_id], "  ")
    run(make_uow, cards.approve, tree.actors["region_a"], [card_id])
    with pytest.raises(cd.IllegalTransition) as info:  # approving twice
        run(make_uow, cards.approve, tree.actors["region_a"], [card_id])
    assert info.value.render("ru") == "Билет в состоянии «одобрен» не может перейти в состояние «одобрен»"


def test_cancel_until_production_starts(consenting, make_uow, session_factory):
    tree = consenting
    chair = tree.actors["chair_a"]
    first, second = order(make_uow, chair, tree.members["ivanov"], tree.members["shchyolokova"]).ordered
    run(make_uow, cards.cancel, chair, first.id)
    run(make_uow, cards.approve, tree.actors["region_a"], [second.id])
    run(make_uow, cards.advance, tree.actors["bureau"], [second.id], S.IN_PRODUCTION)
    with pytest.raises(cd.IllegalTransition):
        run(make_uow, cards.cancel, chair, second.id)
    assert status(session_factory, first.id) == "cancelled"
    # A cancelled order frees the member for a new one.
    assert len(order(make_uow, chair, tree.members["ivanov"]).ordered) == 1


def test_auto_approval_per_region(consenting, make_uow, session_factory):
    tree = consenting
    run(make_uow, cards.set_auto_approve, tree.actors["region_a"], tree.region_a, True)
    card = order(make_uow, tree.actors["chair_a"], tree.members["ivanov"]).ordered[0]
    assert status(session_factory, card.id) == "approved" and cardnumber.is_valid(_number(session_factory, card.id))
    other = order(make_uow, tree.actors["chair_b"], tree.members["sidorova"]).ordered[0]
    assert status(session_factory, other.id) == "ordered"


def test_membership_end_revokes_and_transfer_keeps_the_card(consenting, make_uow, session_factory, system):
    tree = consenting
    chair = tree.actors["chair_a"]
    kept, revoked = order(make_uow, chair, tree.members["ivanov"], tree.members["shchyolokova"]).ordered
    for card in (kept, revoked):
        produce(make_uow, tree, card.id)
        run(make_uow, cards.mark_by_numbers, chair, [_number(session_factory, card.id)], S.ISSUED)
    run(make_uow, registry.deregister_member, system, tree.members["shchyolokova"], date(2025, 6, 1), "own_wish")
    assert status(session_factory, revoked.id) == "revoked"
    revoked_number = _number(session_factory, revoked.id)
    with session_factory() as s:
        assert [r.number for r in cards.revocations_since(s)[0]] == [revoked_number]
    # Ivanov moves to school № 2: still a member, the card follows him.
    with make_uow() as uow:
        from tests.support import person

        registry.register_member(uow, system, tree.primary_a2, person(), category="working",
                                 join_date=date(2025, 9, 1), transfer=True)
        uow.commit()
    with session_factory() as s:
        card = s.get(Card, kept.id)
        assert card.status == "issued" and card.organisation_id == tree.primary_a2


def test_consent_withdrawal_cancels_orders_and_revokes_cards(consenting, make_uow, session_factory, system):
    tree = consenting
    chair = tree.actors["chair_a"]
    plastic = order(make_uow, chair, tree.members["ivanov"]).ordered[0]
    produce(make_uow, tree, plastic.id)
    virtual = order(make_uow, chair, tree.members["ivanov"], kind=CardKind.VIRTUAL).ordered[0]
    run(make_uow, registry.withdraw_consent, system, tree.members["ivanov"], "processing", union_today())
    assert status(session_factory, plastic.id) == "revoked"
    assert status(session_factory, virtual.id) == "cancelled"
    assert order(make_uow, chair, tree.members["ivanov"]).refused[0].code == "consent_missing"


def test_mark_by_numbers_reports_each_bad_number(consenting, make_uow, session_factory, tmp_path):
    from unioncard.hsm.base import open_keystore
    from unioncard.hsm.domain import KeyRole

    tree = consenting
    chair = tree.actors["chair_a"]
    good = order(make_uow, chair, tree.members["ivanov"]).ordered[0]
    produce(make_uow, tree, good.id)
    number = _number(session_factory, good.id)
    store = open_keystore(f"software:{tmp_path / 'keys'}", "pass", create=True)
    store.generate(KeyRole.CARD_CREDENTIAL)
    with make_uow() as uow:
        qr = cards.ensure_credential(uow, cards.get_card(uow.session, chair, good.id), store)
        uow.commit()
    wrong_check = number[:-1] + str((int(number[-1]) + 1) % 10)
    results = run(make_uow, cards.mark_by_numbers, chair,
                  [cardnumber.format(number), wrong_check, "9643 01AB", "123", qr, "UC1:GARBAGE"], S.ISSUED)
    by_input = {r.number: r for r in results}
    assert by_input[cardnumber.format(number)].ok
    assert by_input[wrong_check].code == "card_number_checksum"
    assert by_input["9643 01AB"].code == "card_number_format"
    assert by_input["123"].code == "card_number_length"
    assert by_input["UC1:GARBAGE"].code == "credential_invalid"
    assert len(results) == 5  # the QR scan of the same card is not counted twice
    assert status(session_factory, good.id) == "issued"
    # Someone else's card number looks unknown.
    other = order(make_uow, tree.actors["chair_b"], tree.members["sidorova"]).ordered[0]
    run(make_uow, cards.approve, tree.actors["region_b"], [other.id])
    result = run(make_uow, cards.mark_by_numbers, chair, [_number(session_factory, other.id)], S.ISSUED)[0]
    assert result.code == "card_not_found" and not result.ok


def test_assigned_numbers_pass_stdnum_luhn(consenting, make_uow, session_factory):
    with make_uow() as uow:
        numbers = cards.assign_numbers(uow.session, "77", 2000) + cards.assign_numbers(uow.session, "77", 5)
        uow.commit()
    assert len(set(numbers)) == 2005
    assert all(luhn.is_valid(n) and len(n) == 16 for n in numbers)
    # A rolled-back reservation is not handed out again: serials only go up.
    with make_uow() as uow:
        lost = cards.assign_numbers(uow.session, "77", 3)
    with make_uow() as uow:
        after = cards.assign_numbers(uow.session, "77", 1)
        uow.commit()
    assert after[0] not in numbers
    assert int(after[0][8:15]) >= int(numbers[-1][8:15]) + 1
    del lost


def test_revocation_feed_is_incremental(consenting, make_uow, session_factory):
    tree = consenting
    chair = tree.actors["chair_a"]
    a, b = order(make_uow, chair, tree.members["ivanov"], tree.members["shchyolokova"]).ordered
    for card in (a, b):
        produce(make_uow, tree, card.id)
        run(make_uow, cards.mark_by_numbers, chair, [_number(session_factory, card.id)], S.ISSUED)
    run(make_uow, cards.report_loss, chair, a.id, S.LOST)
    with session_factory() as s:
        first, version = cards.revocations_since(s, 0)
    run(make_uow, cards.report_loss, chair, b.id, S.DAMAGED, "сломана")
    with session_factory() as s:
        second, version2 = cards.revocations_since(s, version)
        assert s.scalar(select(func.count()).select_from(Revocation)) == 2
    assert [r.card_id for r in first] == [a.id] and [r.card_id for r in second] == [b.id]
    assert version2 > version


def test_moving_an_organisation_moves_its_cards(consenting, make_uow, session_factory):
    """Cards keep a copy of their organisation's path: a subtree moved to another region is then
    seen (and approved) by the new region, and its unnumbered cards take the new region's code."""
    tree = consenting
    numbered, waiting = order(make_uow, tree.actors["chair_a"], tree.members["ivanov"],
                              tree.members["shchyolokova"]).ordered
    run(make_uow, cards.approve, tree.actors["region_a"], [numbered.id])
    run(make_uow, registry.move_organisation, tree.actors["admin"], tree.territorial_a, tree.region_b)
    with pytest.raises(NotFound):
        run(make_uow, cards.approve, tree.actors["region_a"], [waiting.id])
    run(make_uow, cards.approve, tree.actors["region_b"], [waiting.id])
    with session_factory() as s:
        primary = s.get(registry.Organisation, tree.primary_a)
        moved = [s.get(Card, numbered.id), s.get(Card, waiting.id)]
        assert primary.region_code == "21" and all(c.org_path == primary.path for c in moved)
        assert cardnumber.region_of(moved[0].number) == "23" and cardnumber.region_of(moved[1].number) == "21"
