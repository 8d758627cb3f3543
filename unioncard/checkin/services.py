"""Events on the server: create, roster (from the registry or an XLSX), enrol and revoke desks,
publish signed bundles, take in desks' journals (earliest check-in wins, later ones flagged),
and the staff's counts. Services take a unit of work; the caller commits."""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import and_, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import aliased

from unioncard import clock
from unioncard.db import UnitOfWork, chunked
from unioncard.errors import Conflict, NotFound, PermissionDenied, ValidationError
from unioncard.checkin import quorum
from unioncard.checkin.models import Absence, CheckIn, Event, EventBundleRecord, EventSession, RosterEntry, Station
from unioncard.hsm import ceremony
from unioncard.hsm.trust import parse_timestamp, timestamp
from unioncard.i18n import N_
from unioncard.issuer import cardnumber
from unioncard.issuer import domain as cd
from unioncard.issuer.models import Card, Revocation
from unioncard.reader_station import bundle as eb
from unioncard.registry import audit
from unioncard.registry.actor import Actor
from unioncard.registry.domain import Permission
from unioncard.registry.models import Membership, Organisation, Person
from unioncard.registry.services import name_starts_with
from unioncard.tokens import new_token, token_hash

KINDS = ("congress", "conference", "seminar")
# Dates an event can have: its desk data are signed with times that must stay computable.
EARLIEST_EVENT_DAY = date(2000, 1, 1)
LATEST_EVENT_DAY = date(2099, 12, 31)
KIND_LABELS = {"congress": N_("congress"), "conference": N_("conference"), "seminar": N_("seminar")}
ROSTER_ROLES = ("delegate", "guest", "staff")
# Cards a desk refuses: revoked for good, or reported lost/stolen/damaged.
REFUSED_STATUSES = sorted(s.value for s in (cd.REVOKING | cd.LOSS))
# Cards that exist in someone's hands (or phone): what a roster entry points at.
HELD_STATUSES = sorted(s.value for s in (cd.CardStatus.PRODUCED, cd.CardStatus.SHIPPED, cd.CardStatus.DELIVERED,
                                         cd.CardStatus.ISSUED, cd.CardStatus.REFUSED))
BUNDLE_VALIDITY = timedelta(hours=36)
# Event data stay valid to the end of the event's last day wherever in Russia it is held (the
# westernmost zone, Kaliningrad, is UTC+2: its day ends at 22:00 UTC) plus this margin, so a desk
# loaded on the eve of a three-day congress still works on day three without a network.
EVENT_END_MARGIN = timedelta(hours=24)
WESTERNMOST_UTC_OFFSET = timedelta(hours=2)
# A bundle older than this is rebuilt at a desk's sync if anything it holds has changed.
BUNDLE_REFRESH = timedelta(minutes=2)
MAX_UPLOAD_ENTRIES = 5000
MAX_ROSTER_ROWS = 20_000
# The longest signed credential a journal entry may carry (a QR text is ~130 characters).
MAX_CREDENTIAL_TEXT = 1000
# A desk's clock and its offset from the server are believed within these bounds only.
MAX_CLOCK_OFFSET_SECONDS = 10 * 365 * 86400
EARLIEST_DESK_CLOCK = datetime(2000, 1, 1)
LATEST_DESK_CLOCK = datetime(2100, 1, 1)
# A desk clock further off than this is recorded (and shown) as wrong.
CLOCK_TOLERANCE = timedelta(minutes=5)


def _require(actor: Actor) -> None:
    if not actor.can(Permission.MANAGE_EVENTS):
        raise PermissionDenied()


def get_event(session, actor: Actor, event_id: int) -> Event:
    _require(actor)
    event = session.get(Event, event_id)
    if event is None or not actor.sees(event.org_path):
        raise NotFound(N_("No such event"), code="event_not_found")
    return event


def list_events(session, actor: Actor) -> list[Event]:
    _require(actor)
    rows = session.scalars(select(Event).order_by(Event.starts_on.desc(), Event.id.desc()))
    return [e for e in rows if actor.sees(e.org_path)]


def create_event(uow: UnitOfWork, actor: Actor, *, code: str, name: str, kind: str, organisation_id: int,
                 starts_on: date, ends_on: date, venue: str, admission: str, quorum_rule: str = "",
                 badge_modes: dict | None = None) -> Event:
    _require(actor)
    session = uow.session
    organisation = session.get(Organisation, organisation_id)
    if organisation is None or not actor.sees(organisation.path):
        raise NotFound(N_("No such organisation"), code="organisation_not_found")
    code, name, venue = code.strip(), name.strip(), venue.strip()
    if not code:
        raise ValidationError(N_("An event needs a code and a name"), code="event_fields")
    _check_event_fields(name, kind, starts_on, ends_on, admission)
    rule = _quorum_text(quorum_rule)
    modes = encode_badge_modes(badge_modes)
    if session.scalar(select(Event.id).where(Event.code == code)):
        raise Conflict(N_("An event with the code %(event_code)s already exists"), code="event_code_taken",
                       event_code=code)
    now = clock.now()
    event = Event(code=code, name=name, kind=kind, organisation_id=organisation.id, org_path=organisation.path,
                  starts_on=starts_on, ends_on=ends_on, venue=venue, admission=admission, roster_changed_at=now,
                  created_at=now, created_by=actor.user_id, quorum_rule=rule, badge_modes=modes)
    session.add(event)
    session.flush()
    audit.record(session, actor, "event.create", "event", event.id, organisation.id, code=code)
    return event


def _quorum_text(text: str | None) -> str | None:
    """The rule as typed, checked: one that does not parse is refused when the event is saved."""
    rule = quorum.parse(text)
    return rule.text if rule else None


def encode_badge_modes(modes: dict | None) -> str:
    merged = {**eb.DEFAULT_BADGES, **(modes or {})}
    if set(merged) != set(eb.DEFAULT_BADGES) or any(v not in eb.BADGE_MODES for v in merged.values()):
        raise ValidationError(N_("Unknown badge printing setting"), code="event_badge_modes")
    return ",".join(f"{role}={merged[role]}" for role in eb.ROLES)


def badge_modes(event: Event) -> dict[str, str]:
    stored = dict(part.split("=", 1) for part in (event.badge_modes or "").split(",") if "=" in part)
    return {role: stored.get(role, eb.DEFAULT_BADGES[role]) for role in eb.ROLES}


def _check_event_fields(name: str, kind: str, starts_on: date, ends_on: date, admission: str) -> None:
    if not name:
        raise ValidationError(N_("An event needs a code and a name"), code="event_fields")
    if kind not in KINDS:
        raise ValidationError(N_("Unknown kind of event"), code="event_kind")
    if admission not in eb.ADMISSIONS:
        raise ValidationError(N_("Unknown admission rule"), code="event_admission")
    if ends_on < starts_on:
        raise ValidationError(N_("The event ends before it starts"), code="event_dates")
    if not (EARLIEST_EVENT_DAY <= starts_on and ends_on <= LATEST_EVENT_DAY):
        raise ValidationError(N_("An event's dates lie between %(earliest)s and %(latest)s"), code="event_dates_range",
                              earliest=EARLIEST_EVENT_DAY.strftime("%d.%m.%Y"),
                              latest=LATEST_EVENT_DAY.strftime("%d.%m.%Y"))


def _open_event(session, actor: Actor, event_id: int) -> Event:
    """An event that may still change: a cancelled one is kept as it was."""
    event = get_event(session, actor, event_id)
    if event.cancelled_at is not None:
        raise Conflict(N_("The event is cancelled"), code="event_cancelled")
    return event


def update_event(uow: UnitOfWork, actor: Actor, event_id: int, *, name: str, kind: str, starts_on: date,
                 ends_on: date, venue: str, admission: str, quorum_rule: str | None = None,
                 badge_modes: dict | None = None) -> Event:
    """New name, kind, dates, venue or admission rule. The code stays (desks and files name it).
    Desks get the change with their next data, which is signed again at once if dates moved."""
    session = uow.session
    event = _open_event(session, actor, event_id)
    name, venue = name.strip(), venue.strip()
    _check_event_fields(name, kind, starts_on, ends_on, admission)
    rule = event.quorum_rule if quorum_rule is None else _quorum_text(quorum_rule)
    modes = event.badge_modes if badge_modes is None else encode_badge_modes(badge_modes)
    before = {"name": event.name, "kind": event.kind, "starts_on": event.starts_on, "ends_on": event.ends_on,
              "venue": event.venue, "admission": event.admission, "quorum_rule": event.quorum_rule,
              "badge_modes": event.badge_modes}
    event.name, event.kind, event.starts_on, event.ends_on = name, kind, starts_on, ends_on
    event.venue, event.admission, event.quorum_rule, event.badge_modes = venue, admission, rule, modes
    after = {"name": name, "kind": kind, "starts_on": starts_on, "ends_on": ends_on, "venue": venue,
             "admission": admission, "quorum_rule": rule, "badge_modes": modes}
    changed = {k: [before[k], v] for k, v in after.items() if before[k] != v}
    if changed:
        # What the desks hold (dates, admission) is rebuilt at their next synchronisation.
        event.roster_changed_at = clock.now()
        audit.record(session, actor, "event.update", "event", event.id, event.organisation_id, changed=changed)
    return event


def cancel_event(uow: UnitOfWork, actor: Actor, event_id: int, reason: str) -> Event:
    """Cancel an event for good: its desks are revoked (they stop synchronising), no new desk
    data are signed; the event, its list and its check-ins stay for the record."""
    session = uow.session
    event = _open_event(session, actor, event_id)
    reason = (reason or "").strip()[:300]
    if not reason:
        raise ValidationError(N_("Say why the event is cancelled"), code="cancel_reason_required",
                              field="reason")
    now = clock.now()
    event.cancelled_at, event.cancel_reason = now, reason
    revoked = 0
    for station in session.scalars(select(Station).where(Station.event_id == event.id,
                                                          Station.revoked_at.is_(None))):
        station.revoked_at = now
        revoked += 1
    audit.record(session, actor, "event.cancel", "event", event.id, event.organisation_id, reason=reason,
                 desks_revoked=revoked)
    return event


# --- roster -------------------------------------------------------------------------------------

@dataclass
class RosterResult:
    added: int = 0
    updated: int = 0
    problems: list[tuple[int, str]] = None  # (row, message) for rows that were not taken
    kept: int = 0      # already on the list with another role, left as they were


def _roster_set(session, event: Event, person_roles: dict[int, str], *,
                change_roles: bool = True) -> tuple[int, int, int]:
    """Put people on the list with their roles: (added, roles changed, roles kept). A role is
    changed only when the caller names each person (a file); a whole organisation added as
    guests leaves its delegates delegates (``change_roles=False``)."""
    existing = {row.person_id: row for row in session.scalars(
        select(RosterEntry).where(RosterEntry.event_id == event.id))}
    added = updated = kept = 0
    for person_id, role in person_roles.items():
        if person_id in existing:
            if existing[person_id].role != role:
                if change_roles:
                    existing[person_id].role = role
                    updated += 1
                else:
                    kept += 1
        else:
            session.add(RosterEntry(event_id=event.id, person_id=person_id, role=role))
            added += 1
    event.roster_changed_at = clock.now()
    return added, updated, kept


def add_organisation_members(uow: UnitOfWork, actor: Actor, event_id: int, organisation_id: int,
                             role: str) -> RosterResult:
    """Everyone who holds a card in an organisation's subtree, with one role."""
    session = uow.session
    event = _open_event(session, actor, event_id)
    if role not in ROSTER_ROLES:
        raise ValidationError(N_("Unknown role"), code="roster_role")
    organisation = session.get(Organisation, organisation_id)
    if organisation is None or not actor.sees(organisation.path):
        raise NotFound(N_("No such organisation"), code="organisation_not_found")
    people = session.scalars(select(Membership.person_id).where(
        Membership.org_path.startswith(organisation.path), Membership.is_active.is_(True))).all()
    added, updated, kept = _roster_set(session, event, {p: role for p in people}, change_roles=False)
    audit.record(session, actor, "event.roster_add", "event", event.id, organisation.id, added=added,
                 kept=kept, role=role)
    return RosterResult(added, updated, [], kept)


def add_member_to_roster(uow: UnitOfWork, actor: Actor, event_id: int, membership_id: int, role: str) -> str:
    """One member (found by name or card number) onto the list, or a new role for one already
    there. Returns "added", "changed" or "same"."""
    session = uow.session
    event = _open_event(session, actor, event_id)
    if role not in ROSTER_ROLES:
        raise ValidationError(N_("Unknown role"), code="roster_role")
    membership = session.get(Membership, membership_id)
    if membership is None or not membership.is_active or not actor.sees(membership.org_path):
        raise NotFound(N_("Member not found"), code="member_not_found")
    added, updated, _kept = _roster_set(session, event, {membership.person_id: role})
    outcome = "added" if added else "changed" if updated else "same"
    if outcome != "same":
        audit.record(session, actor, "event.roster_add_one", "event", event.id, event.organisation_id,
                     person_id=membership.person_id, role=role, outcome=outcome)
    return outcome


# A name search for the list shows name and organisation only, never more than this many.
ROSTER_SEARCH_LIMIT = 20
ROSTER_SEARCH_MIN = 3


@dataclass
class RosterCandidate:
    membership_id: int
    person_id: int
    name: str
    organisation: str
    on_list_as: str | None


def find_for_roster(session, actor: Actor, event_id: int, text: str) -> list[RosterCandidate]:
    """Current members in the actor's part of the union whose surname (or «surname name») starts
    with ``text``, or the holder of the card number typed; name and organisation only."""
    from unioncard.registry import domain as rd

    event = get_event(session, actor, event_id)
    text = (text or "").strip()[:100]
    digits = "".join(c for c in text if c.isdigit())
    query = (select(Membership.id, Membership.person_id, Person.surname, Person.given_name, Person.patronymic,
                    Organisation.name, RosterEntry.role)
             .join(Person, Person.id == Membership.person_id)
             .join(Organisation, Organisation.id == Membership.organisation_id)
             .outerjoin(RosterEntry, and_(RosterEntry.person_id == Membership.person_id,
                                          RosterEntry.event_id == event.id))
             .where(Membership.is_active.is_(True), Membership.org_path.startswith(actor.scope_path)))
    if digits and len(digits) == len(text.replace(" ", "").replace("-", "")):
        try:
            number = cardnumber.validate(digits)
        except cardnumber.ValidationError:
            return []
        query = query.join(Card, Card.person_id == Membership.person_id).where(Card.number == number)
    else:
        if len(rd.search_key(text)) < ROSTER_SEARCH_MIN:
            return []
        query = query.where(name_starts_with(text))
    rows = session.execute(query.order_by(Membership.sort_name, Membership.id).limit(ROSTER_SEARCH_LIMIT))
    return [RosterCandidate(m_id, p_id, full_name(s, g, p), org, role) for m_id, p_id, s, g, p, org, role in rows]


@dataclass
class RosterLine:
    person_id: int
    name: str
    role: str
    organisation: str | None
    has_card: bool


def roster_lines(session, actor: Actor, event_id: int, *, query: str = "", without_card: bool = False,
                 page: int = 1, per_page: int = 50) -> tuple[list[RosterLine], int]:
    """The event's list with names, by name: who is on it, as whom, from where, and whether they
    hold a card a desk will know."""
    from unioncard.registry import domain as rd

    event = get_event(session, actor, event_id)
    held = _holders().distinct().subquery()
    membership = _first_organisation()
    conditions = [RosterEntry.event_id == event.id]
    if rd.search_key(query):
        conditions.append(RosterEntry.person_id.in_(select(Membership.person_id).where(name_starts_with(query))))
    if without_card:
        conditions.append(held.c.person_id.is_(None))
    base = (select(RosterEntry.person_id, RosterEntry.role, Person.surname, Person.given_name, Person.patronymic,
                   Organisation.name, held.c.person_id)
            .join(Person, Person.id == RosterEntry.person_id)
            .outerjoin(membership, membership.c.person_id == RosterEntry.person_id)
            .outerjoin(Organisation, Organisation.id == membership.c.organisation_id)
            .outerjoin(held, held.c.person_id == RosterEntry.person_id)
            .where(*conditions))
    total = session.scalar(select(func.count()).select_from(base.subquery()))
    rows = session.execute(base.order_by(Person.surname, Person.given_name, RosterEntry.person_id)
                           .offset((max(1, page) - 1) * per_page).limit(per_page))
    return [RosterLine(pid, full_name(s, g, p), role, org, card is not None)
            for pid, role, s, g, p, org, card in rows], total


def _first_organisation():
    """(person_id, organisation_id): the organisation a person on a list is shown with, their
    first current membership's."""
    return (select(Membership.person_id, func.min(Membership.organisation_id).label("organisation_id"))
            .where(Membership.is_active.is_(True)).group_by(Membership.person_id).subquery())


def roster_without_cards(session, event_id: int) -> int:
    """People on the list holding no card a desk can know: the gap between «expected» and the
    desk data's list."""
    return session.scalar(select(func.count()).select_from(RosterEntry).where(
        RosterEntry.event_id == event_id, RosterEntry.person_id.notin_(_holders())))


def _holders():
    """People holding a numbered card a desk can know (what the desk data list)."""
    return select(Card.person_id).where(Card.number.is_not(None), Card.status.in_(HELD_STATUSES))


ROLE_WORDS = {"делегат": "delegate", "гость": "guest", "персонал": "staff", "сотрудник": "staff",
              "delegate": "delegate", "guest": "guest", "staff": "staff"}


def _looks_like_roster_header(values: list) -> bool:
    """A first row is a header when its first cell is not a card number (e.g. «Номер карты»):
    fewer than 8 digits. A first row with a mistyped number is data, and is reported as such."""
    first = str(values[0] if values and values[0] is not None else "")
    return sum(c.isdigit() for c in first) < 8


def read_roster_file(content: bytes, filename: str = "") -> list[tuple[int, str, str]]:
    """(spreadsheet row, card number, role word) from an uploaded roster: column A the card
    number, column B the role. XLSX or CSV, bounded like every upload (unioncard.tables); a header
    row is recognised, not assumed."""
    from unioncard import tables

    sheet = tables.read_table(content, filename, header=_looks_like_roster_header, max_rows=MAX_ROSTER_ROWS)
    return [(number, tables.cell_text(values[0] if values else None),
             tables.cell_text(values[1] if len(values) > 1 else None)) for number, values in sheet.rows]


def import_roster(uow: UnitOfWork, actor: Actor, event_id: int, rows: list[tuple[int, str, str]]) -> RosterResult:
    """Rows of (spreadsheet row, card number, role word), e.g. from ``read_roster_file``. Every row
    that cannot be taken is reported with its row number and why; if there is any, nothing is
    changed (the whole list is taken or none of it)."""
    from unioncard.i18n import translate

    session = uow.session
    event = _open_event(session, actor, event_id)
    problems: list[tuple[int, str]] = []
    wanted: dict[int, str] = {}
    numbers: dict[str, tuple[int, str]] = {}
    for index, raw_number, raw_role in rows:
        role = ROLE_WORDS.get(str(raw_role or "делегат").strip().lower())
        if role is None:
            problems.append((index, translate(N_("unknown role (write делегат, гость or персонал)"))))
            continue
        if not str(raw_number or "").strip():
            problems.append((index, translate(N_("no card number in column A"))))
            continue
        try:
            number = cardnumber.validate(str(raw_number))
        except cardnumber.ValidationError as exc:
            problems.append((index, exc.render()))
            continue
        if number in numbers:
            problems.append((index, translate(N_("the same card as in row %(row)s"), row=numbers[number][0])))
            continue
        numbers[number] = (index, role)
    found = {}
    for chunk in chunked(list(numbers)):
        for number, person_id, org_path, status in session.execute(
                select(Card.number, Card.person_id, Card.org_path, Card.status).where(Card.number.in_(chunk))):
            found[number] = (person_id, org_path, status)
    for number, (index, role) in numbers.items():
        hit = found.get(number)
        if hit is None or not actor.sees(hit[1]):
            problems.append((index, translate(N_("no such card"))))
        elif hit[2] in REFUSED_STATUSES:
            problems.append((index, translate(N_("the card is blocked or void"))))
        else:
            wanted[hit[0]] = role
    if problems:
        # All or nothing, as a member import: a list with errors changes nothing on the event.
        return RosterResult(0, 0, sorted(problems))
    added, updated, _kept = _roster_set(session, event, wanted)
    audit.record(session, actor, "event.roster_import", "event", event.id, event.organisation_id, added=added,
                 updated=updated, problems=len(problems))
    return RosterResult(added, updated, sorted(problems))


def remove_from_roster(uow: UnitOfWork, actor: Actor, event_id: int, person_id: int) -> None:
    session = uow.session
    event = _open_event(session, actor, event_id)
    row = session.scalar(select(RosterEntry).where(RosterEntry.event_id == event.id,
                                                   RosterEntry.person_id == person_id))
    if row is None:
        raise NotFound(N_("Not on the roster"), code="roster_entry_not_found")
    session.delete(row)
    event.roster_changed_at = clock.now()
    audit.record(session, actor, "event.roster_remove", "event", event.id, event.organisation_id,
                 person_id=person_id)


def roster_size(session, event_id: int) -> int:
    return session.scalar(select(func.count()).select_from(RosterEntry).where(RosterEntry.event_id == event_id))


def full_name(surname: str, given_name: str, patronymic: str | None) -> str:
    return " ".join(p for p in (surname, given_name, patronymic) if p)


def bundle_roster(session, event: Event) -> list[eb.RosterEntry]:
    """Every held card of every person on the roster (a person may hold a plastic and a virtual
    card), and their blocked ones: a desk that finds such a person by name must say the card is
    blocked rather than that nobody is on the list. The person key is the roster row's id; the
    organisation, the person's (first) organisation's name, shown when staff search by name."""
    organisation = _first_organisation()
    rows = session.execute(
        select(Card.number, Card.region_code, RosterEntry.role, RosterEntry.id, Person.surname, Person.given_name,
               Person.patronymic, Organisation.name)
        .join(RosterEntry, and_(RosterEntry.person_id == Card.person_id, RosterEntry.event_id == event.id))
        .join(Person, Person.id == Card.person_id)
        .outerjoin(organisation, organisation.c.person_id == Card.person_id)
        .outerjoin(Organisation, Organisation.id == organisation.c.organisation_id)
        .where(Card.number.is_not(None), Card.status.in_(HELD_STATUSES + REFUSED_STATUSES)))
    return [eb.RosterEntry(number, full_name(surname, given, patronymic), role, region, org or "", str(entry_id))
            for number, region, role, entry_id, surname, given, patronymic, org in rows]


# --- bundles ------------------------------------------------------------------------------------

def event_utc_offset(session, event: Event) -> int:
    """Minutes east of UTC at the venue, taken as the organiser's region's zone on the first day:
    where an event day begins and ends, for the desks and for the server's counts alike."""
    from zoneinfo import ZoneInfo

    from unioncard.registry import timezones

    region = session.scalar(select(Organisation.region_code).where(Organisation.id == event.organisation_id))
    zone = ZoneInfo(timezones.zone_of_region(region))
    offset = datetime.combine(event.starts_on, datetime.min.time()).replace(hour=12, tzinfo=zone).utcoffset()
    return int(offset.total_seconds() // 60)


def _event_info(session, event: Event, card_prefixes: tuple[str, ...] = (cardnumber.DEFAULT_ISSUER_PREFIX,)
                ) -> eb.EventInfo:
    sittings = tuple(eb.SessionInfo(s.id, s.day, s.name, s.room) for s in event_sessions(session, event.id)
                     if event.starts_on <= s.day <= event.ends_on)
    return eb.EventInfo(event.id, event.code, event.name, event.starts_on, event.ends_on, event.venue, event.admission,
                        event_utc_offset(session, event), badge_modes(event), sittings, tuple(card_prefixes))


def latest_bundle(session, event_id: int) -> EventBundleRecord | None:
    return session.scalar(select(EventBundleRecord).where(EventBundleRecord.event_id == event_id)
                          .order_by(EventBundleRecord.version.desc()).limit(1))


def feed_version(session) -> int:
    return session.scalar(select(func.max(Revocation.id))) or 0


def revoked_numbers(session):
    return session.scalars(select(Card.number).where(Card.number.is_not(None),
                                                     Card.status.in_(REFUSED_STATUSES))).yield_per(50_000)


def publish_bundle(uow: UnitOfWork, actor: Actor, event_id: int, signer, *, now: datetime | None = None,
                   validity: timedelta = BUNDLE_VALIDITY,
                   card_prefixes: tuple[str, ...] = (cardnumber.DEFAULT_ISSUER_PREFIX,)) -> EventBundleRecord:
    """Sign the next version of the event's bundle with the current roster and revocations.
    ``card_prefixes``: the issuer prefixes the desks accept (ours and the legacy registry's)."""
    session = uow.session
    event = get_event(session, actor, event_id) if actor.user_id is not None else session.get(Event, event_id)
    if event.cancelled_at is not None:
        raise Conflict(N_("The event is cancelled"), code="event_cancelled")
    trust_record = ceremony.latest_bundle(session)
    now = (now or clock.now()).replace(microsecond=0)
    if trust_record is None or trust_record.expires_at <= now:
        raise Conflict(N_("Export a current trust bundle first (Keys page): the desks need it to check signatures"),
                       code="trust_bundle_missing")
    previous = latest_bundle(session, event.id)
    version = (previous.version if previous else 0) + 1
    roster = bundle_roster(session, event)
    feed = feed_version(session)
    revoked = list(revoked_numbers(session))
    expires_at = min(max(now + validity, event_data_end(event)), trust_record.expires_at)
    data = eb.build(signer, _event_info(session, event, card_prefixes), version=version, issued_at=now, expires_at=expires_at,
                    trust_bundle=trust_record.content, roster=roster, revoked_numbers=revoked,
                    revocation_feed_version=feed)
    record = EventBundleRecord(event_id=event.id, version=version, issued_at=now, expires_at=expires_at,
                               sha256=hashlib.sha256(data).hexdigest(), size=len(data), feed_version=feed,
                               roster_count=len(roster), revoked_count=len(revoked), content=data)
    session.add(record)
    session.flush()  # two publishers of one version: the second fails here, on the primary key
    audit.record(session, actor, "event.bundle_publish", "event", event.id, event.organisation_id,
                 version=version, size=len(data), roster=len(roster), revoked=len(revoked))
    return record


def event_data_end(event: Event) -> datetime:
    """Until when a desk needs the event's data: the end of its last day in the westernmost time
    zone, plus a margin (naive UTC)."""
    last_day_end = datetime.combine(event.ends_on + timedelta(days=1), datetime.min.time())
    return last_day_end - WESTERNMOST_UTC_OFFSET + EVENT_END_MARGIN


def bundle_is_stale(session, event: Event, record: EventBundleRecord | None, now: datetime) -> bool:
    if record is None:
        return True
    if record.expires_at - now < BUNDLE_VALIDITY / 2:
        return True
    if now - record.issued_at < BUNDLE_REFRESH:
        return False
    return feed_version(session) != record.feed_version or event.roster_changed_at > record.issued_at


# --- stations -----------------------------------------------------------------------------------

def enrol_station(uow: UnitOfWork, actor: Actor, event_id: int, desk: str) -> tuple[Station, str]:
    """A new desk and its enrolment token (shown once; only its hash is kept)."""
    session = uow.session
    event = _open_event(session, actor, event_id)
    desk = desk.strip()[:64]
    if not desk:
        raise ValidationError(N_("Give the desk a name (e.g. «Стол 1»)"), code="station_desk")
    secret = new_token()
    station = Station(event_id=event.id, desk=desk, token_hash="-", created_at=clock.now(), created_by=actor.user_id)
    session.add(station)
    session.flush()
    token = f"{station.id}.{secret}"
    station.token_hash = token_hash(token)
    audit.record(session, actor, "event.station_enrol", "station", station.id, event.organisation_id, desk=desk)
    return station, token


def revoke_station(uow: UnitOfWork, actor: Actor, event_id: int, station_id: int) -> Station:
    session = uow.session
    event = get_event(session, actor, event_id)
    station = session.get(Station, station_id)
    if station is None or station.event_id != event.id:
        raise NotFound(N_("No such desk"), code="station_not_found")
    if station.revoked_at is None:
        station.revoked_at = clock.now()
        audit.record(session, actor, "event.station_revoke", "station", station.id, event.organisation_id)
    return station


class StationRefused(PermissionDenied):
    code = "station_token_invalid"
    message = N_("This desk's token is not valid or has been revoked: enrol the desk again")
    http_status = 401


def authenticate_station(session, token: str) -> Station:
    station = session.scalar(select(Station).where(Station.token_hash == token_hash(token or "")))
    if station is None or station.revoked_at is not None:
        raise StationRefused()
    return station


def stations(session, event_id: int) -> list[Station]:
    return list(session.scalars(select(Station).where(Station.event_id == event_id).order_by(Station.id)))


# --- journal ------------------------------------------------------------------------------------

@dataclass
class UploadResult:
    accepted: int
    already_had: int
    duplicates: int  # of this upload's check-ins, how many are not the earliest


class BadEntry(ValidationError):
    code = "journal_entry_invalid"
    message = N_("Journal entry %(index)s is not valid (%(reason)s)")


def _parse_entry(index: int, raw: dict) -> dict:
    try:
        nonce = str(raw["nonce"])
        kind = raw["kind"]
        if len(nonce) != 32 or not all(c in "0123456789abcdef" for c in nonce) or \
                kind not in ("checkin", "undo", "session"):
            raise ValueError("nonce/kind")
        station_clock = parse_timestamp(raw["station_clock"]).replace(tzinfo=None)
        if not EARLIEST_DESK_CLOCK <= station_clock <= LATEST_DESK_CLOCK:
            raise ValueError("station_clock")
        offset = float(raw.get("clock_offset") or 0)
        if not abs(offset) <= MAX_CLOCK_OFFSET_SECONDS:  # also refuses NaN
            raise ValueError("offset")
        number = raw.get("number")
        if kind in ("checkin", "session"):
            number = cardnumber.validate(number)
        session_id, direction = raw.get("session_id"), raw.get("direction")
        if kind == "session" and (not isinstance(session_id, int) or isinstance(session_id, bool)
                                  or not 1 <= session_id <= 2 ** 53 or direction not in ("in", "out")):
            raise ValueError("session_id/direction")
        ref = raw.get("ref_nonce")
        if kind == "undo" and (not isinstance(ref, str) or len(ref) != 32):
            raise ValueError("ref_nonce")
        presented = raw.get("credential")
        if presented is not None and (not isinstance(presented, str) or len(presented) > MAX_CREDENTIAL_TEXT):
            raise ValueError("credential")
        operator = raw.get("operator")
        if operator is not None and (not isinstance(operator, str) or not operator.isprintable()):
            raise ValueError("operator")
    except (KeyError, TypeError, ValueError, OverflowError, AttributeError, cardnumber.ValidationError) as exc:
        raise BadEntry(index=index, reason=str(exc)[:80] or type(exc).__name__) from None

    def short(key, length):
        value = raw.get(key)
        return None if value is None else str(value)[:length]

    return {"nonce": nonce, "kind": kind, "ref_nonce": ref if kind == "undo" else None, "number": number,
            "role": short("role", 16), "region_code": short("region_code", 2), "verdict": short("verdict", 32),
            "source": short("source", 8), "station_clock": station_clock, "operator": short("operator", 100),
            "effective_at": station_clock + timedelta(seconds=offset),
            "credential": presented if kind == "checkin" else None,
            "session_id": session_id if kind == "session" else None,
            "direction": direction if kind == "session" else None}


def take_journal(uow: UnitOfWork, station: Station, entries: list[dict]) -> UploadResult:
    """Store a desk's entries; an entry already stored (same nonce) is skipped, so an upload sent
    twice changes nothing. Then re-rank the touched cards: the earliest live check-in is the one,
    later live ones are duplicates."""
    if len(entries) > MAX_UPLOAD_ENTRIES:
        raise ValidationError(N_("At most %(limit)s entries per upload"), code="journal_too_large",
                              limit=MAX_UPLOAD_ENTRIES)
    session = uow.session
    parsed = [_parse_entry(i, raw) for i, raw in enumerate(entries)]
    sessions = set(session.scalars(select(EventSession.id).where(EventSession.event_id == station.event_id)))
    for index, entry in enumerate(parsed):
        if entry["kind"] == "session" and entry["session_id"] not in sessions:  # another event's, or none
            raise BadEntry(index=index, reason="session_id")
    # Uploads of one event take turns: ranking needs every earlier upload's rows, and under READ
    # COMMITTED two desks ranking at once would each see only their own and both claim "first".
    session.execute(select(Event.id).where(Event.id == station.event_id).with_for_update())
    now = clock.now()
    nonces = [p["nonce"] for p in parsed]
    known = set()
    for chunk in chunked(nonces):
        known.update(session.scalars(select(CheckIn.nonce).where(CheckIn.nonce.in_(chunk))))
    event = session.get(Event, station.event_id)
    # The event day by the same rule the desks use (the bundle's event information).
    info = _event_info(session, event)
    # A moment after the upload's arrival cannot have happened yet: it is taken as the arrival (a
    # desk's clock set years ahead must not shift the quorum or the report «as of now»).
    fresh = [dict(p, event_id=station.event_id, station_id=station.id, received_at=now, undone=False,
                  duplicate=False, effective_at=min(p["effective_at"], now),
                  event_day=info.day_of(min(p["effective_at"], now)))
             for p in parsed if p["nonce"] not in known]
    _identify(session, station.event_id, fresh, now)
    if fresh:
        try:
            with session.begin_nested():
                session.execute(insert(CheckIn), fresh)
        except IntegrityError:
            # Another request stored some of them between our look and our insert: take the rest one by one.
            fresh = _insert_one_by_one(session, fresh)
    undo_refs = [p["ref_nonce"] for p in fresh if p["kind"] == "undo"]
    touched = {p["number"] for p in fresh if p["kind"] == "checkin"}
    # A desk undoes only what it recorded itself: another desk's token cannot take back a check-in.
    for chunk in chunked(undo_refs):
        session.execute(update(CheckIn).where(CheckIn.nonce.in_(chunk), CheckIn.event_id == station.event_id,
                                              CheckIn.station_id == station.id).values(undone=True))
        touched.update(session.scalars(select(CheckIn.number).where(CheckIn.nonce.in_(chunk),
                                                                    CheckIn.event_id == station.event_id,
                                                                    CheckIn.station_id == station.id)))
    # An undo may arrive before what it undoes (another desk's upload order): apply those too.
    new_checkins = [p["nonce"] for p in fresh if p["kind"] == "checkin"]
    for chunk in chunked(new_checkins):
        # Only undos sent by this event's desks count: another event's desk cannot undo ours.
        session.execute(update(CheckIn).where(CheckIn.nonce.in_(chunk), CheckIn.nonce.in_(
            select(CheckIn.ref_nonce).where(CheckIn.kind == "undo", CheckIn.ref_nonce.in_(chunk),
                                            CheckIn.event_id == station.event_id,
                                            CheckIn.station_id == station.id))).values(undone=True))
    _rerank(session, station.event_id, touched)
    duplicates = 0
    for chunk in chunked(new_checkins):
        duplicates += session.scalar(select(func.count()).select_from(CheckIn).where(
            CheckIn.nonce.in_(chunk), CheckIn.duplicate.is_(True)))
    station.last_seen_at = now
    return UploadResult(len(fresh), len(parsed) - len(fresh), duplicates)


def roster_numbers(session, event_id: int, numbers) -> dict[str, str]:
    """Which of ``numbers`` are cards of people on the event's roster, with their role there."""
    found: dict[str, str] = {}
    for chunk in chunked(sorted({n for n in numbers if n})):
        found.update(session.execute(
            select(Card.number, RosterEntry.role).join(RosterEntry, and_(RosterEntry.person_id == Card.person_id,
                                                                         RosterEntry.event_id == event_id))
            .where(Card.number.in_(chunk))).all())
    return found


def _identify(session, event_id: int, rows: list[dict], now: datetime) -> None:
    """Decide, per check-in, what the server may tell the event's staff about it. A desk token
    must not turn any card number into its holder's name: a name is known only for a number on
    the event's roster, or from the card's own signed credential sent with the entry (and then
    only the name the credential itself carries). The credential text is not kept."""
    from unioncard.issuer import credential as credentials

    listed = roster_numbers(session, event_id, [r["number"] for r in rows if r["kind"] == "checkin"])
    # A card's region is the registry's (a legacy number's digits say nothing of it); a number
    # the registry does not know keeps the region its digits name in our scheme.
    regions = {}
    for chunk in chunked(list({r["number"] for r in rows if r["kind"] in ("checkin", "session")})):
        regions.update(session.execute(select(Card.number, Card.region_code).where(Card.number.in_(chunk))).all())
    trust_bundle = None
    if any(r.get("credential") for r in rows):
        trust_bundle = ceremony.checked(ceremony.latest_bundle(session), now)
    for row in rows:
        presented = row.pop("credential", None)
        row["identified_by"], row["credential_name"] = None, None
        if row["kind"] not in ("checkin", "session"):
            continue
        # The counts by role and region are the server's own: the role from the roster, the
        # region from the registry's card, whatever the desk wrote.
        row["role"] = listed.get(row["number"], "member")
        row["region_code"] = regions.get(row["number"]) or cardnumber.region_of(row["number"])
        if row["number"] in listed:
            row["identified_by"] = "roster"
        elif presented and trust_bundle is not None:
            try:
                verified = credentials.verify(presented, trust_bundle)
            except credentials.CredentialError:
                continue
            if verified.number == row["number"]:
                row["identified_by"], row["credential_name"] = "credential", verified.full_name[:200]


def _insert_one_by_one(session, rows: list[dict]) -> list[dict]:
    stored = []
    for row in rows:
        try:
            with session.begin_nested():
                session.execute(insert(CheckIn), [row])
            stored.append(row)
        except IntegrityError:
            pass
    return stored


def _rerank(session, event_id: int, numbers: set[str]) -> None:
    """Per card and event day, the earliest live check-in is the one; later live ones are flagged."""
    for chunk in chunked(sorted(n for n in numbers if n)):
        rows = session.execute(select(CheckIn.id, CheckIn.number, CheckIn.event_day, CheckIn.undone,
                                      CheckIn.duplicate).where(
            CheckIn.event_id == event_id, CheckIn.kind == "checkin", CheckIn.number.in_(chunk))
            .order_by(CheckIn.number, CheckIn.effective_at, CheckIn.station_clock, CheckIn.nonce)).all()
        seen: set[tuple] = set()
        flips = {True: [], False: []}
        for row_id, number, day, undone, duplicate in rows:
            should = False
            if not undone:
                should = (number, day) in seen
                seen.add((number, day))
            if bool(duplicate) != should:
                flips[should].append(row_id)
        for value, ids in flips.items():
            for id_chunk in chunked(ids):
                session.execute(update(CheckIn).where(CheckIn.id.in_(id_chunk)).values(duplicate=value))


OTHERS_PAGE = 5000


def checkins_since(session, event_id: int, after_id: int, limit: int = OTHERS_PAGE) -> tuple[list[dict], int]:
    """Check-ins (live or undone) of all desks after ``after_id``, for desks to learn at sync.
    Undos change earlier rows, so a desk also re-reads rows it had: see ``undone_since``."""
    rows = session.execute(
        select(CheckIn.id, CheckIn.nonce, CheckIn.number, CheckIn.effective_at, CheckIn.undone, CheckIn.station_id,
               Station.desk).join(Station, Station.id == CheckIn.station_id)
        .where(CheckIn.event_id == event_id, CheckIn.kind == "checkin", CheckIn.id > after_id)
        .order_by(CheckIn.id).limit(limit)).all()
    entries = [{"nonce": r.nonce, "number": r.number, "at": timestamp(r.effective_at), "undone": r.undone,
                "station_id": r.station_id, "desk": r.desk} for r in rows]
    return entries, (rows[-1].id if rows else after_id)


def _undos():
    """(undo, the check-in it takes back): only an undo by the desk that made the check-in counts."""
    undo = aliased(CheckIn)
    return undo, and_(undo.kind == "undo", undo.ref_nonce == CheckIn.nonce, undo.station_id == CheckIn.station_id,
                      undo.event_id == CheckIn.event_id)


def undone_nonces(session, event_id: int) -> list[str]:
    undo, joined = _undos()
    return list(session.scalars(select(CheckIn.nonce).join(undo, joined).where(CheckIn.event_id == event_id)))


# --- staff views --------------------------------------------------------------------------------

@dataclass
class Counts:
    expected: int | None
    arrived: int
    duplicates: int
    undone: int
    by_role: list[tuple[str, int, int | None]]      # role, arrived, expected
    by_region: list[tuple[str, int, int | None]]    # region code, arrived, expected


def counts(session, event: Event, day: date | None = None) -> Counts:
    """Arrivals on one event day, or (``day`` None) everyone who came on any day, once."""
    live = select(CheckIn.number, CheckIn.role, CheckIn.region_code).where(
        CheckIn.event_id == event.id, CheckIn.kind == "checkin", CheckIn.undone.is_(False),
        CheckIn.duplicate.is_(False))
    if day is not None:
        live = live.where(CheckIn.event_day == day)
    arrived_rows = session.execute(live).all()
    if day is None:
        arrived_rows = list({row.number: row for row in arrived_rows}.values())
    arrived_roles = Counter(r.role or "member" for r in arrived_rows)
    arrived_regions = Counter(r.region_code or "—" for r in arrived_rows)
    duplicates = session.scalar(select(func.count()).select_from(CheckIn).where(
        CheckIn.event_id == event.id, CheckIn.kind == "checkin", CheckIn.duplicate.is_(True)))
    undone = session.scalar(select(func.count()).select_from(CheckIn).where(
        CheckIn.event_id == event.id, CheckIn.kind == "checkin", CheckIn.undone.is_(True)))
    expected_roles: Counter = Counter()
    expected_regions: Counter = Counter()
    expected = None
    if event.admission == "roster":
        roster = session.execute(
            select(RosterEntry.person_id, RosterEntry.role, func.min(Organisation.region_code))
            .join(Membership, Membership.person_id == RosterEntry.person_id)
            .join(Organisation, Organisation.id == Membership.organisation_id)
            .where(RosterEntry.event_id == event.id).group_by(RosterEntry.person_id, RosterEntry.role)).all()
        expected = roster_size(session, event.id)
        expected_roles = Counter(r.role for r in roster)
        expected_regions = Counter(r[2] or "—" for r in roster)
    roles = sorted(set(arrived_roles) | set(expected_roles))
    regions = sorted(set(arrived_regions) | set(expected_regions))
    return Counts(expected, len(arrived_rows), duplicates, undone,
                  [(r, arrived_roles[r], expected_roles[r] if expected is not None else None) for r in roles],
                  [(r, arrived_regions[r], expected_regions[r] if expected is not None else None) for r in regions])


@dataclass
class Arrivals:
    """Live check-ins over time (hour by hour, UTC) split by role, and by desk: the event page's charts."""
    hours: list[tuple[datetime, dict[str, int]]]   # hour start (UTC), role -> count
    by_desk: list[tuple[str, int]]
    roles: list[str]

    @property
    def busiest(self) -> int:
        return max((sum(c.values()) for _h, c in self.hours), default=0)


# A chart of more hours than this shows the last ones (a three-day congress has ~72).
ARRIVAL_HOURS_SHOWN = 72


def arrivals_by_hour(session, event: Event) -> Arrivals:
    rows = session.execute(
        select(CheckIn.effective_at, CheckIn.role, Station.desk).join(Station, Station.id == CheckIn.station_id)
        .where(CheckIn.event_id == event.id, CheckIn.kind == "checkin", CheckIn.undone.is_(False),
               CheckIn.duplicate.is_(False))).all()
    per_hour: dict[datetime, Counter] = {}
    desks: Counter = Counter()
    for at, role, desk in rows:
        hour = at.replace(minute=0, second=0, microsecond=0)
        per_hour.setdefault(hour, Counter())[role or "member"] += 1
        desks[desk] += 1
    hours = []
    if per_hour:
        first, last = min(per_hour), max(per_hour)
        first = max(first, last - timedelta(hours=ARRIVAL_HOURS_SHOWN - 1))
        hour = first
        while hour <= last:
            hours.append((hour, dict(per_hour.get(hour, {}))))
            hour += timedelta(hours=1)
    roles = [r for r in ("delegate", "guest", "staff", "member") if any(r in c for c in per_hour.values())]
    return Arrivals(hours, desks.most_common(), roles)


@dataclass
class JournalRow:
    """A check-in as the event's staff see it: the holder's name only when the server knows it
    from the roster or from the card's own verified credential; otherwise the number alone."""
    entry: CheckIn
    desk: str
    surname: str | None
    given_name: str | None
    patronymic: str | None

    @property
    def full_name(self) -> str | None:
        if self.entry.identified_by == "credential":
            return self.entry.credential_name
        return full_name(self.surname, self.given_name, self.patronymic) if self.surname else None


def journal_rows(session, actor: Actor, event_id: int, *, duplicates_only: bool = False,
                 limit: int | None = None) -> list[JournalRow]:
    """Check-ins of an event the actor may manage (for staff screens and the XLSX export). The
    registry is joined only through the event's roster, so a number that is not on it never
    turns into a name here, whatever the desk sent."""
    event = get_event(session, actor, event_id)
    listed = (select(Card.number.label("number"), Person.surname, Person.given_name, Person.patronymic)
              .join(RosterEntry, and_(RosterEntry.person_id == Card.person_id, RosterEntry.event_id == event.id))
              .join(Person, Person.id == Card.person_id).where(Card.number.is_not(None)).subquery())
    query = (select(CheckIn, Station.desk, listed.c.surname, listed.c.given_name, listed.c.patronymic)
             .join(Station, Station.id == CheckIn.station_id)
             .outerjoin(listed, and_(listed.c.number == CheckIn.number, CheckIn.identified_by == "roster"))
             .where(CheckIn.event_id == event.id, CheckIn.kind == "checkin")
             .order_by(CheckIn.number, CheckIn.effective_at))
    if duplicates_only:
        numbers = select(CheckIn.number).where(CheckIn.event_id == event.id, CheckIn.duplicate.is_(True))
        query = query.where(CheckIn.number.in_(numbers))
    if limit:
        query = query.limit(limit)
    return [JournalRow(*row) for row in session.execute(query).all()]


# --- days, quorum and the credentials committee -------------------------------------------------

def event_days(event: Event) -> list[date]:
    days, day = [], event.starts_on
    while day <= event.ends_on:
        days.append(day)
        day += timedelta(days=1)
    return days


def today_at_event(session, event: Event, now: datetime | None = None) -> date:
    """The venue's date now, kept within the event's days."""
    day = _event_info(session, event).day_of(now or clock.now())
    return min(max(day, event.starts_on), event.ends_on)


def checked_in_numbers(session, event: Event, *, day: date | None = None, at: datetime | None = None
                       ) -> dict[str, datetime]:
    """Card numbers checked in (their earliest moment) on ``day`` (any day if None), as the merged
    journal stood at ``at`` (now if None): check-ins effective by then that no undo effective by
    then takes back. Reproducible for any moment of the event."""
    checkins = select(CheckIn.nonce, CheckIn.number, CheckIn.effective_at).where(
        CheckIn.event_id == event.id, CheckIn.kind == "checkin")
    undo, joined = _undos()
    undos = select(CheckIn.nonce).join(undo, joined).where(CheckIn.event_id == event.id)
    if day is not None:
        checkins = checkins.where(CheckIn.event_day == day)
    if at is not None:
        checkins = checkins.where(CheckIn.effective_at <= at)
        undos = undos.where(undo.effective_at <= at)
    undone = set(session.scalars(undos))
    earliest: dict[str, datetime] = {}
    for nonce, number, at_moment in session.execute(checkins):
        if nonce in undone:
            continue
        if number not in earliest or at_moment < earliest[number]:
            earliest[number] = at_moment
    return earliest


@dataclass
class Delegate:
    person_id: int
    name: str
    organisation: str
    region_code: str
    sex: str | None
    birth_date: date | None
    present_at: datetime | None = None
    absence: str | None = None


def elected_delegates(session, event: Event) -> list[Delegate]:
    """The roster's delegates (the elected ones the committee counts), by name."""
    organisation = _first_organisation()
    rows = session.execute(
        select(RosterEntry.person_id, Person.surname, Person.given_name, Person.patronymic, Person.sex,
               Person.birth_date, Organisation.name, Organisation.region_code, Absence.reason)
        .join(Person, Person.id == RosterEntry.person_id)
        .outerjoin(organisation, organisation.c.person_id == RosterEntry.person_id)
        .outerjoin(Organisation, Organisation.id == organisation.c.organisation_id)
        .outerjoin(Absence, and_(Absence.event_id == event.id, Absence.person_id == RosterEntry.person_id))
        .where(RosterEntry.event_id == event.id, RosterEntry.role == "delegate")
        .order_by(Person.surname, Person.given_name, RosterEntry.person_id))
    return [Delegate(pid, full_name(s, g, p), org or "", region or "—", sex, born, absence=reason)
            for pid, s, g, p, sex, born, org, region, reason in rows]


def _mark_present(session, event: Event, delegates: list[Delegate], *, day: date | None,
                  at: datetime | None) -> None:
    for delegate in delegates:  # the same list is marked again for another day or moment
        delegate.present_at = None
    present = checked_in_numbers(session, event, day=day, at=at)
    if not present or not delegates:
        return
    by_person: dict[int, datetime] = {}
    ids = [d.person_id for d in delegates]
    for chunk in chunked(ids):
        for number, person_id in session.execute(select(Card.number, Card.person_id).where(
                Card.person_id.in_(chunk), Card.number.is_not(None))):
            moment = present.get(number)
            if moment is not None and (person_id not in by_person or moment < by_person[person_id]):
                by_person[person_id] = moment
    for delegate in delegates:
        delegate.present_at = by_person.get(delegate.person_id)


@dataclass
class QuorumStatus:
    elected: int
    present: int
    needed: int | None
    reached: bool | None
    rule: str | None


def quorum_status(session, event: Event, *, day: date | None = None, at: datetime | None = None,
                  delegates: list[Delegate] | None = None) -> QuorumStatus:
    """Elected delegates present on the day (as the journal stood at ``at``) against the rule.
    ``delegates`` (elected_delegates) may be given to mark the same list for several days."""
    if delegates is None:
        delegates = elected_delegates(session, event)
    _mark_present(session, event, delegates, day=day, at=at)
    present = sum(1 for d in delegates if d.present_at is not None)
    rule = quorum.parse(event.quorum_rule) if event.quorum_rule else None
    needed = rule.needed(len(delegates)) if rule else None
    return QuorumStatus(len(delegates), present, needed, rule.reached(present, len(delegates)) if rule else None,
                        rule.text if rule else None)


YOUTH_AGE = 35


@dataclass
class CommitteeReport:
    """The credentials committee's report («протокол мандатной комиссии»)."""
    event: Event
    day: date | None
    at: datetime
    quorum: QuorumStatus
    delegates: list[Delegate]
    by_region: list[tuple[str, str, int, int]]    # code, name, elected, registered
    by_sex: list[tuple[str, int, int]]            # sex (male/female/None), elected, registered
    by_age: list[tuple[str, int, int]]            # "young" (under 35) / "older", elected, registered

    @property
    def absent(self) -> list[Delegate]:
        return [d for d in self.delegates if d.present_at is None]


def _age_on(born: date | None, day: date) -> int | None:
    if born is None:
        return None
    return day.year - born.year - ((day.month, day.day) < (born.month, born.day))


def committee_report(session, actor: Actor, event_id: int, *, day: date | None = None,
                     at: datetime | None = None) -> CommitteeReport:
    """Elected, registered and absent delegates (with the staff's reasons), by region, sex and age
    group (under 35 on the event's first day), and the quorum, as the merged journal stood at
    ``at`` (now if None) on ``day`` (any day of the event if None)."""
    event = get_event(session, actor, event_id)
    at = (at or clock.now()).replace(microsecond=0)
    delegates = elected_delegates(session, event)
    status = quorum_status(session, event, day=day, at=at, delegates=delegates)
    regions = dict(session.execute(select(Organisation.region_code, Organisation.name).where(
        Organisation.level == "regional")).all())
    by_region: dict[str, list[int]] = {}
    by_sex: dict[str | None, list[int]] = {}
    by_age: dict[str, list[int]] = {}
    for delegate in delegates:
        came = delegate.present_at is not None
        age = _age_on(delegate.birth_date, event.starts_on)
        for table, key in ((by_region, delegate.region_code), (by_sex, delegate.sex),
                           (by_age, "young" if age is not None and age < YOUTH_AGE else "older")):
            cell = table.setdefault(key, [0, 0])
            cell[0] += 1
            cell[1] += int(came)
    return CommitteeReport(
        event, day, at, status, delegates,
        [(code, regions.get(code, code), e, r) for code, (e, r) in sorted(by_region.items())],
        [(sex, e, r) for sex, (e, r) in sorted(by_sex.items(), key=lambda item: str(item[0]))],
        [(group, *by_age[group]) for group in ("young", "older") if group in by_age])


MAX_ABSENCE_REASON = 300


def record_absence(uow: UnitOfWork, actor: Actor, event_id: int, person_id: int, reason: str) -> str:
    """Why an elected delegate is absent (for the committee's report); an empty reason removes it.
    Returns "saved" or "removed"."""
    session = uow.session
    event = _open_event(session, actor, event_id)
    listed = session.scalar(select(RosterEntry).where(RosterEntry.event_id == event.id,
                                                      RosterEntry.person_id == person_id,
                                                      RosterEntry.role == "delegate"))
    if listed is None:
        raise NotFound(N_("Not on the roster"), code="roster_entry_not_found")
    reason = " ".join(str(reason or "").split())[:MAX_ABSENCE_REASON]
    row = session.scalar(select(Absence).where(Absence.event_id == event.id, Absence.person_id == person_id))
    if not reason:
        if row is not None:
            session.delete(row)
            audit.record(session, actor, "event.absence_remove", "event", event.id, event.organisation_id,
                         person_id=person_id)
        return "removed"
    if row is None:
        row = Absence(event_id=event.id, person_id=person_id, reason=reason)
        session.add(row)
    row.reason, row.recorded_by, row.recorded_at = reason, actor.user_id, clock.now()
    audit.record(session, actor, "event.absence", "event", event.id, event.organisation_id, person_id=person_id,
                 reason=reason)
    return "saved"


# --- sessions (sittings) and their doors -----------------------------------------------------------

MAX_SESSION_NAME = 200
MAX_ROOM = 100


def event_sessions(session, event_id: int) -> list[EventSession]:
    """The event's sessions that are not removed, by day."""
    return list(session.scalars(select(EventSession).where(EventSession.event_id == event_id,
                                                           EventSession.removed_at.is_(None))
                                .order_by(EventSession.day, EventSession.id)))


def add_session(uow: UnitOfWork, actor: Actor, event_id: int, *, day: date, name: str, room: str = "") -> EventSession:
    """A sitting on one of the event's days; desks learn it with their next data."""
    session = uow.session
    event = _open_event(session, actor, event_id)
    name, room = " ".join((name or "").split())[:MAX_SESSION_NAME], " ".join((room or "").split())[:MAX_ROOM]
    if not name:
        raise ValidationError(N_("A session needs a name"), code="session_name_required", field="name")
    if not event.starts_on <= day <= event.ends_on:
        raise ValidationError(N_("A session is held on one of the event's days"), code="session_day", field="day")
    if len(event_sessions(session, event.id)) >= eb.MAX_SESSIONS:
        raise ValidationError(N_("At most %(limit)s sessions per event"), code="sessions_too_many",
                              limit=eb.MAX_SESSIONS)
    sitting = EventSession(event_id=event.id, day=day, name=name, room=room, created_at=clock.now())
    session.add(sitting)
    event.roster_changed_at = clock.now()
    session.flush()
    audit.record(session, actor, "event.session_add", "event", event.id, event.organisation_id,
                 session_id=sitting.id, name=name, day=day.isoformat())
    return sitting


def remove_session(uow: UnitOfWork, actor: Actor, event_id: int, session_id: int) -> None:
    """Only a session nobody was scanned into can go: the journal keeps what happened. It leaves
    the desk data; the row stays, so a desk that still had it is not refused at its next sync."""
    session = uow.session
    event = _open_event(session, actor, event_id)
    sitting = session.get(EventSession, session_id)
    if sitting is None or sitting.event_id != event.id or sitting.removed_at is not None:
        raise NotFound(N_("No such session"), code="session_not_found")
    if session.scalar(select(CheckIn.id).where(CheckIn.session_id == sitting.id).limit(1)):
        raise Conflict(N_("People were already scanned at this session: it is kept"), code="session_has_entries")
    sitting.removed_at = event.roster_changed_at = clock.now()
    audit.record(session, actor, "event.session_remove", "event", event.id, event.organisation_id,
                 session_id=session_id)


@dataclass
class Attendance:
    session: EventSession
    entered: int      # people (cards) who came in at least once
    inside: int       # of them, those whose latest live scan is an entry
    delegates: int    # elected delegates who came in


def session_attendance(session, event: Event) -> list[Attendance]:
    """Per session: who came in, who is inside now (latest live scan an entry), and how many of
    them are elected delegates, from the merged journal."""
    sittings = event_sessions(session, event.id)
    rows = session.execute(
        select(CheckIn.session_id, CheckIn.number, CheckIn.direction, CheckIn.effective_at).where(
            CheckIn.event_id == event.id, CheckIn.kind == "session", CheckIn.undone.is_(False))
        .order_by(CheckIn.effective_at, CheckIn.id)).all()
    delegates = set(roster_numbers(session, event.id, {r.number for r in rows}).items())
    delegate_numbers = {number for number, role in delegates if role == "delegate"}
    result = []
    for sitting in sittings:
        mine = [r for r in rows if r.session_id == sitting.id]
        entered = {r.number for r in mine if r.direction == "in"}
        latest = {r.number: r.direction for r in mine}
        result.append(Attendance(sitting, len(entered), sum(1 for d in latest.values() if d == "in"),
                                 len(entered & delegate_numbers)))
    return result
