"""Two clerks registering the same new person at the same moment, in two organisations."""

import threading
import time
from datetime import date

from sqlalchemy import func, select

from unioncard.errors import Conflict
from unioncard.registry import services
from unioncard.registry.models import Membership, Person
from tests.support import person


def test_simultaneous_registration_of_one_person_creates_one_record(tree, make_uow, session_factory):
    """A has registered but not yet committed when B registers the same person: B must wait for
    A and then be refused, not create a second record."""
    a_registered = threading.Event()
    outcomes = {}

    def register(name, org_id, hold_seconds):
        try:
            with make_uow() as uow:
                if name == "b":
                    a_registered.wait(10)
                services.register_member(uow, tree.actors["admin"], org_id,
                                         person("Одновременная", "Ольга", None, date(1990, 1, 1)),
                                         category="working", join_date=date(2020, 1, 1))
                if name == "a":
                    a_registered.set()
                    time.sleep(hold_seconds)  # B runs while A's transaction is open
                uow.commit()
            outcomes[name] = "ok"
        except Conflict as exc:
            outcomes[name] = exc.code

    threads = [threading.Thread(target=register, args=("a", tree.primary_a, 0.7)),
               threading.Thread(target=register, args=("b", tree.primary_b, 0))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert outcomes == {"a": "ok", "b": "registered_elsewhere"}
    with session_factory() as s:
        people = s.scalars(select(Person).where(Person.surname == "Одновременная")).all()
        assert len(people) == 1
        assert s.scalar(select(func.count()).select_from(Membership).where(
            Membership.person_id == people[0].id, Membership.is_active)) == 1
