"""Card orders and the card lifecycle.

``transition`` is the one place a card's status changes: check (legal? allowed for this actor?
in scope? reason given?) → change in the unit of work's transaction → card event + audit entry
(+ revocation feed entry) → ``CardStatusChanged`` announced, dispatched after commit.
"""

from __future__ import annotations

import gc
from contextlib import contextmanager
from dataclasses import dataclass, field

from sqlalchemy import Integer, any_, bindparam, exists, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from unioncard import clock
from unioncard.db import UnitOfWork, chunked
from unioncard.errors import Conflict, NotFound, PermissionDenied, UnionCardError
from unioncard.i18n import N_, translate
from unioncard.issuer import cardnumber, credential
from unioncard.issuer import domain as cd
from unioncard.issuer.domain import CardKind, CardStatus
from unioncard.issuer.models import Card, CardCredential, CardEvent, CardNumberCounter, RegionCardSettings, Revocation
from unioncard.registry import audit
from unioncard.registry import domain as rd
from unioncard.registry import services as registry
from unioncard.registry.actor import Actor
from unioncard.registry.models import Membership, Organisation, Person
from unioncard.tokens import new_token, token_hash


@dataclass(frozen=True)
class CardStatusChanged:
    card_id: int
    number: str | None
    from_status: str | None
    to_status: str
    reason: str | None


# --- numbers ------------------------------------------------------------------------------------

def assign_numbers(session: Session, region_code: str, count: int,
                   issuer_prefix: str = cardnumber.DEFAULT_ISSUER_PREFIX) -> list[str]:
    """Reserve ``count`` never-used serials for a region in one atomic step and return the numbers.

    The counter row is incremented with UPDATE … RETURNING: on PostgreSQL the row lock, on SQLite
    the write lock of BEGIN IMMEDIATE, make concurrent callers take disjoint ranges. Serials are
    never handed back, so a voided or rolled-back number is never issued again.
    """
    if count <= 0:
        return []
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    session.execute(insert(CardNumberCounter).values(region_code=region_code, next_serial=1)
                    .on_conflict_do_nothing(index_elements=["region_code"]))
    after = session.execute(
        update(CardNumberCounter).where(CardNumberCounter.region_code == region_code)
        .values(next_serial=CardNumberCounter.next_serial + count).returning(CardNumberCounter.next_serial)
    ).scalar_one()
    first = after - count
    if after - 1 > cardnumber.MAX_SERIAL:
        raise Conflict(N_("Card numbers for region %(region)s are exhausted"), code="card_numbers_exhausted",
                       region=region_code)
    return [cardnumber.build(issuer_prefix, region_code, serial) for serial in range(first, after)]


# --- reading ------------------------------------------------------------------------------------

def _visible(actor: Actor, card: Card | None) -> bool:
    return card is not None and actor.sees(card.org_path)


def _readable(actor: Actor, card: Card | None) -> bool:
    """A card as a page shows it (number, holder, history) is the member's personal data: only for
    those who may see the organisation's members. The bureau and event staff act on cards through
    their own services (batches, desks), never by opening any card they like."""
    return _visible(actor, card) and actor.can(rd.Permission.VIEW_MEMBERS)


def get_card(session: Session, actor: Actor, card_id: int, *, for_update: bool = False) -> Card:
    query = select(Card).where(Card.id == card_id)
    if for_update:
        query = query.with_for_update(of=Card)
    card = session.scalar(query)
    if not _readable(actor, card):
        raise NotFound(N_("Card not found"), code="card_not_found")
    return card


def get_card_by_number(session: Session, actor: Actor, number: str, *, for_update: bool = False) -> Card:
    """Raises a cardnumber.ValidationError for a mistyped number, NotFound for an unknown one."""
    number = cardnumber.validate(number)
    query = select(Card).where(Card.number == number)
    if for_update:
        query = query.with_for_update(of=Card)
    card = session.scalar(query)
    if not _readable(actor, card):
        raise NotFound(N_("No card with number %(number)s in your organisation"), code="card_not_found",
                       number=cardnumber.format(number))
    return card


def cards_of_members(session: Session, membership_ids) -> dict[int, list[Card]]:
    found: dict[int, list[Card]] = {}
    for chunk in chunked(sorted(set(membership_ids))):
        for card in session.scalars(select(Card).where(Card.membership_id.in_(chunk)).order_by(Card.id)):
            found.setdefault(card.membership_id, []).append(card)
    return found


def current_card(cards: list[Card], kind: CardKind = CardKind.PLASTIC) -> Card | None:
    """The member's card of this kind that is not in a terminal state, else the latest one."""
    of_kind = [c for c in cards if c.kind == kind]
    active = [c for c in of_kind if CardStatus(c.status) in cd.ACTIVE]
    return (active or of_kind or [None])[-1]


def list_cards(session: Session, actor: Actor, organisation_id: int, *, statuses=None, page: int = 1,
               per_page: int = 100) -> tuple[list[Card], int]:
    org = registry.get_organisation(session, actor, organisation_id)
    conditions = [Card.org_path.like(org.path + "%")]
    if statuses:
        conditions.append(Card.status.in_([CardStatus(s).value for s in statuses]))
    total = session.scalar(select(func.count()).select_from(Card).where(*conditions))
    rows = list(session.scalars(select(Card).where(*conditions).order_by(Card.id)
                                .offset((max(1, page) - 1) * per_page).limit(per_page)))
    return rows, total


def card_history(session: Session, card_id: int) -> list[CardEvent]:
    return list(session.scalars(select(CardEvent).where(CardEvent.card_id == card_id).order_by(CardEvent.id)))


# --- the state machine ----------------------------------------------------------------------------

def transition(uow: UnitOfWork, actor: Actor, card: Card, target: CardStatus, reason: str | None = None,
               *, system: bool = False) -> Card:
    """Move ``card`` to ``target``. ``system`` marks changes made by registry rules, which need
    no user permission (membership ended, consent withdrawn, automatic approval)."""
    return transition_many(uow, actor, [card], target, reason, system=system)[0]


def transition_many(uow: UnitOfWork, actor: Actor, cards: list[Card], target: CardStatus, reason: str | None = None,
                    *, system: bool = False, numbers: dict[int, str] | None = None) -> list[Card]:
    """The state machine: every card is checked first (all or none move), then the rows change in
    a few statements, each guarded by its lock version so a concurrent writer cannot be
    overwritten, then history, revocation feed, audit and events are written."""
    session = uow.session
    target = CardStatus(target)
    numbers = numbers or {}
    for card in cards:
        permission = cd.check(CardKind(card.kind), CardStatus(card.status), target, reason)
        if not system:
            if not actor.sees(card.org_path):
                raise NotFound(N_("Card not found"), code="card_not_found")
            if permission is None or not actor.can(permission):
                raise PermissionDenied()
    if not cards:
        return []
    now = clock.now()
    reason = (reason or "").strip()[:200] or None
    table = Card.__table__
    rows = []
    for card in cards:
        number = numbers.get(card.id, card.number)
        rows.append({"b_id": card.id, "b_version": card.lock_version, "status": target.value,
                     "status_changed_at": now, "status_reason": reason, "lock_version": card.lock_version + 1,
                     "number": number,
                     "link_token_hash": None if target in cd.REVOKING else card.link_token_hash})
    statement = (update(table).where(table.c.id == bindparam("b_id"), table.c.lock_version == bindparam("b_version"))
                 .values(status=bindparam("status"), status_changed_at=bindparam("status_changed_at"),
                         status_reason=bindparam("status_reason"), lock_version=bindparam("lock_version"),
                         number=bindparam("number"), link_token_hash=bindparam("link_token_hash")))
    session.flush()
    changed = session.connection().execute(statement, rows).rowcount
    if changed != len(rows):
        raise Conflict(N_("Someone else changed this card a moment ago; please look again"),
                       code="card_changed_concurrently")
    history, revocations, audit_rows = [], [], []
    for card, row in zip(cards, rows):
        current = card.status
        for key in ("status", "status_changed_at", "status_reason", "lock_version", "number", "link_token_hash"):
            set_committed_value(card, key, row[key])
        history.append(dict(card_id=card.id, from_status=current, to_status=target.value, at=now,
                            user_id=actor.user_id, actor=actor.login[:64], reason=reason))
        if target in cd.REVOKING and card.number:
            revocations.append(dict(card_id=card.id, number=card.number, status=target.value, reason=reason, at=now))
        audit_rows.append(audit.values(actor, "card.status", "card", card.id, card.organisation_id, number=card.number,
                                       from_status=current, to_status=target, reason=reason))
        uow.announce(CardStatusChanged(card.id, card.number, current, target.value, reason))
    session.execute(insert(CardEvent), history)
    if revocations:
        session.execute(insert(Revocation), revocations)
    audit.record_many(session, audit_rows)
    return cards


# --- orders ---------------------------------------------------------------------------------------

@dataclass
class Refusal:
    membership_id: int
    code: str
    message: str


@dataclass
class OrderResult:
    ordered: list[Card] = field(default_factory=list)
    refused: list[Refusal] = field(default_factory=list)


def auto_approves(session: Session, org: Organisation) -> bool:
    ids = rd.path_ids(org.path)
    if len(ids) < 2:
        return False
    settings = session.get(RegionCardSettings, ids[1])
    return bool(settings and settings.auto_approve)


def set_auto_approve(uow: UnitOfWork, actor: Actor, region_id: int, enabled: bool) -> None:
    region = registry.get_organisation(uow.session, actor, region_id)
    if not actor.can(rd.Permission.APPROVE_CARDS) or region.level != rd.Level.REGIONAL:
        raise PermissionDenied()
    settings = uow.session.get(RegionCardSettings, region.id) or RegionCardSettings(organisation_id=region.id)
    settings.auto_approve = enabled
    uow.session.add(settings)
    audit.record(uow.session, actor, "card.auto_approve", "organisation", region.id, region.id, enabled=enabled)


def order_cards(uow: UnitOfWork, actor: Actor, membership_ids, kind: CardKind = CardKind.PLASTIC, *,
                replaces: Card | None = None, issuer_prefix: str = cardnumber.DEFAULT_ISSUER_PREFIX) -> OrderResult:
    """Order a card for each member. Members that cannot get one are refused with the reason; the
    others are ordered (and approved at once where the region has switched on auto-approval)."""
    session = uow.session
    kind = CardKind(kind)
    # A member may order their own virtual card from their page (Actor.member); nothing else.
    self_service = actor.role == "member"
    if not actor.can(rd.Permission.ORDER_CARDS) and not (self_service and kind == CardKind.VIRTUAL):
        raise PermissionDenied()
    result = OrderResult()
    ids = list(dict.fromkeys(int(i) for i in membership_ids))
    # Lock the members' rows: two people ordering for one member at once are serialised, and the
    # second sees the first one's card below.
    memberships = {}
    for chunk in chunked(ids):
        for m in session.scalars(select(Membership).where(Membership.id.in_(chunk)).with_for_update(of=Membership)):
            memberships[m.id] = m
    consents = registry.current_consents_of(session, [m.person_id for m in memberships.values()])
    existing = cards_of_members(session, ids)
    orgs: dict[int, Organisation] = {}
    now = clock.now()
    refused_audit = []

    def refuse(membership_id, code, message, **params):
        result.refused.append(Refusal(membership_id, code, translate(message, **params)))

    new_rows = []
    for membership_id in ids:
        membership = memberships.get(membership_id)
        if membership is None or not (actor.sees(membership.org_path) or actor.is_member(membership.person_id)):
            # Someone else's member: answer as if they did not exist, and keep a trace of the attempt.
            refused_audit.append(audit.values(actor, "card.order_refused", "membership", membership_id,
                                              actor.organisation_id, code="member_not_found"))
            refuse(membership_id, "member_not_found", N_("Member not found"))
            continue
        if not membership.is_active:
            refuse(membership_id, "member_not_active", N_("This person is no longer a member"))
            continue
        if rd.ConsentSection.PROCESSING not in consents.get(membership.person_id, {}):
            refuse(membership_id, "consent_missing",
                   N_("There is no consent to personal-data processing (section 1): a card cannot be ordered"))
            continue
        active = [c for c in existing.get(membership_id, []) if c.kind == kind and CardStatus(c.status) in cd.ACTIVE]
        if active:
            refuse(membership_id, "card_already_active", N_("This member already has a card (%(status)s)"),
                   status=translate(cd.STATUS_LABELS[CardStatus(active[0].status)]))
            continue
        org = orgs.get(membership.organisation_id) or session.get(Organisation, membership.organisation_id)
        orgs[org.id] = org
        new_rows.append(dict(kind=kind.value, status=CardStatus.ORDERED.value, membership_id=membership.id,
                             person_id=membership.person_id, organisation_id=org.id, org_path=membership.org_path,
                             region_code=org.region_code or "00", ordered_by=actor.user_id, ordered_at=now,
                             status_changed_at=now, replaces_card_id=replaces.id if replaces else None,
                             lock_version=1))
    audit.record_many(session, refused_audit)
    if not new_rows:
        return result
    table = Card.__table__
    card_ids = list(session.execute(insert(table).returning(table.c.id, sort_by_parameter_order=True),
                                    new_rows).scalars())
    session.execute(insert(CardEvent), [
        dict(card_id=card_id, from_status=None, to_status=CardStatus.ORDERED.value, at=now, user_id=actor.user_id,
             actor=actor.login[:64], reason=f"reissue of {replaces.number}" if replaces else None)
        for card_id in card_ids])
    audit.record_many(session, [
        audit.values(actor, "card.order", "card", card_id, row["organisation_id"], membership_id=row["membership_id"],
                     kind=kind, replaces=row["replaces_card_id"]) for card_id, row in zip(card_ids, new_rows)])
    for card_id in card_ids:
        uow.announce(CardStatusChanged(card_id, None, None, CardStatus.ORDERED.value, None))
    result.ordered = _load_cards(session, card_ids)
    auto_by_org = {org_id: auto_approves(session, org) for org_id, org in orgs.items()}
    auto = [card for card in result.ordered if auto_by_org[card.organisation_id]]
    if auto:
        _approve(uow, Actor.system("auto-approval"), auto, issuer_prefix, system=True)
    return result


def _load_cards(session: Session, card_ids, *, for_update: bool = False) -> list[Card]:
    """Cards in the order of ``card_ids``, a thousand per query."""
    ids = list(card_ids)
    found: dict[int, Card] = {}
    for chunk in chunked(ids):
        query = select(Card).where(Card.id.in_(chunk))
        if for_update:
            query = query.with_for_update(of=Card)
        for card in session.scalars(query):
            found[card.id] = card
    return [found[i] for i in ids if i in found]


def _cards_for(session: Session, actor: Actor, card_ids) -> list[Card]:
    """Locked cards the actor can see; any other id is 'not found', as if it did not exist."""
    ids = list(dict.fromkeys(int(i) for i in card_ids))
    cards = _load_cards(session, ids, for_update=True)
    if len(cards) != len(ids) or not all(_visible(actor, c) for c in cards):
        raise NotFound(N_("Card not found"), code="card_not_found")
    return cards


def _approve(uow: UnitOfWork, actor: Actor, cards: list[Card], issuer_prefix: str, system: bool = False) -> None:
    # Numbers are reserved before the state machine checks the cards; if it refuses, the caller's
    # rollback takes the reservation back with everything else.
    by_region: dict[str, list[Card]] = {}
    for card in cards:
        by_region.setdefault(card.region_code, []).append(card)
    numbers: dict[int, str] = {}
    for region_code, region_cards in sorted(by_region.items()):
        for card, number in zip(region_cards, assign_numbers(uow.session, region_code, len(region_cards),
                                                              issuer_prefix)):
            numbers[card.id] = number
    transition_many(uow, actor, cards, CardStatus.APPROVED, system=system, numbers=numbers)


def approve(uow: UnitOfWork, actor: Actor, card_ids, *,
            issuer_prefix: str = cardnumber.DEFAULT_ISSUER_PREFIX) -> list[Card]:
    """Approve orders (all or none) and give each card its number."""
    cards = _cards_for(uow.session, actor, card_ids)
    if not actor.can(rd.Permission.APPROVE_CARDS):
        raise PermissionDenied()
    _approve(uow, actor, cards, issuer_prefix)
    return cards


def reject(uow: UnitOfWork, actor: Actor, card_ids, reason: str) -> list[Card]:
    return transition_many(uow, actor, _cards_for(uow.session, actor, card_ids), CardStatus.REJECTED, reason)


def cancel(uow: UnitOfWork, actor: Actor, card_id: int, reason: str | None = None) -> Card:
    card = get_card(uow.session, actor, card_id, for_update=True)
    return transition(uow, actor, card, CardStatus.CANCELLED, reason)


def advance(uow: UnitOfWork, actor: Actor, card_ids, target: CardStatus, reason: str | None = None) -> list[Card]:
    """Production and delivery steps for many cards at once (all or none)."""
    return transition_many(uow, actor, _cards_for(uow.session, actor, card_ids), target, reason)


@dataclass
class MarkResult:
    number: str
    ok: bool
    code: str | None = None
    message: str | None = None
    card: Card | None = None


def mark_by_numbers(uow: UnitOfWork, actor: Actor, numbers, outcome: CardStatus,
                    reason: str | None = None) -> list[MarkResult]:
    """«Выдан» or «Отказ» for cards given by number (typed or scanned), each on its own: a wrong
    number is reported and the others are still marked. The card row is locked first, so two
    desks marking one card at once are serialised and the second one is told it is already done."""
    outcome = CardStatus(outcome)
    if outcome not in (CardStatus.ISSUED, CardStatus.REFUSED):
        raise ValueError(outcome)
    results = []
    seen = set()
    for raw in numbers:
        raw = str(raw).strip()
        if not raw:
            continue
        try:
            number = cardnumber.validate(credential.number_from_scan(raw))
        except UnionCardError as exc:
            results.append(MarkResult(raw, False, exc.code, exc.render()))
            continue
        if number in seen:
            continue
        seen.add(number)
        try:
            with uow.session.begin_nested():
                card = get_card_by_number(uow.session, actor, number, for_update=True)
                transition(uow, actor, card, outcome, reason)
            results.append(MarkResult(cardnumber.format(number), True, card=card))
        except UnionCardError as exc:
            results.append(MarkResult(cardnumber.format(number), False, exc.code, exc.render()))
    return results


def report_loss(uow: UnitOfWork, actor: Actor, card_id: int, what: CardStatus, note: str | None = None) -> Card:
    """Lost, stolen or damaged: recorded, then the card is blocked at once (in the same transaction)."""
    what = CardStatus(what)
    if what not in cd.LOSS:
        raise ValueError(what)
    card = get_card(uow.session, actor, card_id, for_update=True)
    transition(uow, actor, card, what, note)
    return transition(uow, actor, card, CardStatus.BLOCKED, note or translate(cd.STATUS_LABELS[what]))


def reissue(uow: UnitOfWork, actor: Actor, card_id: int, *,
            issuer_prefix: str = cardnumber.DEFAULT_ISSUER_PREFIX) -> OrderResult:
    """A new order for a blocked card's member (same kind), linked to the card it replaces."""
    card = get_card(uow.session, actor, card_id)
    if CardStatus(card.status) != CardStatus.BLOCKED:
        raise Conflict(N_("Only a blocked card can be reissued: report it lost, stolen or damaged first"),
                       code="card_not_blocked")
    return order_cards(uow, actor, [card.membership_id], CardKind(card.kind), replaces=card,
                       issuer_prefix=issuer_prefix)


def void_and_remake(uow: UnitOfWork, actor: Actor, card: Card, reason: str, *,
                    issuer_prefix: str = cardnumber.DEFAULT_ISSUER_PREFIX) -> tuple[Card | None, Refusal | None]:
    """A card spoiled in production: void it (its number goes on the revocation feed and is never
    used again) and make the member a new card under a new number, already in production. If the
    member can no longer have a card (membership ended, consent withdrawn), nothing is remade and
    the refusal says why."""
    if not actor.can(rd.Permission.PRODUCE_CARDS):
        raise PermissionDenied()
    transition(uow, actor, card, CardStatus.VOID, reason)
    system = Actor.system(f"remake:{actor.login}"[:64])
    result = order_cards(uow, system, [card.membership_id], CardKind(card.kind), replaces=card,
                         issuer_prefix=issuer_prefix)
    if not result.ordered:
        return None, result.refused[0]
    remade = result.ordered[0]
    if CardStatus(remade.status) == CardStatus.ORDERED:
        _approve(uow, system, [remade], issuer_prefix, system=True)
    transition(uow, system, remade, CardStatus.IN_PRODUCTION, f"remake of {card.number}", system=True)
    return remade, None


# --- registry rules -------------------------------------------------------------------------------

def revoke_cards_of_person(uow: UnitOfWork, person_id: int, reason: str, *, cancel_orders: bool) -> list[Card]:
    """Cards of a person that are not in a terminal state: orders not yet in production are
    cancelled, every other card is revoked (and enters the revocation feed)."""
    system = Actor.system("registry-rules")
    changed = []
    cards = uow.session.scalars(select(Card).where(Card.person_id == person_id).with_for_update(of=Card)
                                .order_by(Card.id))
    for card in cards:
        status = CardStatus(card.status)
        if status not in cd.ACTIVE:
            continue
        if cancel_orders and status in (CardStatus.ORDERED, CardStatus.APPROVED):
            transition(uow, system, card, CardStatus.CANCELLED, reason, system=True)
        else:
            transition(uow, system, card, CardStatus.REVOKED, reason, system=True)
        changed.append(card)
    return changed


# --- revocation feed ------------------------------------------------------------------------------

def revocations_since(session: Session, version: int = 0, limit: int = 10_000) -> tuple[list[Revocation], int]:
    """Entries after ``version`` (oldest first) and the version to ask from next time."""
    rows = list(session.scalars(select(Revocation).where(Revocation.id > version).order_by(Revocation.id).limit(limit)))
    return rows, (rows[-1].id if rows else version)


# --- signed credential ----------------------------------------------------------------------------

def ensure_credential(uow: UnitOfWork, card: Card, signer) -> str:
    """The card's signed credential (QR text), made (and kept) the first time it is needed; the
    same record goes into the QR code of the plastic card, its chip and the virtual card."""
    return ensure_credentials(uow, [card], signer)[card.id]


def credential_on_view(uow: UnitOfWork, card: Card, open_signer) -> str | None:
    """The card's credential for a page that shows its QR: made (and committed) on first view;
    None when no keys are set up (``open_signer`` raises), so the page shows the number alone."""
    if card.credential:
        return card.credential
    try:
        credential = ensure_credential(uow, card, open_signer())
        uow.commit()
    except UnionCardError:
        uow.rollback()
        return None
    return credential


# Cards read, signed and stored together: big enough that a query's cost is spread, small enough
# that the cores have the next chunk to sign while this one is stored.
CREDENTIAL_CHUNK = 5000
_FORKED_SIGNER = None


def _sign_in_child(inputs: list[tuple]) -> list[str]:
    return credential.issue_many(_FORKED_SIGNER, inputs)


class _Done:
    """A result already at hand, shaped like multiprocessing's AsyncResult."""

    def __init__(self, value):
        self.value = value

    def get(self):
        return self.value


@contextmanager
def _signing(signer, workers: int, total: int):
    """A function that takes a chunk of credential inputs and gives back something whose
    ``get()`` is their QR texts. On ``workers`` forked cores when the store allows it: the children
    inherit the software store's keys in memory (nothing secret is sent anywhere) and sign while this
    process reads the next chunk and stores the last. A PKCS#11 session is not to be shared across a
    fork: such stores, and small batches, sign in this process."""
    global _FORKED_SIGNER
    if workers <= 1 or not getattr(signer, "fork_safe", False) or total < 2000:
        yield lambda inputs: _Done(credential.issue_many(signer, inputs))
        return
    import multiprocessing

    _FORKED_SIGNER = signer
    # What the process holds now (a run's 100 000 loaded cards) is left out of garbage collection
    # while the children live: collecting it touched every object, a quarter of the batch's time
    # here and copying the children's inherited pages.
    gc.freeze()
    try:
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            yield lambda inputs: pool.apply_async(_sign_in_child, (inputs,))
    finally:
        _FORKED_SIGNER = None
        gc.unfreeze()


def _store_credentials(session: Session, made: dict[int, str], card_ids: list[int], texts: list[str]) -> None:
    """Into ``made`` and the card_credential table: a bureau batch's chunk by COPY (PostgreSQL);
    a few (a virtual card's page opened twice at once) by an insert that leaves a credential made
    meanwhile as it is: signing is deterministic, so both texts are the same."""
    rows = list(zip(card_ids, texts))
    made.update(rows)
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    if dialect != "postgresql" or len(rows) < 1000:
        statement = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(CardCredential)
        session.connection().execute(statement.on_conflict_do_nothing(),
                                     [{"card_id": i, "credential": t} for i, t in rows])
        return
    with session.connection().connection.driver_connection.cursor() as cursor:
        with cursor.copy("COPY card_credential (card_id, credential) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)


def make_credentials(session: Session, card_ids, signer, *, workers: int = 1) -> dict[int, str]:
    """Signed credentials for the cards among ``card_ids`` that have none yet, made and stored
    in bulk: what each needs is read with plain queries (no ORM objects), signed on ``workers``
    cores, stored by COPY into card_credential (PostgreSQL). Reading, signing and storing
    overlap: the children sign one chunk while this process reads the next. A bureau run makes its
    whole batch's this way before printing. Returns {card id: credential} of the ones made."""
    made_already = exists().where(CardCredential.card_id == Card.id)
    # Per card by its index: a join against the chunk's events was planned, once card_credential's
    # statistics changed, as a scan of every event testing each against the 5 000 ids (5 s a chunk).
    approved_at = (select(func.min(CardEvent.at)).where(CardEvent.card_id == Card.id,
                                                        CardEvent.to_status == CardStatus.APPROVED.value)
                   .scalar_subquery())
    postgres = session.get_bind().dialect.name == "postgresql"
    card_ids = list(card_ids)
    now = clock.now()
    made: dict[int, str] = {}
    pending = []
    session.flush()
    with _signing(signer, workers, len(card_ids)) as sign:
        for chunk in chunked(card_ids, CREDENTIAL_CHUNK):
            # PostgreSQL takes the ids as one array parameter: 5 000 placeholders of an IN list cost
            # more on the client than the query does on the server.
            if postgres:
                card_in = Card.id == any_(bindparam("ids", list(chunk), type_=postgresql.ARRAY(Integer)))
            else:
                card_in = Card.id.in_(chunk)
            rows = session.execute(
                select(Card.id, Card.number, Person.surname, Person.given_name, Person.patronymic, Card.region_code,
                       approved_at.label("at"), Card.kind)
                .join(Person, Person.id == Card.person_id)
                .where(card_in, ~made_already)).all()
            ids_read, inputs = [], []
            for card_id, number, surname, given_name, patronymic, region_code, approved, kind in rows:
                if not number:
                    raise Conflict(N_("The card has no number yet: it is given on approval"),
                                   code="card_not_numbered")
                ids_read.append(card_id)
                # The issue day is the UTC date (docs/formats.md: a verifier reads it so).
                inputs.append((number, surname, given_name, patronymic, region_code, (approved or now).date(), kind))
            pending.append((ids_read, sign(inputs)))
            # Store what is signed by now while later chunks are still being signed.
            while len(pending) > workers:
                ids_done, texts = pending.pop(0)
                _store_credentials(session, made, ids_done, texts.get())
        for ids_done, texts in pending:
            _store_credentials(session, made, ids_done, texts.get())
    return made


def ensure_credentials(uow: UnitOfWork, cards: list[Card], signer, *, workers: int = 1) -> dict[int, str]:
    """Credentials of loaded cards, made (by :func:`make_credentials`) for those without one."""
    missing = [card for card in cards if not card.credential]
    if missing:
        made = make_credentials(uow.session, [card.id for card in missing], signer, workers=workers)
        for card in missing:
            set_committed_value(card, "credential", made.get(card.id, card.credential))
    return {card.id: card.credential for card in cards}


# --- virtual card link ----------------------------------------------------------------------------

def new_private_link(uow: UnitOfWork, actor: Actor, card_id: int) -> str:
    """A new private link token for a virtual card; any earlier link stops working."""
    card = get_card(uow.session, actor, card_id, for_update=True)
    if card.kind != CardKind.VIRTUAL or CardStatus(card.status) != CardStatus.ISSUED:
        raise Conflict(N_("A private link exists only for an issued virtual card"), code="card_link_not_available")
    if not actor.can(rd.Permission.HAND_OUT_CARDS):
        raise PermissionDenied()
    token = new_token()
    card.link_token_hash = token_hash(token)
    audit.record(uow.session, actor, "card.link_new", "card", card.id, card.organisation_id)
    return token


def revoke_private_link(uow: UnitOfWork, actor: Actor, card_id: int) -> None:
    card = get_card(uow.session, actor, card_id, for_update=True)
    if not actor.can(rd.Permission.HAND_OUT_CARDS):
        raise PermissionDenied()
    card.link_token_hash = None
    audit.record(uow.session, actor, "card.link_revoke", "card", card.id, card.organisation_id)


def card_by_private_link(session: Session, token: str) -> Card | None:
    if not token or len(token) > 64:
        return None
    card = session.scalar(select(Card).where(Card.link_token_hash == token_hash(token)))
    if card is None or CardStatus(card.status) != CardStatus.ISSUED:
        return None
    return card
