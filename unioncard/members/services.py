"""The members' own door. Every function takes the principal a member proved with a one-time code:
the contact (an e-mail address or a phone) and, once chosen, one person reachable by it. Nothing
here reaches a person the contact does not belong to."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from unioncard import clock
from unioncard.db import UnitOfWork
from unioncard.errors import NotFound, RateLimited, ValidationError
from unioncard.i18n import N_, translate
from unioncard.members import domain as md
from unioncard.members.models import SignInCode
from unioncard.messaging import domain as msg
from unioncard.messaging import services as outbox
from unioncard.registry import services as registry
from unioncard.registry.models import AuditEntry, Consent, Membership, Organisation, Person, UserAccount

SIGN_IN_SUBJECT = N_("Your sign-in code for UnionCard")
SIGN_IN_BODY = N_("Your code: %(code)s\n\nIt is valid for 10 minutes. If you did not ask for it, ignore this "
                  "message: nobody can sign in without the code.")


@dataclass(frozen=True)
class MemberPrincipal:
    """Who is signed in on the members' page: the contact they proved, and the person chosen."""
    channel: str
    contact: str
    person_id: int | None = None
    session_id: int | None = None


def parse_contact(text: str) -> tuple[str, str]:
    found = msg.normalise_contact(text)
    if found is None:
        raise ValidationError(N_("This does not look like an e-mail address or a mobile phone number"),
                              code="contact_invalid", field="contact")
    return found


def _people_by_contact(session: Session, channel: str, contact: str) -> list[Person]:
    column = Person.email if channel == msg.Channel.EMAIL else Person.phone
    return list(session.scalars(select(Person).join(Membership, Membership.person_id == Person.id)
                                .where(column == contact, Membership.is_active).order_by(Person.id)))


def request_code(uow: UnitOfWork, text: str, secret: str) -> None:
    """Send a code to the contact if a member has it. The caller's answer is the same either way;
    a row is written either way, and the per-contact limits count both."""
    channel, contact = parse_contact(text)
    session = uow.session
    now = clock.now()
    recent = session.scalar(select(func.count()).select_from(SignInCode).where(
        SignInCode.contact == contact, SignInCode.created_at > now - md.CODES_WINDOW))
    today = session.scalar(select(func.count()).select_from(SignInCode).where(
        SignInCode.contact == contact, SignInCode.created_at > now - md.CODES_DAY))
    if recent >= md.CODES_PER_CONTACT or today >= md.CODES_PER_CONTACT_PER_DAY:
        raise RateLimited(N_("Too many codes were asked for this address. Try again in a quarter of an hour."),
                          code="sign_in_codes_exhausted")
    code = md.new_code()
    # Earlier codes for the contact stop working: only the newest one opens.
    session.execute(update(SignInCode).where(SignInCode.contact == contact, SignInCode.used_at.is_(None))
                    .values(used_at=now))
    session.add(SignInCode(contact=contact, code_hash=md.code_hash(secret, contact, code), created_at=now,
                           expires_at=now + md.CODE_LIFETIME, attempts=0))
    people = _people_by_contact(session, channel, contact)
    if people:
        outbox.enqueue(session, channel=channel, address=contact, kind=msg.Kind.SIGN_IN_CODE,
                       subject=translate(SIGN_IN_SUBJECT, "ru"), body=translate(SIGN_IN_BODY, "ru", code=code),
                       person_id=people[0].id)
    uow.commit()


def sign_in(uow: UnitOfWork, text: str, code: str, secret: str) -> MemberPrincipal:
    """Check the code; a wrong, expired, used or unknown one gets one and the same refusal."""
    refused = ValidationError(N_("The code is wrong or no longer valid. Ask for a new one."),
                              code="sign_in_code_invalid", field="code")
    found = msg.normalise_contact(text)
    if found is None:
        raise refused
    channel, contact = found
    session = uow.session
    now = clock.now()
    row = session.scalar(select(SignInCode).where(SignInCode.contact == contact, SignInCode.used_at.is_(None),
                                                  SignInCode.expires_at > now)
                         .order_by(SignInCode.id.desc()).limit(1).with_for_update())
    if row is None or not md.may_try(row.expires_at, row.attempts, now):
        raise refused
    row.attempts += 1
    if not md.codes_match(row.code_hash, secret, contact, code):
        uow.commit()
        raise refused
    row.used_at = now
    people = _people_by_contact(session, channel, contact)
    if not people:
        uow.commit()
        raise refused
    row.signed_in_at = now
    registry_audit(session, people[0].id, "member.sign_in", channel=channel)
    uow.commit()
    return MemberPrincipal(channel, contact, people[0].id if len(people) == 1 else None, row.id)


def resume(session: Session, session_id: int, person_id: int | None, max_age) -> MemberPrincipal:
    """The member signed in by the code row ``session_id``, while that session lasts."""
    row = session.get(SignInCode, session_id) if session_id else None
    if row is None or row.signed_in_at is None or row.signed_out_at is not None \
            or row.signed_in_at <= clock.now() - max_age:
        raise NotFound(N_("Member not found"), code="member_session_ended")
    channel = msg.Channel.EMAIL if "@" in row.contact else msg.Channel.SMS
    return MemberPrincipal(channel, row.contact, person_id, row.id)


def sign_out(uow: UnitOfWork, principal: MemberPrincipal) -> None:
    if principal.session_id:
        row = uow.session.get(SignInCode, principal.session_id)
        if row is not None and row.signed_out_at is None:
            row.signed_out_at = clock.now()
            uow.commit()


def registry_audit(session: Session, person_id: int, action: str, **details) -> None:
    from unioncard.registry import audit
    from unioncard.registry.actor import Actor

    membership = registry.active_membership(session, person_id)
    audit.record(session, Actor.member(person_id), action, "membership", membership.id if membership else None,
                 membership.organisation_id if membership else None, person_id=person_id, **details)


def people_of(session: Session, principal: MemberPrincipal) -> list[Person]:
    """Everyone a confirmed contact reaches (usually one; a family may share an address)."""
    return _people_by_contact(session, principal.channel, principal.contact)


def choose(session: Session, principal: MemberPrincipal, person_id: int) -> MemberPrincipal:
    if person_id not in {p.id for p in people_of(session, principal)}:
        raise NotFound(N_("Member not found"), code="member_not_found")
    return MemberPrincipal(principal.channel, principal.contact, person_id, principal.session_id)


def _own_person(session: Session, principal: MemberPrincipal) -> Person:
    """The chosen person, checked again against the contact on every request: a contact changed
    in the registry since sign-in no longer opens the page."""
    if principal.person_id is None:
        raise NotFound(N_("Member not found"), code="member_not_found")
    for person in people_of(session, principal):
        if person.id == principal.person_id:
            return person
    raise NotFound(N_("Member not found"), code="member_not_found")


@dataclass(frozen=True)
class CardLine:
    id: int
    kind: str
    number: str | None
    status: str
    status_changed_at: datetime
    history: list


@dataclass(frozen=True)
class MyPage:
    person: Person
    membership: Membership
    organisation_chain: list[str]
    cards: list[CardLine]
    consents: dict[str, Consent]
    consent_history: list[Consent]


def my_page(session: Session, principal: MemberPrincipal) -> MyPage:
    from unioncard.issuer import services as issuer

    person = _own_person(session, principal)
    membership = registry.active_membership(session, person.id)
    ids = [int(part) for part in membership.org_path.strip("/").split("/") if part]
    names = dict(session.execute(select(Organisation.id, Organisation.name).where(Organisation.id.in_(ids))).all())
    cards = issuer.cards_of_members(session, [membership.id]).get(membership.id, [])
    lines = [CardLine(c.id, c.kind, c.number, c.status, c.status_changed_at, issuer.card_history(session, c.id))
             for c in reversed(cards)]
    return MyPage(person, membership, [names[i] for i in ids if i in names], lines,
                  registry.current_consents(session, person.id), registry.consent_history(session, person.id))


def withdraw(uow: UnitOfWork, principal: MemberPrincipal, section: str) -> Consent:
    person = _own_person(uow.session, principal)
    consent = registry.withdraw_own_consent(uow, person.id, section, channel=principal.channel)
    uow.commit()
    return consent


def order_virtual_card(uow: UnitOfWork, principal: MemberPrincipal, issuer_prefix: str):
    """The member orders their own virtual card: the same rules as any order (consent section 1,
    one active card of a kind), then the region's approval as usual."""
    from unioncard.issuer import services as issuer
    from unioncard.registry.actor import Actor

    person = _own_person(uow.session, principal)
    membership = registry.active_membership(uow.session, person.id)
    result = issuer.order_cards(uow, Actor.member(person.id), [membership.id], "virtual", issuer_prefix=issuer_prefix)
    uow.commit()
    return result


def give(uow: UnitOfWork, principal: MemberPrincipal, section: str) -> Consent:
    person = _own_person(uow.session, principal)
    consent = registry.give_own_consent(uow, person.id, section, channel=principal.channel)
    uow.commit()
    return consent


@dataclass(frozen=True)
class Reading:
    at: datetime
    action: str
    organisation: str | None
    role: str | None


def who_saw_my_data(session: Session, principal: MemberPrincipal, limit: int = 200) -> list[Reading]:
    """Reads of this member's personal data in the audit log (152-FZ art. 14): each official's
    view of their registry card, and each download of a member list that held them, by the
    official's organisation and role (not their name)."""
    person = _own_person(session, principal)
    memberships = list(session.scalars(select(Membership).where(Membership.person_id == person.id)))
    views = [(AuditEntry.action == "member.view") & (AuditEntry.object_type == "membership")
             & AuditEntry.object_id.in_([str(m.id) for m in memberships])]
    for m in memberships:
        # A member list downloaded for their organisation or any above it held them, while a member.
        above = [part for part in m.org_path.strip("/").split("/") if part]
        condition = ((AuditEntry.action == "member.export") & (AuditEntry.object_type == "organisation")
                     & AuditEntry.object_id.in_(above) & (AuditEntry.at >= datetime.combine(m.join_date,
                                                                                           datetime.min.time())))
        if m.leave_date is not None:
            condition = condition & (AuditEntry.at < datetime.combine(m.leave_date, datetime.max.time()))
        views.append(condition)
    rows = session.execute(
        select(AuditEntry.at, AuditEntry.action, Organisation.name, UserAccount.role)
        .outerjoin(UserAccount, UserAccount.id == AuditEntry.user_id)
        .outerjoin(Organisation, Organisation.id == UserAccount.organisation_id)
        .where(or_(*views)).order_by(AuditEntry.at.desc()).limit(limit)).all()
    return [Reading(*row) for row in rows]


def my_data(session: Session, principal: MemberPrincipal) -> dict:
    """Everything the registry holds on the member, for «Скачать мои данные» (JSON)."""
    page = my_page(session, principal)
    p, m = page.person, page.membership
    return {
        "person": {"surname": p.surname, "given_name": p.given_name, "patronymic": p.patronymic,
                   "birth_date": p.birth_date.isoformat(), "sex": p.sex, "phone": p.phone, "email": p.email},
        "membership": {"organisation": page.organisation_chain, "category": m.category,
                       "join_date": m.join_date.isoformat()},
        "cards": [{"kind": c.kind, "number": c.number, "status": c.status,
                   "history": [{"at": e.at.isoformat() + "Z", "from": e.from_status, "to": e.to_status,
                                "reason": e.reason} for e in c.history]} for c in page.cards],
        "consents": [{"section": c.section, "given_on": c.given_on.isoformat(), "form": c.form,
                      "withdrawn_on": c.withdrawn_on.isoformat() if c.withdrawn_on else None}
                     for c in page.consent_history],
        "reads": [{"at": r.at.isoformat() + "Z", "action": r.action, "organisation": r.organisation,
                   "role": r.role} for r in who_saw_my_data(session, principal)],
    }
