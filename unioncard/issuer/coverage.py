"""Card coverage by regional organisation, in the shape of the union's Table 3: members on the
registry, plastic cards, virtual cards, members with the new card, % — for any date.

«On a date» means: memberships joined by then and not ended by then; cards whose last status
change up to the end of that day made them «Выдан» (handed to the member). Members are counted
once even with both a plastic and a virtual card.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from sqlalchemy import and_, func, or_, select

from unioncard.errors import PermissionDenied
from unioncard.issuer.domain import CardStatus
from unioncard.issuer.models import Card, CardEvent
from unioncard.registry import domain as d
from unioncard.registry.actor import Actor
from unioncard.registry.models import Membership, Organisation


@dataclass
class CoverageRow:
    organisation_id: int | None
    name: str
    members: int = 0
    plastic: int = 0
    virtual: int = 0
    with_card: int = 0
    people: set = field(default_factory=set, repr=False)

    @property
    def percent(self) -> float:
        return round(100 * self.with_card / self.members, 1) if self.members else 0.0


def _regions(session, actor: Actor) -> tuple[dict[int, Organisation], dict[int, int]]:
    """Regional organisations the actor sees, and organisation id → its region's id."""
    regions = {o.id: o for o in session.scalars(select(Organisation).where(Organisation.level == d.Level.REGIONAL))
               if actor.sees(o.path)}
    region_of = {}
    if not regions:
        # Someone below a region (a chairperson, a territorial officer) sees one row: their own
        # organisation with everything within it.
        own = session.scalar(select(Organisation).where(Organisation.path == actor.scope_path))
        if own is None:
            return {}, {}
        for organisation_id, in session.execute(select(Organisation.id).where(
                Organisation.path.startswith(own.path))):
            region_of[organisation_id] = own.id
        return {own.id: own}, region_of
    for organisation_id, path in session.execute(select(Organisation.id, Organisation.path)):
        ids = d.path_ids(path)
        if len(ids) > 1 and ids[1] in regions:
            region_of[organisation_id] = ids[1]
    return regions, region_of


def coverage(session, actor: Actor, on: date) -> tuple[list[CoverageRow], CoverageRow]:
    """One row per regional organisation the actor sees; for an actor below the regional level,
    one row for their own organisation."""
    if not actor.can(d.Permission.VIEW_MEMBERS):
        raise PermissionDenied()
    regions, region_of = _regions(session, actor)
    rows = {rid: CoverageRow(rid, org.name) for rid, org in regions.items()}
    members = session.execute(
        select(Membership.organisation_id, func.count()).where(
            Membership.join_date <= on, or_(Membership.leave_date.is_(None), Membership.leave_date > on))
        .group_by(Membership.organisation_id))
    for organisation_id, count in members:
        region = region_of.get(organisation_id)
        if region is not None:
            rows[region].members += count
    for organisation_id, kind, person_id in _issued_cards(session, on):
        region = region_of.get(organisation_id)
        if region is None:
            continue
        row = rows[region]
        if kind == "plastic":
            row.plastic += 1
        else:
            row.virtual += 1
        row.people.add(person_id)
    totals = CoverageRow(None, "")
    for row in rows.values():
        row.with_card = len(row.people)
        row.people = set()
        totals.members += row.members
        totals.plastic += row.plastic
        totals.virtual += row.virtual
        totals.with_card += row.with_card
    ordered = sorted(rows.values(), key=lambda r: (-r.percent, r.name))
    return ordered, totals


def _issued_cards(session, on: date):
    """(organisation id, kind, person id) of the cards that were «Выдан» at the end of ``on``."""
    end = datetime.combine(on + timedelta(days=1), time.min)
    last = (select(CardEvent.card_id, func.max(CardEvent.id).label("event_id"))
            .where(CardEvent.at < end).group_by(CardEvent.card_id).subquery())
    return session.execute(
        select(Card.organisation_id, Card.kind, Card.person_id)
        .join(last, last.c.card_id == Card.id)
        .join(CardEvent, and_(CardEvent.id == last.c.event_id, CardEvent.to_status == CardStatus.ISSUED.value)))
