"""Card coverage by regional organisation, in the shape of the union's Table 3: members on the
registry, plastic cards, virtual cards, members with the new card, % — for any date.

«On a date» means: memberships joined by then and not ended by then; cards whose last status
change up to the end of that day made them «Выдан» (handed to the member). Members are counted
once even with both a plastic and a virtual card.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from sqlalchemy import and_, exists, func, literal, or_, select, text
from sqlalchemy.orm import aliased

from unioncard import clock

from unioncard.errors import PermissionDenied
from unioncard.issuer.domain import CardKind, CardStatus
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

    @property
    def percent(self) -> float:
        return round(100 * self.with_card / self.members, 1) if self.members else 0.0


def _rows(session, actor: Actor):
    """The report's rows (regional organisations the actor sees, or for someone below the
    regional level their own organisation) and a subquery mapping every organisation within them
    to its row: (org_id, row_id)."""
    regional = aliased(Organisation)
    regions = {o.id: o for o in session.scalars(select(Organisation).where(Organisation.level == d.Level.REGIONAL))
               if actor.sees(o.path)}
    if regions:
        within = (select(Organisation.id.label("org_id"), regional.id.label("row_id"))
                  .join(regional, and_(regional.id.in_(regions), Organisation.path.startswith(regional.path))))
        return regions, within.subquery()
    # Someone below a region (a chairperson, a territorial officer) sees one row: their own
    # organisation with everything within it.
    own = session.scalar(select(Organisation).where(Organisation.path == actor.scope_path))
    if own is None:
        return {}, None
    within = select(Organisation.id.label("org_id"), literal(own.id).label("row_id")).where(
        Organisation.path.startswith(own.path))
    return {own.id: own}, within.subquery()


def coverage(session, actor: Actor, on: date) -> tuple[list[CoverageRow], CoverageRow]:
    """One row per regional organisation the actor sees; for an actor below the regional level,
    one row for their own organisation. Counted by the database, a row per report row: 4 M
    members and 3 M cards never travel to Python."""
    if not actor.can(d.Permission.VIEW_MEMBERS):
        raise PermissionDenied()
    regions, within = _rows(session, actor)
    rows = {rid: CoverageRow(rid, org.name) for rid, org in regions.items()}
    if within is None:
        return [], CoverageRow(None, "")
    if session.get_bind().dialect.name == "postgresql":
        # Counting distinct holders sorts 3 M rows: in memory it takes a second, spilled to disk four.
        session.execute(text("SET LOCAL work_mem = '128MB'"))
    members = session.execute(
        select(within.c.row_id, func.count()).select_from(Membership)
        .join(within, within.c.org_id == Membership.organisation_id)
        .where(Membership.join_date <= on, or_(Membership.leave_date.is_(None), Membership.leave_date > on))
        .group_by(within.c.row_id))
    for row_id, count in members:
        rows[row_id].members = count
    cards = _issued_cards(on)
    for row_id, plastic, virtual, holders in session.execute(
            select(within.c.row_id, func.count().filter(cards.c.kind == CardKind.PLASTIC.value),
                   func.count().filter(cards.c.kind == CardKind.VIRTUAL.value),
                   func.count(cards.c.person_id.distinct()))
            .select_from(cards).join(within, within.c.org_id == cards.c.organisation_id).group_by(within.c.row_id)):
        row = rows[row_id]
        row.plastic, row.virtual, row.with_card = plastic, virtual, holders
    totals = CoverageRow(None, "")
    for row in rows.values():
        totals.members += row.members
        totals.plastic += row.plastic
        totals.virtual += row.virtual
        totals.with_card += row.with_card
    ordered = sorted(rows.values(), key=lambda r: (-r.percent, r.name))
    return ordered, totals


def _issued_cards(on: date):
    """A subquery of (organisation_id, kind, person_id) of the cards that were «Выдан» at the end
    of ``on``. A card enters «Выдан» once and leaves it for good (issuer.domain.TRANSITIONS), so
    it was «Выдан» then if it entered by then and had not left by then. From today on that is
    simply its status now."""
    columns = (Card.organisation_id, Card.kind, Card.person_id)
    if on >= clock.today():
        return select(*columns).where(Card.status == CardStatus.ISSUED.value).subquery()
    end = datetime.combine(on + timedelta(days=1), time.min)
    left = aliased(CardEvent)
    return (select(*columns).join(CardEvent, CardEvent.card_id == Card.id)
            .where(CardEvent.to_status == CardStatus.ISSUED.value, CardEvent.at < end,
                   ~exists().where(left.card_id == Card.id, left.from_status == CardStatus.ISSUED.value,
                                   left.at < end))
            .subquery())
