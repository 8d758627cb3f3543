"""Partner keys (made, listed, revoked by an administrator) and the verification itself.

The verification path is the one partners call at their cash desks thousands of times an hour,
so it is two prepared Core statements: one read of the card with its holder, one insert into the
query log; no ORM session or objects are built for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from datetime import date, datetime, timedelta

from sqlalchemy import Connection, and_, bindparam, exists, func, insert, select, true
from sqlalchemy.orm import Session

from unioncard import clock, tokens
from unioncard.errors import NotFound, ValidationError
from unioncard.i18n import N_
from unioncard.issuer import credential as credentials
from unioncard.issuer.models import Card
from unioncard.partner.domain import CardFacts, NameQuery, Outcome, PartnerKind, judge
from unioncard.partner.models import PartnerKey, PartnerQuery
from unioncard.registry import audit
from unioncard.registry.actor import Actor
from unioncard.registry.domain import ConsentSection, Permission
from unioncard.registry.models import Consent, Membership, Person

KEY_PREFIX = "ucp_"
DEFAULT_PER_MINUTE = 120
MAX_PER_MINUTE = 1_000_000


@dataclass(frozen=True)
class Partner:
    """The partner behind a presented key, as a request needs it."""

    key_id: int
    name: str
    kind: PartnerKind
    per_minute: int


@dataclass(frozen=True)
class Answer:
    valid: bool
    checked_at: datetime
    reference: str
    outcome: Outcome          # for the union's log and tests; never sent to the partner


# --- keys ---------------------------------------------------------------------------------------

def _require_admin(actor: Actor) -> None:
    if not actor.can(Permission.MANAGE_PARTNERS):
        raise NotFound()


def create_key(session: Session, actor: Actor, partner_name: str, kind: str,
               per_minute: int = DEFAULT_PER_MINUTE) -> tuple[PartnerKey, str]:
    """A new key; the key text is returned once and never stored."""
    _require_admin(actor)
    partner_name = " ".join((partner_name or "").split())
    if not partner_name:
        raise ValidationError(N_("Enter the partner's name"), code="partner_name_required")
    if len(partner_name) > 200:
        raise ValidationError(N_("The partner's name is too long"), code="partner_name_too_long")
    try:
        kind = PartnerKind(kind)
    except ValueError:
        raise ValidationError(N_("Choose the kind of partner"), code="partner_kind_invalid") from None
    if not 1 <= int(per_minute) <= MAX_PER_MINUTE:
        raise ValidationError(N_("The limit must be between 1 and %(most)s queries a minute"),
                              code="partner_limit_invalid", most=MAX_PER_MINUTE)
    text = KEY_PREFIX + tokens.new_token(30)
    key = PartnerKey(partner_name=partner_name, kind=kind, key_prefix=text[:12], key_hash=tokens.token_hash(text),
                     per_minute=int(per_minute), created_at=clock.now(), created_by=actor.user_id)
    session.add(key)
    session.flush()
    audit.record(session, actor, "partner_key.create", "partner_key", key.id, partner=partner_name, kind=str(kind),
                 per_minute=int(per_minute))
    return key, text


def revoke_key(session: Session, actor: Actor, key_id: int) -> PartnerKey:
    _require_admin(actor)
    key = session.get(PartnerKey, key_id)
    if key is None:
        raise NotFound()
    if key.revoked_at is None:
        key.revoked_at = clock.now()
        key.revoked_by = actor.user_id
        audit.record(session, actor, "partner_key.revoke", "partner_key", key.id, partner=key.partner_name)
    return key


@dataclass(frozen=True)
class KeyRow:
    key: PartnerKey
    queries_day: int
    valid_day: int
    last_query_at: datetime | None


def list_keys(session: Session, actor: Actor, now: datetime, key_id: int | None = None) -> list[KeyRow]:
    """Every key (or the one ``key_id``) with its last day's counts and its last query."""
    _require_admin(actor)
    since = now - timedelta(days=1)
    only = (lambda column: column == key_id) if key_id is not None else (lambda column: true())
    day = dict(
        (row.key_id, row) for row in session.execute(
            select(PartnerQuery.key_id, func.count().label("n"),
                   func.count().filter(PartnerQuery.outcome == Outcome.VALID).label("valid"))
            .where(PartnerQuery.at >= since, only(PartnerQuery.key_id)).group_by(PartnerQuery.key_id))
    )
    last = dict(session.execute(select(PartnerQuery.key_id, func.max(PartnerQuery.at))
                                .where(only(PartnerQuery.key_id)).group_by(PartnerQuery.key_id)).all())
    keys = session.scalars(select(PartnerKey).where(only(PartnerKey.id))
                           .order_by(PartnerKey.revoked_at.is_not(None), PartnerKey.partner_name, PartnerKey.id))
    return [KeyRow(k, day[k.id].n if k.id in day else 0, day[k.id].valid if k.id in day else 0, last.get(k.id))
            for k in keys]


def outcome_counts(session: Session, actor: Actor, key_id: int, since: datetime) -> dict[str, int]:
    """How a key's answers split by cause since a moment: what the union looks at to spot a
    partner trying numbers."""
    _require_admin(actor)
    if session.get(PartnerKey, key_id) is None:
        raise NotFound()
    return dict(session.execute(select(PartnerQuery.outcome, func.count()).where(
        PartnerQuery.key_id == key_id, PartnerQuery.at >= since).group_by(PartnerQuery.outcome)).all())


def authenticate(session: Session, presented: str) -> Partner | None:
    """The partner a presented key belongs to, or None for a wrong, unknown or revoked key."""
    if not presented or not presented.startswith(KEY_PREFIX) or len(presented) > 200:
        return None
    row = session.execute(
        select(PartnerKey.id, PartnerKey.partner_name, PartnerKey.kind, PartnerKey.per_minute)
        .where(PartnerKey.key_hash == tokens.token_hash(presented), PartnerKey.revoked_at.is_(None))
    ).first()
    return Partner(row.id, row.partner_name, PartnerKind(row.kind), row.per_minute) if row else None


# --- verification ---------------------------------------------------------------------------------
#
# These take a Core connection, not a unit of work: a query is one read and one log row, and on
# PostgreSQL the web layer gives an autocommit connection, so the pair costs two round trips.

@lru_cache(maxsize=None)
def _facts_statement(kind: PartnerKind):
    columns = [Card.id, Card.status, Person.surname, Person.given_name, Person.patronymic, Membership.is_active,
               Membership.leave_date]
    if kind == PartnerKind.BONUS_PROGRAMME:
        columns.append(exists().where(and_(
            Consent.person_id == Card.person_id, Consent.section == ConsentSection.PARTNER_TRANSFER.value,
            Consent.withdrawn_on.is_(None), Consent.given_on <= bindparam("today"))).label("consent"))
    return (select(*columns).join(Person, Person.id == Card.person_id)
            .join(Membership, Membership.id == Card.membership_id).where(Card.number == bindparam("number")))


_LOG_STATEMENT = insert(PartnerQuery.__table__)


def card_facts(conn: Connection, number: str, kind: PartnerKind, today: date) -> tuple[int | None, CardFacts | None]:
    params = {"number": number}
    if kind == PartnerKind.BONUS_PROGRAMME:
        params["today"] = today
    row = conn.execute(_facts_statement(kind), params).first()
    if row is None:
        return None, None
    current = bool(row.is_active) and (row.leave_date is None or row.leave_date > today)
    consent = bool(row.consent) if kind == PartnerKind.BONUS_PROGRAMME else False
    return row.id, CardFacts(row.status, row.surname, row.given_name, row.patronymic, current, consent)


def _log(conn: Connection, partner: Partner, method: str, outcome: Outcome, card_id: int | None,
         client_ip: str | None, now: datetime) -> Answer:
    reference = tokens.new_token(12)
    conn.execute(_LOG_STATEMENT, {"key_id": partner.key_id, "at": now, "method": method, "outcome": outcome.value,
                                  "card_id": card_id, "client_ip": client_ip, "reference": reference})
    return Answer(outcome == Outcome.VALID, now, reference, outcome)


def verify_number(conn: Connection, partner: Partner, number: str, name: NameQuery, *,
                  client_ip: str | None = None, now: datetime | None = None) -> Answer:
    """``number`` must already be a valid card number (check digit and issuer checked by the
    caller, without the database). Logs the query; the caller commits."""
    now = (now or clock.now()).replace(microsecond=0)
    card_id, facts = card_facts(conn, number, partner.kind, clock.today(now))
    outcome = judge(facts, partner.kind, name)
    # An unknown number and a wrong name leave the same trace as far as the partner can see; the
    # log keeps the card only when the name matched, so it does not record who was guessed at.
    return _log(conn, partner, "number", outcome, card_id if outcome != Outcome.NAME_MISMATCH else None,
                client_ip, now)


def verify_credential(conn: Connection, partner: Partner, credential: credentials.Credential, trust, *,
                      client_ip: str | None = None, now: datetime | None = None) -> Answer:
    """A parsed QR credential: its signature against the trust bundle, then the card's current
    state (a signed card may have been lost or blocked since). The signature binds the card to
    its holder's name, so no name is asked for."""
    now = (now or clock.now()).replace(microsecond=0)
    try:
        credentials.check_signature(credential, trust)
    except credentials.CredentialError:
        return _log(conn, partner, "credential", Outcome.FORGED_CREDENTIAL, None, client_ip, now)
    card_id, facts = card_facts(conn, credential.number, partner.kind, clock.today(now))
    return _log(conn, partner, "credential", judge(facts, partner.kind, None), card_id, client_ip, now)
