"""«Приём в Профсоюз» online. The applicant finds their primary organisation, gives their data,
chooses each consent section (section 1 is required) and confirms their e-mail or phone with a
code; the application then waits for the chairperson, who accepts it (the member is registered
with electronic consents naming the text's version and time) or refuses it with a reason. The
applicant is told either way. A person already on a register is a transfer question for the
chairperson, never a silent second record."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from sqlalchemy import func, select

from unioncard import clock
from unioncard.db import UnitOfWork
from unioncard.errors import Conflict, NotFound, PermissionDenied, RateLimited, ValidationError
from unioncard.i18n import N_, translate
from unioncard.members import consent_text
from unioncard.members import domain as md
from unioncard.members.models import MembershipApplication
from unioncard.members.services import parse_contact
from unioncard.messaging import domain as msg
from unioncard.messaging import services as outbox
from unioncard.registry import audit
from unioncard.registry import domain as rd
from unioncard.registry import services as registry
from unioncard.registry.actor import Actor
from unioncard.registry.models import Membership, Organisation

S = md.ApplicationStatus
CODE_SUBJECT = N_("Confirm your application to the union")
CODE_BODY = N_("Your confirmation code: %(code)s\n\nEnter it on the application page within 10 minutes. If you "
               "did not apply, ignore this message.")
ACCEPTED_SUBJECT = N_("You are a member of the union")
ACCEPTED_BODY = N_("Your application is accepted: you are on the register of %(organisation)s. Welcome to the union!\n\n"
                   "Your own page, where your card will appear: %(link)s")
REFUSED_SUBJECT = N_("Your application to the union")
REFUSED_BODY = N_("Your application to %(organisation)s is not accepted. The reason: %(reason)s")


@dataclass(frozen=True)
class Application:
    organisation_id: int
    surname: str
    given_name: str
    patronymic: str | None
    birth_date: date
    sex: str | None
    category: str
    contact: str
    consent_version: str
    processing: bool
    partner_transfer: bool
    messaging: bool


def regions(session) -> list[Organisation]:
    return list(session.scalars(select(Organisation).where(Organisation.level == rd.Level.REGIONAL,
                                                           Organisation.removed_on.is_(None))
                                .order_by(Organisation.name)))


def find_primaries(session, region_id: int, text: str, limit: int = 20) -> list[Organisation]:
    """Primary organisations of the region whose name holds the text typed (organisation names are
    public), by the registry's own name search."""
    region = session.get(Organisation, region_id) if region_id else None
    if region is None or region.level != rd.Level.REGIONAL or region.removed_on is not None:
        raise NotFound(N_("There is no such regional organisation"), code="region_not_found")
    public = Actor(user_id=None, login="joining", role="public", scope_path=region.path)
    # Every word typed must be in the name (any order): «лицей 43», «№43», «школа Сочи».
    words = [w for w in (text or "").replace("№", " ").split() if w][:5]
    if not words:
        return []
    found = registry.find_organisations(session, public, max(words, key=len), limit=2000)
    keys = [rd.search_key(w) for w in words]
    return [o for o in found if o.level in (rd.Level.PRIMARY, rd.Level.SUBDIVISION)
            and all(k in rd.search_key(o.name) for k in keys)][:limit]


def get_primary(session, organisation_id: int) -> Organisation:
    """A primary organisation (or subdivision) taking applications: names are public."""
    org = session.get(Organisation, organisation_id) if organisation_id else None
    if org is None or org.removed_on is not None or org.level not in (rd.Level.PRIMARY, rd.Level.SUBDIVISION):
        raise NotFound(N_("There is no such primary organisation"), code="organisation_not_found")
    return org


def _send(session, application: MembershipApplication, kind, subject: str, body: str, **params) -> None:
    outbox.enqueue(session, channel=application.channel, address=application.contact, kind=kind,
                   subject=translate(subject, "ru"), body=translate(body, "ru", **params))


def apply(uow: UnitOfWork, data: Application, secret: str) -> int:
    """Record the application (unconfirmed) and send the code to its contact; returns its id."""
    session = uow.session
    if data.consent_version != consent_text.VERSION:
        raise ValidationError(N_("The consent text has changed while you were reading it. Read the new text and "
                                 "send the application again."), code="consent_version_changed")
    if not data.processing:
        raise ValidationError(N_("Without consent to processing (section 1) the union cannot register you"),
                              code="consent_processing_required", field="processing")
    org = get_primary(session, data.organisation_id)
    person = registry.PersonData(data.surname, data.given_name, data.patronymic, data.birth_date,
                                 data.sex or None).validated(clock.today())
    try:
        category = rd.Category(data.category)
    except ValueError:
        raise ValidationError(N_("There is no such category"), code="category_invalid", field="category")
    channel, contact = parse_contact(data.contact)
    now = clock.now()
    recent = session.scalar(select(func.count()).select_from(MembershipApplication).where(
        MembershipApplication.contact == contact, MembershipApplication.created_at > now - timedelta(days=1)))
    if recent >= md.APPLICATIONS_PER_CONTACT_PER_DAY:
        raise RateLimited(N_("Too many applications from this address today. Try again tomorrow."),
                          code="applications_exhausted")
    code = md.new_code()
    application = MembershipApplication(
        organisation_id=org.id, org_path=org.path, surname=person.surname, given_name=person.given_name,
        patronymic=person.patronymic, birth_date=person.birth_date, sex=person.sex, category=category,
        channel=channel, contact=contact, consent_version=data.consent_version,
        partner_transfer=bool(data.partner_transfer), messaging=bool(data.messaging), status=S.UNCONFIRMED,
        code_hash=md.code_hash(secret, f"application:{contact}", code), code_expires_at=now + md.CODE_LIFETIME,
        code_attempts=0, created_at=now)
    session.add(application)
    session.flush()
    _send(session, application, msg.Kind.SIGN_IN_CODE, CODE_SUBJECT, CODE_BODY, code=code)
    uow.commit()
    return application.id


def confirm(uow: UnitOfWork, application_id: int, code: str, secret: str) -> MembershipApplication:
    """The code from the message: the application goes to the chairperson's queue."""
    refused = ValidationError(N_("The code is wrong or no longer valid. Ask for a new one."),
                              code="application_code_invalid", field="code")
    session = uow.session
    application = session.get(MembershipApplication, application_id, with_for_update=True)
    if application is None or application.status != S.UNCONFIRMED or application.code_hash is None:
        raise refused
    if not md.may_try(application.code_expires_at, application.code_attempts, clock.now()):
        raise refused
    application.code_attempts += 1
    if not md.codes_match(application.code_hash, secret, f"application:{application.contact}", code):
        uow.commit()
        raise refused
    application.code_hash, application.status, application.confirmed_at = None, S.WAITING, clock.now()
    current = _registered_namesake(session, application)
    application.existing_membership_id = current[0].id if current else None
    uow.commit()
    return application


def _registered_namesake(session, application: MembershipApplication) -> tuple[Membership, bool] | None:
    """The active membership of someone with the applicant's surname, given name and birth date
    (the patronymic may be left out or spelt otherwise online), and whether the full name is the
    same too (then it is surely them); one with the same full name comes first."""
    exact = registry.PersonData(application.surname, application.given_name, application.patronymic,
                                application.birth_date).identity_key
    found = []
    for person in registry.namesakes(session, application.surname, application.given_name, application.birth_date):
        membership = registry.active_membership(session, person.id)
        if membership is not None:
            found.append((membership, person.identity_key == exact))
    return max(found, key=lambda pair: pair[1]) if found else None


def _reviewer(actor: Actor) -> None:
    if not actor.can(rd.Permission.EDIT_MEMBERS):
        raise PermissionDenied()


def list_waiting(session, actor: Actor, organisation_id: int) -> list[MembershipApplication]:
    _reviewer(actor)
    org = registry.get_organisation(session, actor, organisation_id)
    return list(session.scalars(select(MembershipApplication).where(
        MembershipApplication.org_path.like(org.path + "%"), MembershipApplication.status == S.WAITING)
        .order_by(MembershipApplication.confirmed_at)))


def count_waiting(session, actor: Actor, organisation_id: int) -> int:
    """Applications waiting in the organisation's subtree (0 for someone who may not decide them)."""
    if not actor.can(rd.Permission.EDIT_MEMBERS):
        return 0
    org = registry.get_organisation(session, actor, organisation_id)
    return session.scalar(select(func.count()).select_from(MembershipApplication).where(
        MembershipApplication.org_path.like(org.path + "%"), MembershipApplication.status == S.WAITING))


def get_application(session, actor: Actor, application_id: int) -> MembershipApplication:
    _reviewer(actor)
    application = session.get(MembershipApplication, application_id)
    if application is None or application.status == S.UNCONFIRMED or not actor.sees(application.org_path):
        raise NotFound(N_("Application not found"), code="application_not_found")
    return application


@dataclass(frozen=True)
class TransferQuestion:
    same_full_name: bool         # False: only surname, given name and birth date are the same
    organisation: str | None     # named only when it is in the reviewer's own part of the union


def transfer_question(session, actor: Actor, application: MembershipApplication) -> TransferQuestion | None:
    """Whether the applicant may already be on a register. Where, is said only inside the
    reviewer's scope: a chairperson cannot learn another region's members by applying for them."""
    found = _registered_namesake(session, application)
    if found is None:
        return None
    membership, same = found
    return TransferQuestion(same, membership.organisation.name if actor.sees(membership.org_path) else None)


def accept(uow: UnitOfWork, actor: Actor, application_id: int, *, different_person: bool = False,
           member_page: str = "/me/") -> Membership:
    """Register the applicant. Someone with the same full name and birth date on a register is a
    transfer, never accepted here; a namesake with another (or no) patronymic is accepted only when
    the reviewer says it is a different person (``different_person``), which the audit keeps."""
    session = uow.session
    application = get_application(session, actor, application_id)
    if application.status != S.WAITING:
        raise Conflict(N_("This application has already been decided"), code="application_decided")
    namesake = _registered_namesake(session, application)
    if namesake is not None and (namesake[1] or not different_person):
        raise Conflict(N_("The applicant is already on the register of another organisation: arrange a transfer "
                          "through the regional organisation, or refuse the application with the reason."),
                       code="application_is_transfer")
    membership = registry.register_member(
        uow, actor, application.organisation_id,
        registry.PersonData(application.surname, application.given_name, application.patronymic,
                            application.birth_date, application.sex,
                            phone=application.contact if application.channel == msg.Channel.SMS else None,
                            email=application.contact if application.channel == msg.Channel.EMAIL else None),
        category=application.category, join_date=clock.today())
    given_on = clock.today(application.confirmed_at)
    sections = [rd.ConsentSection.PROCESSING]
    sections += [rd.ConsentSection.PARTNER_TRANSFER] if application.partner_transfer else []
    sections += [rd.ConsentSection.MESSAGING] if application.messaging else []
    for section in sections:
        registry.give_consent(uow, actor, membership.id, section, given_on, rd.ConsentForm.ELECTRONIC)
    application.status, application.decided_at, application.decided_by = S.ACCEPTED, clock.now(), actor.user_id
    application.membership_id = membership.id
    audit.record(session, actor, "application.accept", "membership_application", application.id,
                 application.organisation_id, membership_id=membership.id, consent_version=application.consent_version,
                 confirmed_at=application.confirmed_at, sections=[str(s) for s in sections],
                 different_person=different_person)
    _send(session, application, msg.Kind.APPLICATION_ACCEPTED, ACCEPTED_SUBJECT, ACCEPTED_BODY,
          organisation=membership.organisation.name, link=member_page)
    uow.commit()
    return membership


def refuse(uow: UnitOfWork, actor: Actor, application_id: int, reason: str) -> MembershipApplication:
    session = uow.session
    application = get_application(session, actor, application_id)
    if application.status != S.WAITING:
        raise Conflict(N_("This application has already been decided"), code="application_decided")
    reason = rd.visible_text(reason)
    if not reason or len(reason) > 300:
        raise ValidationError(N_("Give the reason for the refusal (at most 300 characters)"),
                              code="refusal_reason_required", field="reason")
    application.status, application.refusal_reason = S.REFUSED, reason
    application.decided_at, application.decided_by = clock.now(), actor.user_id
    audit.record(session, actor, "application.refuse", "membership_application", application.id,
                 application.organisation_id, reason=reason)
    _send(session, application, msg.Kind.APPLICATION_REFUSED, REFUSED_SUBJECT, REFUSED_BODY,
          organisation=session.get(Organisation, application.organisation_id).name, reason=reason)
    uow.commit()
    return application
