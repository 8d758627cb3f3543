"""Registry use cases. Each takes a unit of work and an actor, checks scope and rights, changes
data in one transaction and writes the audit log in that same transaction."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

from sqlalchemy import func, insert, or_, select, text, tuple_, update
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from unioncard import clock
from unioncard.db import UnitOfWork, chunked
from unioncard.errors import Conflict, NotFound, PermissionDenied, ValidationError
from unioncard.i18n import N_
from unioncard.registry import audit
from unioncard.registry import domain as d
from unioncard.registry.actor import Actor
from unioncard.registry.models import (
    AuditEntry,
    ChairpersonTerm,
    Consent,
    Membership,
    Organisation,
    OrganisationParentHistory,
    Person,
    UserAccount,
)

REGISTERED_OUTSIDE_SCOPE = N_("This person is already registered in a primary organisation outside your part of the "
                              "union. A person can be registered in only one organisation: ask the regional "
                              "organisation to arrange a transfer.")
MEMBER_LEVELS = (d.Level.PRIMARY, d.Level.SUBDIVISION)


# --- events (announced after commit) -------------------------------------------------------

@dataclass(frozen=True)
class MembershipEnded:
    membership_id: int
    person_id: int
    reason: str


@dataclass(frozen=True)
class OrganisationMoved:
    """A subtree's materialised path changed from ``old_prefix`` to ``new_prefix``: parts that keep
    a copy of an organisation's path (cards) rewrite theirs in the same transaction."""
    organisation_id: int
    old_prefix: str
    new_prefix: str
    region_code: str | None


@dataclass(frozen=True)
class ConsentWithdrawn:
    person_id: int
    section: str


# --- organisations ---------------------------------------------------------------------------

def get_organisation(session: Session, actor: Actor, organisation_id: int) -> Organisation:
    """An organisation the actor may see; anything else does not exist for them."""
    org = session.get(Organisation, organisation_id)
    if org is None or not actor.sees(org.path):
        raise NotFound(N_("Organisation not found"), code="organisation_not_found")
    return org


def get_organisation_by_code(session: Session, actor: Actor, code: str) -> Organisation:
    org = session.scalar(select(Organisation).where(Organisation.code == str(code).strip()))
    if org is None or not actor.sees(org.path):
        raise NotFound(N_("Unknown organisation code “%(org_code)s”"), code="organisation_code_unknown", org_code=code)
    return org


def region_code_of(session: Session, org: Organisation) -> str | None:
    """The two-digit code of the region an organisation belongs to (None for the central one)."""
    if org.region_code:
        return org.region_code
    ids = d.path_ids(org.path)
    if len(ids) < 2:
        return None
    return session.scalar(select(Organisation.region_code).where(Organisation.id == ids[1]))


def find_organisations(session: Session, actor: Actor, text: str, limit: int = 50) -> list[Organisation]:
    """Organisations of the actor's part of the union whose code is ``text`` or whose name holds
    it (any case, «ё» as «е», any run of spaces): the exact code first, then by name."""
    text = " ".join(str(text or "").split())[:100]
    if not text:
        return []
    try:
        return [get_organisation_by_code(session, actor, text)]
    except NotFound:
        pass
    wanted = d.search_key(text)
    found = []
    for org_id, name, path in session.execute(
            select(Organisation.id, Organisation.name, Organisation.path)
            .where(Organisation.path.startswith(actor.scope_path), Organisation.removed_on.is_(None))
            .order_by(Organisation.path)):
        if wanted in d.search_key(name):
            found.append(org_id)
            if len(found) >= limit:
                break
    return list(session.scalars(select(Organisation).where(Organisation.id.in_(found)).order_by(Organisation.name)))


def create_organisation(
    uow: UnitOfWork,
    actor: Actor,
    *,
    code: str,
    name: str,
    level: str,
    parent_id: int | None = None,
    kind: str | None = None,
    inn: str | None = None,
    region_code: str | None = None,
    added_on: date | None = None,
) -> Organisation:
    session = uow.session
    level = d.Level(level)
    code = str(code).strip()
    name = d.clean_name(name) if name else ""
    if not code or len(code) > 32:
        raise ValidationError(N_("Organisation code is required (up to 32 characters)"), code="org_code_invalid", field="code")
    if not name:
        raise ValidationError(N_("Organisation name is required"), code="org_name_required", field="name")
    parent = None
    if parent_id is not None:
        parent = get_organisation(session, actor, parent_id)
    elif actor.scope_path != "/":
        raise PermissionDenied()
    if not actor.can(d.Permission.EDIT_ORGANISATIONS):
        raise PermissionDenied()
    d.check_parent_level(level, d.Level(parent.level) if parent else None)
    if kind is not None:
        kind = d.OrgKind(kind)
    inn = d.validate_inn(inn)
    if session.scalar(select(Organisation.id).where(Organisation.code == code)) is not None:
        raise Conflict(N_("An organisation with code “%(org_code)s” already exists"), code="org_code_taken", field="code", org_code=code)
    if region_code is None and parent is not None:
        region_code = parent.region_code  # everything under a region belongs to it
    org = Organisation(
        code=code, name=name, level=level, kind=kind, inn=inn, parent_id=parent.id if parent else None,
        path="", region_code=region_code, added_on=added_on or clock.today(),
    )
    session.add(org)
    session.flush()
    org.path = d.child_path(parent.path if parent else None, org.id)
    session.add(OrganisationParentHistory(organisation_id=org.id, parent_id=org.parent_id, valid_from=clock.now()))
    audit.record(session, actor, "organisation.create", "organisation", org.id, org.id, code=code, name=name, level=level)
    return org


def move_organisation(uow: UnitOfWork, actor: Actor, organisation_id: int, new_parent_id: int) -> Organisation:
    """Move a subtree under another parent. Paths below it are rewritten; the old placement stays
    in the parent history, and memberships keep their own dates."""
    session = uow.session
    if not actor.can(d.Permission.EDIT_ORGANISATIONS):
        raise PermissionDenied()
    org = get_organisation(session, actor, organisation_id)
    new_parent = get_organisation(session, actor, new_parent_id)
    if new_parent.path.startswith(org.path):
        raise ValidationError(N_("An organisation cannot be moved inside itself"), code="move_into_self", field="parent")
    d.check_parent_level(d.Level(org.level), d.Level(new_parent.level))
    old_prefix, old_parent_id = org.path, org.parent_id
    new_prefix = d.child_path(new_parent.path, org.id)
    moment = clock.now()
    for table in (Organisation.__table__, Membership.__table__):
        column = table.c.path if table is Organisation.__table__ else table.c.org_path
        session.execute(
            update(table)
            .where(column.like(old_prefix + "%"))
            .values({column.name: new_prefix + func.substr(column, len(old_prefix) + 1)})
        )
    session.execute(
        update(OrganisationParentHistory)
        .where(OrganisationParentHistory.organisation_id == org.id, OrganisationParentHistory.valid_to.is_(None))
        .values(valid_to=moment)
    )
    if new_parent.region_code:
        # Everything under a region belongs to it: a subtree moved to another region follows it.
        session.execute(update(Organisation).where(Organisation.path.like(new_prefix + "%"))
                        .values(region_code=new_parent.region_code))
    session.add(OrganisationParentHistory(organisation_id=org.id, parent_id=new_parent.id, valid_from=moment))
    org.parent_id = new_parent.id
    session.flush()
    session.refresh(org)
    uow.announce(OrganisationMoved(org.id, old_prefix, new_prefix, org.region_code))
    audit.record(session, actor, "organisation.move", "organisation", org.id, org.id,
                 old_parent_id=old_parent_id, new_parent_id=new_parent.id)
    return org


def remove_organisation(uow: UnitOfWork, actor: Actor, organisation_id: int, removed_on: date, reason: str) -> None:
    session = uow.session
    if not actor.can(d.Permission.EDIT_ORGANISATIONS):
        raise PermissionDenied()
    org = get_organisation(session, actor, organisation_id)
    active = session.scalar(
        select(func.count()).select_from(Membership).where(Membership.org_path.like(org.path + "%"), Membership.is_active)
    )
    if active:
        raise Conflict(
            N_("The organisation still has %(count)s registered members: transfer or deregister them first"),
            code="org_has_members", count=active,
        )
    org.removed_on, org.removal_reason = removed_on, reason
    audit.record(session, actor, "organisation.remove", "organisation", org.id, org.id, removed_on=removed_on, reason=reason)


def children(session: Session, actor: Actor, organisation_id: int | None) -> list[Organisation]:
    if organisation_id is None:
        # The roots of what the actor sees: their own organisation.
        return list(session.scalars(select(Organisation).where(Organisation.path == actor.scope_path)))
    parent = get_organisation(session, actor, organisation_id)
    return list(session.scalars(select(Organisation).where(Organisation.parent_id == parent.id).order_by(Organisation.name)))


def member_counts(session: Session, paths: list[str]) -> dict[str, int]:
    """Active members below each path (one query per path; used for a page of children)."""
    result = {}
    for path in paths:
        result[path] = session.scalar(
            select(func.count()).select_from(Membership).where(Membership.org_path.like(path + "%"), Membership.is_active)
        )
    return result


# --- people and memberships ------------------------------------------------------------------

@dataclass
class PersonData:
    surname: str
    given_name: str
    patronymic: str | None
    birth_date: date
    sex: str | None = None
    phone: str | None = None
    email: str | None = None

    def validated(self, today: date) -> "PersonData":
        name = d.validate_person_name(self.surname, self.given_name, self.patronymic)
        return PersonData(
            surname=name.surname,
            given_name=name.given_name,
            patronymic=name.patronymic,
            birth_date=d.validate_birth_date(self.birth_date, today),
            sex=_sex(self.sex),
            phone=d.validate_phone(self.phone),
            email=d.validate_email(self.email),
        )

    @property
    def identity_key(self) -> str:
        return d.identity_key(self.surname, self.given_name, self.patronymic, self.birth_date)


def _sex(value: str | None) -> str | None:
    if not value:
        return None
    try:
        return d.Sex(value).value
    except ValueError:
        raise ValidationError(N_("There is no such sex in the registry"), code="sex_invalid", field="sex") from None


PERSON_FIELDS = ("surname", "given_name", "patronymic", "birth_date", "sex", "phone", "email")


def find_person(session: Session, data: PersonData) -> Person | None:
    return session.scalars(select(Person).where(Person.identity_key == data.identity_key).order_by(Person.id)).first()


def namesakes(session: Session, surname: str, given_name: str, birth_date: date) -> list[Person]:
    """People with this surname, given name and birth date whatever their patronymic (left out,
    or spelt otherwise): who an online applicant may already be."""
    head = f"{d.search_key(surname)} {d.search_key(given_name)}"
    tail = f"|{birth_date.isoformat()}"
    rows = session.scalars(select(Person).where(Person.identity_key.startswith(head, autoescape=True),
                                                Person.identity_key.endswith(tail, autoescape=True))
                           .order_by(Person.id))
    return [p for p in rows if p.identity_key in (head + tail,) or p.identity_key.startswith(head + " ")]


def active_membership(session: Session, person_id: int) -> Membership | None:
    return session.scalar(select(Membership).where(Membership.person_id == person_id, Membership.is_active))


# Many at once, for imports: one query per thousand rows instead of several per row.

def people_by_identity(session: Session, keys) -> dict[str, Person]:
    """The registry's person for each identity key (the oldest record if there are several)."""
    found: dict[str, Person] = {}
    for chunk in chunked(sorted(set(keys))):
        for person in session.scalars(select(Person).where(Person.identity_key.in_(chunk)).order_by(Person.id)):
            found.setdefault(person.identity_key, person)
    return found


def active_memberships_of(session: Session, person_ids) -> dict[int, Membership]:
    found: dict[int, Membership] = {}
    for chunk in chunked(sorted(set(person_ids))):
        for membership in session.scalars(select(Membership).where(Membership.person_id.in_(chunk),
                                                                    Membership.is_active)):
            found[membership.person_id] = membership
    return found


def current_consents_of(session: Session, person_ids) -> dict[int, dict[str, Consent]]:
    found: dict[int, dict[str, Consent]] = {}
    for chunk in chunked(sorted(set(person_ids))):
        for consent in session.scalars(select(Consent).where(Consent.person_id.in_(chunk),
                                                              Consent.withdrawn_on.is_(None)).order_by(Consent.id)):
            found.setdefault(consent.person_id, {})[consent.section] = consent
    return found


def _member_org(session: Session, actor: Actor, organisation_id: int) -> Organisation:
    org = get_organisation(session, actor, organisation_id)
    if not actor.can(d.Permission.EDIT_MEMBERS):
        raise PermissionDenied()
    if d.Level(org.level) not in MEMBER_LEVELS:
        raise ValidationError(
            N_("Members are registered only in primary organisations and their subdivisions"),
            code="org_not_primary", field="organisation",
        )
    if org.removed_on is not None:
        raise ValidationError(N_("The organisation has been removed from the registry"), code="org_removed")
    return org


def register_member(
    uow: UnitOfWork,
    actor: Actor,
    organisation_id: int,
    person: PersonData,
    *,
    category: str,
    join_date: date,
    transfer: bool = False,
    today: date | None = None,
) -> Membership:
    """Put a person on the register of a primary organisation.

    A person is on exactly one register at a time: if they are on another one, this is refused,
    unless ``transfer`` is set, in which case the old membership ends («transferred») the day
    before and a new one starts here, in one transaction.
    """
    session = uow.session
    today = today or clock.today()
    org = _member_org(session, actor, organisation_id)
    person = person.validated(today)
    category = d.Category(category)
    d.validate_membership_dates(person.birth_date, join_date, None, today)
    _lock_identity(session, person.identity_key)
    existing = find_person(session, person)
    if existing is not None:
        current = active_membership(session, existing.id)
        if current is not None:
            if current.organisation_id == org.id:
                raise Conflict(N_("This person is already registered in this organisation"), code="already_member_here")
            if not actor.sees(current.org_path):
                # Where someone outside the actor's part of the union is registered is not theirs to
                # learn; nor may they take the member over from there.
                raise Conflict(REGISTERED_OUTSIDE_SCOPE, code="registered_elsewhere")
            if not transfer:
                other = session.get(Organisation, current.organisation_id)
                raise Conflict(
                    N_("This person is already registered in another primary organisation: “%(name)s” (code %(org_code)s). "
                       "A person can be registered in only one organisation; transfer them instead."),
                    code="registered_elsewhere", name=other.name, org_code=other.code,
                )
            _end_membership(session, actor, current, join_date, d.LeaveReason.TRANSFERRED, uow)
        for field_name in PERSON_FIELDS:
            new_value = getattr(person, field_name)
            if new_value is not None:
                setattr(existing, field_name, new_value)
        record = existing
    else:
        record = Person(**{f: getattr(person, f) for f in PERSON_FIELDS}, identity_key=person.identity_key,
                        created_at=clock.now())
        session.add(record)
        session.flush()
    membership = Membership(
        person_id=record.id, organisation_id=org.id, org_path=org.path,
        sort_name=d.sort_name(record.surname, record.given_name, record.patronymic),
        category=category, join_date=join_date, is_active=True,
    )
    session.add(membership)
    session.flush()
    audit.record(session, actor, "member.transfer_in" if transfer and existing else "member.register", "membership",
                 membership.id, org.id, person_id=record.id, category=category, join_date=join_date)
    return membership


def _lock_identity(session: Session, key: str) -> None:
    """Serialise registrations of the same person until commit, so two clerks registering one
    person at the same moment cannot create two records. SQLite needs nothing: every write
    transaction there starts with BEGIN IMMEDIATE and so holds the database's write lock."""
    _lock_identities(session, [key])


def _lock_identities(session: Session, keys) -> None:
    if session.get_bind().dialect.name != "postgresql" or not keys:
        return
    # Always in the same (hash) order, so two imports that share people cannot deadlock.
    session.execute(text(
        "SELECT pg_advisory_xact_lock(h) FROM (SELECT DISTINCT hashtextextended(k, 0) AS h "
        "FROM unnest(CAST(:keys AS text[])) AS k ORDER BY h) AS ordered"
    ), {"keys": sorted(set(keys))})


@dataclass(frozen=True)
class NewMember:
    """One row of a bulk registration: a person not yet in the registry."""
    person: PersonData
    category: str
    join_date: date
    consents: tuple[tuple[str, date, str], ...] = ()  # (section, given on, form)


def register_new_members(uow: UnitOfWork, actor: Actor, organisation_id: int, entries: list[NewMember],
                         today: date | None = None) -> list[int]:
    """Register many people who are in no register yet, in a few statements; the same checks and
    audit rows as :func:`register_member` and :func:`give_consent` one by one. Refuses the lot
    (Conflict) if any of them is already in the registry, e.g. added since the caller looked.
    Returns the new memberships' ids in the order given."""
    if not entries:
        return []
    session = uow.session
    today = today or clock.today()
    org = _member_org(session, actor, organisation_id)
    rows = []
    for entry in entries:
        person = entry.person.validated(today)
        d.validate_membership_dates(person.birth_date, entry.join_date, None, today)
        for _section, given_on, form in entry.consents:
            d.ConsentForm(form)
            _check_consent_date(given_on, today)
        rows.append((person, d.Category(entry.category), entry))
    keys = [person.identity_key for person, _, _ in rows]
    if len(set(keys)) != len(keys):
        raise Conflict(N_("The same person appears twice"), code="person_duplicate")
    _lock_identities(session, keys)
    if people_by_identity(session, keys):
        raise Conflict(N_("The registry changed while the file was being imported; please import it again"),
                       code="registry_changed")
    now = clock.now()
    person_ids = list(session.scalars(
        insert(Person).returning(Person.id, sort_by_parameter_order=True),
        [dict({f: getattr(person, f) for f in PERSON_FIELDS}, identity_key=person.identity_key, created_at=now)
         for person, _, _ in rows],
    ))
    membership_ids = list(session.scalars(
        insert(Membership).returning(Membership.id, sort_by_parameter_order=True),
        [dict(person_id=person_id, organisation_id=org.id, org_path=org.path, is_active=True,
              sort_name=d.sort_name(person.surname, person.given_name, person.patronymic),
              category=category, join_date=entry.join_date)
         for person_id, (person, category, entry) in zip(person_ids, rows)],
    ))
    audit_rows = [audit.values(actor, "member.register", "membership", membership_id, org.id, person_id=person_id,
                               category=category, join_date=entry.join_date)
                  for membership_id, person_id, (_, category, entry) in zip(membership_ids, person_ids, rows)]
    consent_rows = [dict(person_id=person_id, section=d.ConsentSection(section), given_on=given_on,
                         form=d.ConsentForm(form), recorded_at=now, recorded_by=actor.user_id)
                    for person_id, (_, _, entry) in zip(person_ids, rows) for section, given_on, form in entry.consents]
    if consent_rows:
        consent_ids = list(session.scalars(insert(Consent).returning(Consent.id, sort_by_parameter_order=True),
                                           consent_rows))
        audit_rows += [audit.values(actor, "consent.give", "consent", consent_id, org.id, person_id=row["person_id"],
                                    section=row["section"], form=row["form"], given_on=row["given_on"])
                       for consent_id, row in zip(consent_ids, consent_rows)]
    audit.record_many(session, audit_rows)
    return membership_ids


def _end_membership(session, actor, membership: Membership, leave_date: date, reason: str, uow: UnitOfWork) -> None:
    d.validate_membership_dates(None, membership.join_date, leave_date, clock.today())
    membership.leave_date, membership.leave_reason, membership.is_active = leave_date, reason, False
    session.flush()
    audit.record(session, actor, "member.deregister", "membership", membership.id, membership.organisation_id,
                 person_id=membership.person_id, leave_date=leave_date, reason=reason)
    uow.announce(MembershipEnded(membership.id, membership.person_id, reason))


def get_membership(session: Session, actor: Actor, membership_id: int) -> Membership:
    membership = session.get(Membership, membership_id)
    if membership is None or not actor.sees(membership.org_path) or not actor.can(d.Permission.VIEW_MEMBERS):
        raise NotFound(N_("Member not found"), code="member_not_found")
    return membership


def view_member(uow: UnitOfWork, actor: Actor, membership_id: int) -> Membership:
    """Read a member's personal data; every such view is audited."""
    membership = get_membership(uow.session, actor, membership_id)
    audit.record(uow.session, actor, "member.view", "membership", membership.id, membership.organisation_id,
                 person_id=membership.person_id)
    return membership


def update_member(
    uow: UnitOfWork, actor: Actor, membership_id: int, person: PersonData, *, category: str, join_date: date,
    today: date | None = None,
) -> dict:
    """Correct a member's record; returns the changes {field: (old, new)}."""
    session = uow.session
    today = today or clock.today()
    membership = get_membership(session, actor, membership_id)
    _member_org(session, actor, membership.organisation_id)
    person = person.validated(today)
    d.validate_membership_dates(person.birth_date, join_date, membership.leave_date, today)
    record = membership.person
    clash = find_person(session, person)
    if clash is not None and clash.id != record.id:
        raise Conflict(N_("Another person with the same name and birth date is already in the registry"),
                       code="person_duplicate")
    changes = {}
    for field_name in PERSON_FIELDS:
        old, new = getattr(record, field_name), getattr(person, field_name)
        if old != new:
            changes[field_name] = (old, new)
            setattr(record, field_name, new)
    record.identity_key = person.identity_key
    if membership.category != category:
        changes["category"] = (membership.category, d.Category(category).value)
        membership.category = d.Category(category)
    if membership.join_date != join_date:
        changes["join_date"] = (membership.join_date, join_date)
        membership.join_date = join_date
    # Every membership of this person carries the sort key.
    session.execute(update(Membership).where(Membership.person_id == record.id)
                    .values(sort_name=d.sort_name(record.surname, record.given_name, record.patronymic)))
    if changes:
        audit.record(session, actor, "member.update", "membership", membership.id, membership.organisation_id,
                     fields=sorted(changes))
    return changes


def deregister_member(uow: UnitOfWork, actor: Actor, membership_id: int, leave_date: date, reason: str) -> Membership:
    session = uow.session
    membership = get_membership(session, actor, membership_id)
    _member_org(session, actor, membership.organisation_id)
    if not membership.is_active:
        raise Conflict(N_("This member has already been deregistered"), code="already_deregistered")
    _end_membership(session, actor, membership, leave_date, d.LeaveReason(reason), uow)
    return membership


def name_starts_with(query: str):
    """The condition on a membership whose «surname given-name patronymic» starts with ``query``
    (ё and е alike, any case): the one name search of the registry, the roster's too."""
    escaped = d.search_key(query).replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return Membership.sort_name.like(escaped + "%", escape="\\")


# The order of every member list (and of its keyset pages): by name, then by id among namesakes.
MEMBER_ORDER = (Membership.sort_name, Membership.id)


def list_members(
    session: Session, actor: Actor, organisation_id: int, *, query: str = "", page: int = 1, per_page: int = 50,
    include_former: bool = False, after: int | None = None, before: int | None = None,
) -> tuple[list[Membership], int]:
    """Members of an organisation's subtree, sorted by name; ``query`` matches the start of the
    surname (or of «surname given-name»), ё and е alike, any case.

    ``after`` / ``before`` (a membership id: the last / first row of the page the user came from)
    page by the sort key itself (keyset), so page 1 000 of a region costs what page 1 does; the
    key is looked up from the id, so no name ever travels in an address. Without them ``page``
    is counted off from the start (OFFSET), for an address typed by hand."""
    org = get_organisation(session, actor, organisation_id)
    if not actor.can(d.Permission.VIEW_MEMBERS):
        raise NotFound(N_("Organisation not found"), code="organisation_not_found")
    conditions = [Membership.org_path.like(org.path + "%")]
    if not include_former:
        conditions.append(Membership.is_active)
    if d.search_key(query):
        conditions.append(name_starts_with(query))
    total = session.scalar(select(func.count()).select_from(Membership).where(*conditions))
    key = tuple_(*MEMBER_ORDER)
    cursor_id = after if after is not None else before
    cursor = session.execute(select(*MEMBER_ORDER).where(Membership.id == cursor_id)).first() \
        if cursor_id is not None else None
    if cursor is not None and after is not None:
        statement = select(Membership).where(*conditions, key > tuple_(*cursor)).order_by(*MEMBER_ORDER).limit(per_page)
        return list(session.scalars(statement)), total
    if cursor is not None:
        statement = select(Membership).where(*conditions, key < tuple_(*cursor)) \
            .order_by(*(column.desc() for column in MEMBER_ORDER)).limit(per_page)
        return list(reversed(session.scalars(statement).all())), total
    page = max(1, page)
    rows = list(session.scalars(
        select(Membership).where(*conditions).order_by(*MEMBER_ORDER)
        .offset((page - 1) * per_page).limit(per_page)
    ))
    return rows, total


# --- consents --------------------------------------------------------------------------------

def current_consents(session: Session, person_id: int) -> dict[str, Consent]:
    rows = session.scalars(
        select(Consent).where(Consent.person_id == person_id, Consent.withdrawn_on.is_(None)).order_by(Consent.id)
    )
    return {row.section: row for row in rows}


def consent_history(session: Session, person_id: int) -> list[Consent]:
    return list(session.scalars(select(Consent).where(Consent.person_id == person_id).order_by(Consent.id)))


def has_consent(session: Session, person_id: int, section: str) -> bool:
    return d.ConsentSection(section) in current_consents(session, person_id)


def _check_consent_date(given_on: date, today: date) -> None:
    if given_on > today:
        raise ValidationError(N_("The consent date is in the future"), code="consent_date_future", field="given_on")


def give_consent(uow: UnitOfWork, actor: Actor, membership_id: int, section: str, given_on: date, form: str) -> Consent:
    session = uow.session
    membership = get_membership(session, actor, membership_id)
    _member_org(session, actor, membership.organisation_id)
    section, form = d.ConsentSection(section), d.ConsentForm(form)
    _check_consent_date(given_on, clock.today())
    if section in current_consents(session, membership.person_id):
        raise Conflict(N_("This consent has already been given"), code="consent_already_given")
    consent = Consent(person_id=membership.person_id, section=section, given_on=given_on, form=form,
                      recorded_at=clock.now(), recorded_by=actor.user_id)
    session.add(consent)
    session.flush()
    audit.record(session, actor, "consent.give", "consent", consent.id, membership.organisation_id,
                 person_id=membership.person_id, section=section, form=form, given_on=given_on)
    return consent


def withdraw_consent(uow: UnitOfWork, actor: Actor, membership_id: int, section: str, withdrawn_on: date) -> Consent:
    session = uow.session
    membership = get_membership(session, actor, membership_id)
    _member_org(session, actor, membership.organisation_id)
    return _withdraw(uow, actor, membership, section, withdrawn_on)


def withdraw_own_consent(uow: UnitOfWork, person_id: int, section: str, *, channel: str) -> Consent:
    """A member withdraws a consent from their own page, with effect today (152-FZ art. 9 §2).
    ``channel`` names how they proved who they are (the confirmed e-mail or phone)."""
    membership = active_membership(uow.session, person_id)
    if membership is None:
        raise NotFound(N_("Member not found"), code="member_not_found")
    return _withdraw(uow, Actor.member(person_id), membership, section, clock.today(), channel=channel)


def give_own_consent(uow: UnitOfWork, person_id: int, section: str, *, channel: str) -> Consent:
    """A member gives consent section 2 or 3 from their own page (electronic, today). Section 1 is
    given on joining or on paper: it is what the registry holds them by."""
    section = d.ConsentSection(section)
    if section == d.ConsentSection.PROCESSING:
        raise ValidationError(N_("Consent to processing is given at your primary organisation"),
                              code="consent_processing_by_organisation")
    membership = active_membership(uow.session, person_id)
    if membership is None:
        raise NotFound(N_("Member not found"), code="member_not_found")
    if section in current_consents(uow.session, person_id):
        raise Conflict(N_("This consent has already been given"), code="consent_already_given")
    consent = Consent(person_id=person_id, section=section, given_on=clock.today(), form=d.ConsentForm.ELECTRONIC,
                      recorded_at=clock.now(), recorded_by=None)
    uow.session.add(consent)
    uow.session.flush()
    audit.record(uow.session, Actor.member(person_id), "consent.give", "consent", consent.id,
                 membership.organisation_id, person_id=person_id, section=section, form=consent.form,
                 given_on=consent.given_on, channel=channel)
    return consent


def _withdraw(uow: UnitOfWork, actor: Actor, membership: Membership, section: str, withdrawn_on: date,
              **details) -> Consent:
    session = uow.session
    section = d.ConsentSection(section)
    consent = current_consents(session, membership.person_id).get(section)
    if consent is None:
        raise Conflict(N_("This consent has not been given"), code="consent_not_given")
    if withdrawn_on < consent.given_on or withdrawn_on > clock.today():
        raise ValidationError(N_("The withdrawal date must be between the consent date and today"),
                              code="consent_withdrawal_date_invalid", field="withdrawn_on")
    consent.withdrawn_on = withdrawn_on
    audit.record(session, actor, "consent.withdraw", "consent", consent.id, membership.organisation_id,
                 person_id=membership.person_id, section=section, withdrawn_on=withdrawn_on, **details)
    uow.announce(ConsentWithdrawn(membership.person_id, section))
    return consent


# --- chairpersons and users ---------------------------------------------------------------------

def appoint_chairperson(uow: UnitOfWork, actor: Actor, organisation_id: int, person_id: int,
                        starts_on: date, ends_on: date) -> ChairpersonTerm:
    session = uow.session
    org = get_organisation(session, actor, organisation_id)
    if not actor.can(d.Permission.MANAGE_USERS):
        raise PermissionDenied()
    if ends_on <= starts_on:
        raise ValidationError(N_("The term must end after it starts"), code="term_dates_invalid", field="ends_on")
    # The chairperson is a current member the appointer can see: another region's person ids
    # are as unknown here as anywhere else.
    member_paths = session.scalars(select(Membership.org_path).where(
        Membership.person_id == person_id, Membership.is_active.is_(True))).all()
    if not any(actor.sees(path) for path in member_paths):
        raise NotFound(N_("Member not found"), code="member_not_found")
    # A new term ends the previous chairperson's term the day before, and with it their login.
    for previous in session.scalars(select(ChairpersonTerm).where(
            ChairpersonTerm.organisation_id == org.id, ChairpersonTerm.ends_on >= starts_on)):
        previous.ends_on = min(previous.ends_on, starts_on)
    term = ChairpersonTerm(organisation_id=org.id, person_id=person_id, starts_on=starts_on, ends_on=ends_on)
    session.add(term)
    session.flush()
    audit.record(session, actor, "chairperson.appoint", "chairperson_term", term.id, org.id,
                 person_id=person_id, starts_on=starts_on, ends_on=ends_on)
    return term


def current_chairperson(session: Session, organisation_id: int, on: date | None = None) -> ChairpersonTerm | None:
    on = on or clock.today()
    return session.scalars(select(ChairpersonTerm).where(
        ChairpersonTerm.organisation_id == organisation_id, ChairpersonTerm.starts_on <= on,
        ChairpersonTerm.ends_on >= on).order_by(ChairpersonTerm.starts_on.desc())).first()


PASSWORD_MIN_LENGTH = 10
# What people type and read back without doubt, and what fits a log line.
LOGIN_PATTERN = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")


def create_user(uow: UnitOfWork, actor: Actor, *, login: str, password: str, full_name: str, role: str,
                organisation_id: int, valid_until: date | None = None,
                chairperson_term_id: int | None = None) -> UserAccount:
    session = uow.session
    if not actor.can(d.Permission.MANAGE_USERS):
        raise PermissionDenied()
    org = get_organisation(session, actor, organisation_id)
    role = d.Role(role)
    login = login.strip().lower()
    if not login or len(login) > 64:
        raise ValidationError(N_("Login is required"), code="login_required", field="login")
    if not LOGIN_PATTERN.fullmatch(login):
        raise ValidationError(N_("A login is Latin letters, digits, dots, hyphens and underscores"),
                              code="login_invalid", field="login")
    full_name = " ".join((full_name or "").split())[:300]
    if not full_name:
        raise ValidationError(N_("Give the person's full name"), code="full_name_required", field="full_name")
    if len(password) < PASSWORD_MIN_LENGTH:
        raise ValidationError(N_("The password must be at least %(length)s characters long"),
                              code="password_too_short", field="password", length=PASSWORD_MIN_LENGTH)
    if session.scalar(select(UserAccount.id).where(UserAccount.login == login)) is not None:
        raise Conflict(N_("The login “%(login)s” is taken"), code="login_taken", field="login", login=login)
    if role == d.Role.CHAIRPERSON:
        # A chairperson's login lives as long as the term of office: it needs one, of this organisation.
        term = (session.get(ChairpersonTerm, chairperson_term_id) if chairperson_term_id
                else current_chairperson(session, org.id))
        if term is None or term.organisation_id != org.id or term.ends_on < clock.today():
            raise ValidationError(N_("Appoint the chairperson of this organisation first (a term of office), "
                                     "then create the login"), code="chairperson_term_required",
                                  field="chairperson_term_id")
        _one_login_per_term(session, term.id)
        chairperson_term_id = term.id
    user = UserAccount(login=login, password_hash=hash_password(password), full_name=full_name, role=role,
                       organisation_id=org.id, valid_until=valid_until, chairperson_term_id=chairperson_term_id,
                       is_enabled=True, failed_logins=0, created_at=clock.now())
    session.add(user)
    session.flush()
    audit.record(session, actor, "user.create", "user", user.id, org.id, login=login, role=role)
    return user


# Salted scrypt (n=2**15, r=8, p=1). Tests lower the cost; nothing else should.
PASSWORD_HASH_METHOD = "scrypt:32768:8:1"


def _one_login_per_term(session: Session, term_id: int) -> None:
    """A term of office has one login: the appointed person's."""
    if session.scalar(select(UserAccount.id).where(UserAccount.chairperson_term_id == term_id)) is not None:
        raise Conflict(N_("This chairperson already has a login: give it a new password on its page instead"),
                       code="chairperson_login_exists", field="chairperson_term_id")


def hash_password(password: str) -> str:
    return generate_password_hash(password, method=PASSWORD_HASH_METHOD)


# A fixed hash to compare against for unknown logins, so timing does not reveal which exist.
_DUMMY_HASH = None


def login_valid_until(user: UserAccount) -> date | None:
    """The last day a login works: its own limit, and for a chairperson the end of the term."""
    limits = [x for x in (user.valid_until, user.chairperson_term.ends_on if user.chairperson_term else None) if x]
    return min(limits) if limits else None


class LoginRefused(PermissionDenied):
    code = "login_refused"
    message = N_("Wrong login or password")


# Failures from all addresses together that lock a login everywhere: far above what one
# address may try (the per-address lock comes first), so only a spread-out guessing campaign
# reaches it, not a stranger who wants to lock someone out.
ACCOUNT_WIDE_FACTOR = 10


def authenticate(uow: UnitOfWork, login: str, password: str, *, lockout_threshold: int,
                 lockout_minutes: int, address: str | None = None) -> UserAccount:
    """Check a password. Repeated failures from one address lock the login from that address
    (many more from everywhere lock it everywhere). An unknown login, a wrong password and a
    locked login all get the same answer, so the answer tells no one which logins exist. A
    disabled login or an ended term of office is said only to whoever knows the password.
    Every outcome is audited."""
    global _DUMMY_HASH
    from datetime import timedelta

    from unioncard.registry.models import LoginThrottle

    session = uow.session
    now = clock.now()
    address = (address or "unknown")[:45]
    user = session.scalar(select(UserAccount).where(UserAccount.login == (login or "").strip().lower()[:64]))
    if user is None:
        _DUMMY_HASH = _DUMMY_HASH or hash_password("not a password")
        check_password_hash(_DUMMY_HASH, password or "")
        audit.record(session, Actor.system("anonymous"), "login.unknown_user", "user", None)
        uow.commit()
        raise LoginRefused()
    actor = Actor(user.id, user.login, user.role, user.organisation.path, user.organisation_id)
    throttle = session.scalar(select(LoginThrottle).where(LoginThrottle.user_id == user.id,
                                                          LoginThrottle.address == address))
    if (throttle and throttle.locked_until and throttle.locked_until > now) or \
            (user.locked_until and user.locked_until > now):
        # The password is not even checked: a locked login answers exactly as a wrong password does.
        check_password_hash(user.password_hash, "")
        audit.record(session, actor, "login.locked", "user", user.id, address=address)
        uow.commit()
        raise LoginRefused()
    if not check_password_hash(user.password_hash, password or ""):
        if throttle is None:
            throttle = LoginThrottle(user_id=user.id, address=address, failures=0, updated_at=now)
            session.add(throttle)
        throttle.failures += 1
        throttle.updated_at = now
        if throttle.failures >= lockout_threshold:
            throttle.locked_until = now + timedelta(minutes=lockout_minutes)
            throttle.failures = 0
        user.failed_logins += 1
        if user.failed_logins >= lockout_threshold * ACCOUNT_WIDE_FACTOR:
            user.locked_until = now + timedelta(minutes=lockout_minutes)
            user.failed_logins = 0
        audit.record(session, actor, "login.failed", "user", user.id, address=address)
        uow.commit()
        raise LoginRefused()
    valid_until = login_valid_until(user)
    if not user.is_enabled or (valid_until is not None and valid_until < clock.today()):
        audit.record(session, actor, "login.expired", "user", user.id)
        uow.commit()
        raise LoginRefused(N_("This login is blocked: the term of office has ended or access was withdrawn"),
                           code="login_blocked")
    user.failed_logins, user.locked_until, user.last_login_at = 0, None, now
    if throttle is not None:
        session.delete(throttle)
    audit.record(session, actor, "login.success", "user", user.id, address=address)
    uow.commit()
    return user


def _managed_user(session: Session, actor: Actor, user_id: int) -> UserAccount:
    if not actor.can(d.Permission.MANAGE_USERS):
        raise PermissionDenied()
    user = session.get(UserAccount, user_id)
    if user is None or not actor.sees(user.organisation.path):
        raise NotFound(N_("No such user"), code="user_not_found")
    return user


def get_user_by_login(session: Session, actor: Actor, login: str) -> UserAccount:
    user = session.scalar(select(UserAccount).where(UserAccount.login == (login or "").strip().lower()[:64]))
    if user is None:
        raise NotFound(N_("No such user"), code="user_not_found")
    return _managed_user(session, actor, user.id)


def set_password(uow: UnitOfWork, actor: Actor, user_id: int, password: str) -> UserAccount:
    """A new password (set by the user, or reset by an administrator): every open session of the
    user ends, so whoever knew the old one is out at once."""
    from unioncard.registry import sessions

    session = uow.session
    user = session.get(UserAccount, user_id) if actor.user_id == user_id else _managed_user(session, actor, user_id)
    if user is None:
        raise NotFound(N_("No such user"), code="user_not_found")
    if len(password) < PASSWORD_MIN_LENGTH:
        raise ValidationError(N_("The password must be at least %(length)s characters long"),
                              code="password_too_short", field="password", length=PASSWORD_MIN_LENGTH)
    user.password_hash = hash_password(password)
    ended = sessions.end_all(uow, user.id, "password_changed")
    audit.record(session, actor, "user.password_set", "user", user.id, user.organisation_id, sessions_ended=ended)
    return user


def set_enabled(uow: UnitOfWork, actor: Actor, user_id: int, enabled: bool) -> UserAccount:
    """Disable (or enable again) a login; disabling ends its open sessions."""
    from unioncard.registry import sessions

    session = uow.session
    user = _managed_user(session, actor, user_id)
    if not enabled and user.id == actor.user_id:
        raise Conflict(N_("You cannot disable your own login"), code="own_login")
    user.is_enabled = enabled
    ended = 0 if enabled else sessions.end_all(uow, user.id, "disabled")
    audit.record(session, actor, "user.enable" if enabled else "user.disable", "user", user.id,
                 user.organisation_id, sessions_ended=ended)
    return user


def list_users(session: Session, actor: Actor, *, query: str = "", include_disabled: bool = True,
               page: int = 1, per_page: int = 50) -> tuple[list[UserAccount], int]:
    """Logins in the administrator's part of the union, by login; ``query`` matches a part of the
    login or of the name."""
    if not actor.can(d.Permission.MANAGE_USERS):
        raise PermissionDenied()
    where = [Organisation.path.startswith(actor.scope_path)]
    typed = (query or "").strip()[:100].replace("\\", "").replace("%", "").replace("_", "")
    if typed:
        # SQLite's lower() knows only ASCII: the name is also matched as typed and capitalised.
        patterns = {f"%{typed}%", f"%{typed.lower()}%", f"%{typed[:1].upper()}{typed[1:].lower()}%"}
        where.append(or_(*[column.like(p) for p in patterns
                           for column in (func.lower(UserAccount.login), UserAccount.full_name)]))
    if not include_disabled:
        where.append(UserAccount.is_enabled.is_(True))
    base = select(UserAccount).join(Organisation, Organisation.id == UserAccount.organisation_id).where(*where)
    total = session.scalar(select(func.count()).select_from(base.subquery()))
    rows = session.scalars(base.order_by(UserAccount.login).offset((page - 1) * per_page).limit(per_page)).all()
    return list(rows), total


def get_user(session: Session, actor: Actor, user_id: int) -> UserAccount:
    return _managed_user(session, actor, user_id)


USER_ACTIONS = tuple(d.USER_ACTION_LABELS)


def user_history(session: Session, actor: Actor, user_id: int, limit: int = 20) -> list[AuditEntry]:
    """What was done to a login and with it, newest first (from the audit trail)."""
    user = _managed_user(session, actor, user_id)
    return list(session.scalars(select(AuditEntry).where(
        AuditEntry.object_type == "user", AuditEntry.object_id == str(user.id),
        AuditEntry.action.in_(USER_ACTIONS)).order_by(AuditEntry.id.desc()).limit(limit)))


def new_password() -> str:
    """A password to hand over by voice or on paper: no look-alike letters or digits."""
    import secrets

    alphabet = "abcdefghjkmnpqrstuvwxyz23456789"
    return "-".join("".join(secrets.choice(alphabet) for _ in range(4)) for _ in range(3))


def change_role(uow: UnitOfWork, actor: Actor, user_id: int, role: str, organisation_id: int,
                chairperson_term_id: int | None = None) -> UserAccount:
    """A new role or scope (organisation) for a login. Nobody changes their own: an administrator
    who narrowed their own scope by mistake could not undo it. The new organisation must lie in
    the administrator's own part of the union; a chairperson needs a term of office there."""
    session = uow.session
    user = _managed_user(session, actor, user_id)
    if user.id == actor.user_id:
        raise Conflict(N_("You cannot change your own role or organisation; ask another administrator"),
                       code="own_role")
    org = get_organisation(session, actor, organisation_id)
    role = d.Role(role)
    term_id = None
    if role == d.Role.CHAIRPERSON:
        # A chairperson's login is the appointed person's own, made at the appointment: another
        # login cannot be turned into one, nor moved elsewhere (it would borrow someone's term).
        if user.role != d.Role.CHAIRPERSON or org.id != user.organisation_id:
            raise Conflict(N_("A chairperson's login is created after the appointment, on the organisation's page"),
                           code="chairperson_via_appointment")
        term_id = user.chairperson_term_id
    before = (user.role, user.organisation_id)
    user.role, user.organisation_id, user.chairperson_term_id = role, org.id, term_id
    session.flush()
    audit.record(session, actor, "user.role_change", "user", user.id, org.id, role_before=before[0],
                 organisation_before=before[1], role=role, organisation=org.id)
    return user


def actor_for(user: UserAccount) -> Actor:
    return Actor(user.id, user.login, user.role, user.organisation.path, user.organisation_id)


def user_is_active(user: UserAccount) -> bool:
    valid_until = login_valid_until(user)
    return user.is_enabled and (valid_until is None or valid_until >= clock.today())
