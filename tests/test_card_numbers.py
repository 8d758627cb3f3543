"""Card numbers: the python-stdnum-style module, and atomic, never-reused assignment, checked with
hypothesis and with two processes assigning 50 000 numbers each at the same time."""

from __future__ import annotations

import doctest
import multiprocessing
import threading
import time
from datetime import date

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from stdnum import luhn

from unioncard import db
from unioncard.issuer import cardnumber
from unioncard.issuer import domain as cd
from unioncard.issuer import services as cards
from unioncard.issuer.models import Card, CardEvent
from unioncard.registry import services as registry

digits = st.text(alphabet="0123456789", min_size=1, max_size=1)
serials = st.integers(min_value=1, max_value=cardnumber.MAX_SERIAL)
regions = st.integers(min_value=0, max_value=99).map(lambda n: f"{n:02d}")
prefixes = st.integers(min_value=0, max_value=99).map(lambda n: f"9643{n:02d}")


def test_module_doctests():
    assert doctest.testmod(cardnumber).failed == 0


@given(prefixes, regions, serials)
def test_built_numbers_validate_and_format_round_trips(prefix, region, serial):
    number = cardnumber.build(prefix, region, serial)
    assert luhn.is_valid(number) and len(number) == 16
    formatted = cardnumber.format(number)
    assert formatted.count(" ") == 3 and cardnumber.validate(formatted) == number
    assert cardnumber.validate(formatted.replace(" ", "-")) == number
    assert cardnumber.validate(number, issuer_prefix=prefix) == number
    assert cardnumber.region_of(number) == region


@given(prefixes, regions, serials, st.integers(min_value=0, max_value=15), st.integers(min_value=1, max_value=9))
def test_any_single_digit_typo_is_caught(prefix, region, serial, position, delta):
    number = cardnumber.build(prefix, region, serial)
    typo = number[:position] + str((int(number[position]) + delta) % 10) + number[position + 1:]
    with pytest.raises(cardnumber.InvalidChecksum):
        cardnumber.validate(typo)


@pytest.mark.parametrize("text,error", [
    ("9643 0123 0000 001", cardnumber.InvalidLength),
    ("96430123000000141", cardnumber.InvalidLength),
    ("9643 O123 0000 0014", cardnumber.InvalidFormat),  # a letter O typed for a zero
    ("", cardnumber.InvalidFormat),
])
def test_bad_numbers_say_what_is_wrong(text, error):
    with pytest.raises(error) as info:
        cardnumber.validate(text)
    assert info.value.code.startswith("card_number_")
    assert not cardnumber.is_valid(text)


def test_full_width_digits_from_a_phone_keyboard_are_read_as_digits():
    assert cardnumber.validate("９６４３ ０１２３ ００００ ００１４") == "9643012300000014"


def test_foreign_issuer_prefix():
    other = cardnumber.build("964399", "23", 5)
    with pytest.raises(cardnumber.InvalidComponent) as info:
        cardnumber.validate(other, issuer_prefix="964301")
    assert "964301" in info.value.render("ru")


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(counts=st.lists(st.integers(min_value=1, max_value=400), min_size=1, max_size=6), region=regions)
def test_assignment_is_consecutive_valid_and_unique(make_uow, counts, region):
    with make_uow() as uow:
        numbers = []
        for count in counts:
            numbers += cards.assign_numbers(uow.session, region, count)
        uow.commit()
    assert len(numbers) == sum(counts) == len(set(numbers))
    assert all(luhn.is_valid(n) and n[6:8] == region for n in numbers)
    serial_list = [int(n[8:15]) for n in numbers]
    assert serial_list == list(range(serial_list[0], serial_list[0] + len(numbers)))


def _assign_in_process(url, region, total, block, out_path):
    engine = db.make_engine(url)
    factory = db.make_session_factory(engine)
    numbers = []
    while len(numbers) < total:
        with db.UnitOfWork(factory) as uow:
            numbers += cards.assign_numbers(uow.session, region, min(block, total - len(numbers)))
            uow.commit()
    engine.dispose()
    with open(out_path, "w") as handle:
        handle.write("\n".join(numbers))


def test_two_processes_assigning_50000_each_never_collide(database_url, tmp_path):
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=_assign_in_process,
                                 args=(database_url, "23", 50_000, block, tmp_path / f"p{i}.txt"))
                 for i, block in enumerate((997, 500))]
    for p in processes:
        p.start()
    for p in processes:
        p.join(600)
        assert p.exitcode == 0
    numbers = [line for i in range(2) for line in (tmp_path / f"p{i}.txt").read_text().split("\n")]
    assert len(numbers) == 100_000
    assert len(set(numbers)) == 100_000
    assert all(luhn.is_valid(n) for n in numbers)


def test_two_desks_marking_one_card_at_the_same_moment(tree, make_uow, session_factory, system):
    """Both press «Выдан» for the same card at once: exactly one succeeds, the other is told the
    card is already issued, and there is one history entry."""
    with make_uow() as uow:
        registry.give_consent(uow, system, tree.members["ivanov"], "processing", date(2020, 1, 1), "paper")
        uow.commit()
    with make_uow() as uow:
        card = cards.order_cards(uow, tree.actors["chair_a"], [tree.members["ivanov"]]).ordered[0]
        uow.commit()
    for actor, target in (("region_a", cd.CardStatus.APPROVED), ("bureau", cd.CardStatus.IN_PRODUCTION),
                          ("bureau", cd.CardStatus.PRODUCED), ("bureau", cd.CardStatus.SHIPPED),
                          ("region_a", cd.CardStatus.DELIVERED)):
        with make_uow() as uow:
            if target == cd.CardStatus.APPROVED:
                cards.approve(uow, tree.actors[actor], [card.id])
            else:
                cards.advance(uow, tree.actors[actor], [card.id], target)
            uow.commit()
    with session_factory() as s:
        number = s.get(Card, card.id).number
    barrier = threading.Barrier(2)
    results = {}

    def desk(name, actor):
        with make_uow() as uow:
            barrier.wait(10)
            outcome = cards.mark_by_numbers(uow, tree.actors[actor], [number], cd.CardStatus.ISSUED)[0]
            time.sleep(0.2)  # hold the transaction open a moment, as a slow desk would
            uow.commit()
        results[name] = outcome

    threads = [threading.Thread(target=desk, args=("one", "chair_a")),
               threading.Thread(target=desk, args=("two", "region_a"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(r.ok for r in results.values()) == [False, True]
    loser = next(r for r in results.values() if not r.ok)
    assert loser.code == "card_transition_not_allowed" and "Выдан" in loser.message
    with session_factory() as s:
        issued = s.scalars(select(CardEvent).where(CardEvent.card_id == card.id,
                                                   CardEvent.to_status == "issued")).all()
        assert len(issued) == 1 and s.get(Card, card.id).status == "issued"


def test_two_chairpersons_ordering_for_one_member_at_once(tree, make_uow, session_factory, system):
    with make_uow() as uow:
        registry.give_consent(uow, system, tree.members["ivanov"], "processing", date(2020, 1, 1), "paper")
        uow.commit()
    barrier = threading.Barrier(2)
    results = []

    def chair(actor):
        with make_uow() as uow:
            barrier.wait(10)
            result = cards.order_cards(uow, tree.actors[actor], [tree.members["ivanov"]])
            time.sleep(0.2)
            uow.commit()
        results.append(result)

    threads = [threading.Thread(target=chair, args=(a,)) for a in ("chair_a", "region_a")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(len(r.ordered) for r in results) == [0, 1]
    assert [r.refused[0].code for r in results if r.refused] == ["card_already_active"]
    with session_factory() as s:
        assert s.scalar(select(func.count()).select_from(Card)) == 1
