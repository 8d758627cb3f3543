"""Mailings: news to the members of the sender's subtree who agreed to messages (consent section
3), filtered by organisation, category or event. The audience is queued in one INSERT … SELECT
(the text stays on the mailing), so a million members take one statement, not a million rows
through Python."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import and_, case, exists, func, insert, literal, select
from sqlalchemy.orm import Session

from unioncard import clock
from unioncard.db import UnitOfWork
from unioncard.errors import NotFound, PermissionDenied, ValidationError
from unioncard.i18n import N_
from unioncard.jobs import services as jobs
from unioncard.jobs.models import Job
from unioncard.jobs.services import handler
from unioncard.messaging import domain as d
from unioncard.messaging import services as outbox
from unioncard.messaging.models import Mailing, OutboxMessage, UndeliverableAddress
from unioncard.registry import audit
from unioncard.registry import domain as rd
from unioncard.registry import services as registry
from unioncard.registry.actor import Actor
from unioncard.registry.models import Consent, Membership, Person


@dataclass(frozen=True)
class Audience:
    organisation_id: int
    category: str | None = None
    event_id: int | None = None


def _require(actor: Actor) -> None:
    if not actor.can(rd.Permission.SEND_MAILINGS):
        raise PermissionDenied()


def _audience_query(session: Session, actor: Actor, audience: Audience):
    """The organisation, and a query of (person, consent, channel, address) of every member in
    scope who agreed to messages and has an address not refused for good: e-mail when they have
    one, else their phone."""
    org = registry.get_organisation(session, actor, audience.organisation_id)  # NotFound outside scope
    conditions = [Membership.is_active, Membership.org_path.like(org.path + "%"),
                  (Person.email.is_not(None)) | (Person.phone.is_not(None))]
    if audience.category:
        try:
            conditions.append(Membership.category == rd.Category(audience.category))
        except ValueError:
            raise ValidationError(N_("There is no such category"), code="category_invalid", field="category")
    if audience.event_id is not None:
        from unioncard.checkin import services as checkin
        from unioncard.checkin.models import RosterEntry

        checkin.get_event(session, actor, audience.event_id)  # NotFound outside scope
        conditions.append(Person.id.in_(select(RosterEntry.person_id).where(RosterEntry.event_id == audience.event_id)))
    channel = case((Person.email.is_not(None), literal(d.Channel.EMAIL.value)), else_=literal(d.Channel.SMS.value))
    address = func.coalesce(Person.email, Person.phone)
    refused = exists().where(UndeliverableAddress.channel == channel, UndeliverableAddress.address == address)
    query = (select(Person.id.label("person_id"), Consent.id.label("consent_id"), channel.label("channel"),
                    address.label("address"))
             .select_from(Membership)
             .join(Person, Person.id == Membership.person_id)
             .join(Consent, and_(Consent.person_id == Person.id, Consent.section == rd.ConsentSection.MESSAGING,
                                 Consent.withdrawn_on.is_(None)))
             .where(*conditions, ~refused))
    return org, query


def count_audience(session: Session, actor: Actor, audience: Audience) -> int:
    return sum(count_by_channel(session, actor, audience).values())


def count_by_channel(session: Session, actor: Actor, audience: Audience) -> dict[str, int]:
    """Recipients by channel: {"email": …, "sms": …} (SMS cost money: the sender sees how many)."""
    _require(actor)
    query = _audience_query(session, actor, audience)[1].subquery()
    counts = dict(session.execute(select(query.c.channel, func.count()).group_by(query.c.channel)).all())
    return {channel.value: counts.get(channel.value, 0) for channel in d.Channel}


def _new_mailing(session: Session, actor: Actor, audience: Audience, subject: str, body: str,
                 expected: int | None) -> Mailing:
    _require(actor)
    # Only what a reader would see counts: a subject of zero-width spaces is no subject.
    subject, body = rd.visible_text(subject), rd.visible_text(body)
    if not subject or len(subject) > d.MAILING_SUBJECT_MAX:
        raise ValidationError(N_("Give the mailing a subject of at most %(max)s characters"),
                              code="mailing_subject_invalid", field="subject", max=d.MAILING_SUBJECT_MAX)
    if not body or len(body) > d.MAILING_BODY_MAX:
        raise ValidationError(N_("Write the message: at most %(max)s characters"), code="mailing_body_invalid",
                              field="body", max=d.MAILING_BODY_MAX)
    org, _query = _audience_query(session, actor, audience)
    counted = count_audience(session, actor, audience)
    if expected is not None and counted != expected:
        raise ValidationError(N_("The recipients are not the ones counted: count them again before sending"),
                              code="mailing_audience_changed")
    mailing = Mailing(organisation_id=org.id, org_path=org.path, category=audience.category or None,
                      event_id=audience.event_id, subject=subject, body=body, recipients=counted,
                      created_by=actor.user_id, created_at=clock.now())
    session.add(mailing)
    session.flush()
    return mailing


def _queue_recipients(session: Session, actor: Actor, mailing: Mailing, after: int | None = None,
                      upto: int | None = None) -> None:
    """The audience's messages, of people with ids in (after, upto], in one INSERT … SELECT."""
    audience = Audience(mailing.organisation_id, mailing.category, mailing.event_id)
    _org, query = _audience_query(session, actor, audience)
    if after is not None:
        query = query.where(Person.id > after)
    if upto is not None:
        query = query.where(Person.id <= upto)
    audience_rows = query.subquery()
    now = clock.now()
    session.execute(insert(OutboxMessage).from_select(
        ["channel", "address", "kind", "subject", "body", "person_id", "mailing_id", "consent_id", "status",
         "attempts", "next_attempt_at", "created_at"],
        select(audience_rows.c.channel, audience_rows.c.address, literal(d.Kind.MAILING.value),
               literal(mailing.subject), literal(""), audience_rows.c.person_id, literal(mailing.id),
               audience_rows.c.consent_id, literal(d.Status.QUEUED.value), literal(0), literal(now), literal(now))))


def _count_queued(session: Session, mailing: Mailing) -> int:
    # Counted, not taken from the statement's rowcount (which psycopg leaves at -1 here).
    return session.scalar(select(func.count()).select_from(OutboxMessage).where(
        OutboxMessage.mailing_id == mailing.id))


def create_mailing(uow: UnitOfWork, actor: Actor, audience: Audience, subject: str, body: str, *,
                   expected: int | None = None) -> Mailing:
    """Queue the mailing now, in this transaction. ``expected`` is the count the sender was shown
    and agreed to: if the audience is another size now (a filter changed since, or the registry
    did), nothing is sent."""
    session = uow.session
    mailing = _new_mailing(session, actor, audience, subject, body, expected)
    _queue_recipients(session, actor, mailing)
    mailing.recipients = _count_queued(session, mailing)
    audit.record(session, actor, "mailing.create", "mailing", mailing.id, mailing.organisation_id,
                 recipients=mailing.recipients, category=audience.category, event_id=audience.event_id)
    uow.commit()
    return mailing


MAILING_JOB = "mailing_queue"


def start_mailing(uow: UnitOfWork, actor: Actor, audience: Audience, subject: str, body: str, *,
                  expected: int | None = None) -> Mailing:
    """The same checks, then the messages are queued by a job (a million take seconds to minutes:
    not in a web request), in steps of people by id, each step committed with its checkpoint."""
    session = uow.session
    mailing = _new_mailing(session, actor, audience, subject, body, expected)
    job = jobs.submit(uow, actor, MAILING_JOB, {"mailing_id": mailing.id}, mailing.org_path)
    mailing.job_id = job.id
    audit.record(session, actor, "mailing.create", "mailing", mailing.id, mailing.organisation_id,
                 recipients=mailing.recipients, category=audience.category, event_id=audience.event_id)
    uow.commit()
    return mailing


@handler(MAILING_JOB)
def _queue_mailing_job(context) -> dict:
    step_rows = max(1, int(context.settings.job_step_rows))
    with context.uow() as uow:
        session = uow.session
        mailing = session.get(Mailing, context.params["mailing_id"])
        lowest, highest = session.execute(select(func.min(Person.id), func.max(Person.id))).one()
        lowest, highest = (lowest or 1) - 1, highest or 0
        after = int(context.checkpoint.get("after", lowest))
        resumed_at = after if context.checkpoint else None
        context.step(session, done=after - lowest, total=max(1, highest - lowest))
        session.commit()
        while after < highest:
            upto = min(highest, after + step_rows)
            _queue_recipients(session, context.actor, mailing, after=after, upto=upto)
            # The step's messages and its checkpoint commit together: taken up again after a
            # worker died, the job starts after the last committed step, and nobody gets two.
            context.step(session, done=upto - lowest, checkpoint={"after": upto})
            session.commit()
            context.pause()
            after = upto
        mailing = session.get(Mailing, mailing.id)
        mailing.recipients = _count_queued(session, mailing)
        context.step(session, done=max(1, highest - lowest), total=max(1, highest - lowest))
        uow.commit()
        return {"recipients": mailing.recipients, "resumed_after_person": resumed_at}


def mailing_job(session: Session, mailing: Mailing):
    """The job queueing the mailing's messages, if it was queued by one."""
    return session.get(Job, mailing.job_id) if mailing.job_id else None


def get_mailing(session: Session, actor: Actor, mailing_id: int) -> Mailing:
    mailing = session.get(Mailing, mailing_id)
    if mailing is None or not actor.sees(mailing.org_path) or not actor.can(rd.Permission.SEND_MAILINGS):
        raise NotFound(N_("Mailing not found"), code="mailing_not_found")
    return mailing


def list_mailings(session: Session, actor: Actor, limit: int = 50) -> list[Mailing]:
    _require(actor)
    return list(session.scalars(select(Mailing).where(Mailing.org_path.like(actor.scope_path + "%"))
                                .order_by(Mailing.id.desc()).limit(limit)))


def progress(session: Session, actor: Actor, mailing_id: int) -> dict[str, int]:
    """Messages of the mailing by status: queued, sent, failed, suppressed."""
    get_mailing(session, actor, mailing_id)
    counts = dict(session.execute(select(OutboxMessage.status, func.count()).where(
        OutboxMessage.mailing_id == mailing_id).group_by(OutboxMessage.status)).all())
    return {status.value: counts.get(status.value, 0) for status in d.Status}


def unsubscribe(uow: UnitOfWork, secret: str, token: str) -> str:
    """Withdraw the section-3 consent a mailing's link names. Answers "done", "already" (the link
    was used, or the consent withdrawn otherwise) or "invalid" (a changed or made-up link)."""
    consent_id = d.consent_of_token(secret, token)
    if consent_id is None:
        return "invalid"
    consent = uow.session.get(Consent, consent_id)
    if consent is None or consent.section != rd.ConsentSection.MESSAGING:
        return "invalid"
    if consent.withdrawn_on is not None:
        return "already"
    try:
        registry.withdraw_own_consent(uow, consent.person_id, rd.ConsentSection.MESSAGING, channel="unsubscribe_link")
    except NotFound:
        return "already"  # no longer a member: nothing is sent to them anyway
    uow.commit()
    return "done"


# --- invitations to an event ------------------------------------------------------------------

INVITATION_SUBJECT = N_("Invitation: %(event)s")
INVITATION_BODY = N_("You are invited to «%(event)s» (%(days)s, %(venue)s). Your part: %(role)s. Bring your union "
                     "card: at the entrance it is checked by its QR code.")


def invite_roster(uow: UnitOfWork, actor: Actor, event_id: int) -> int:
    """An invitation to everyone on the event's list who has an e-mail address or a phone. It is
    about their own part in the event, so it goes whatever consent section 3 says (like a card's
    notices); returns how many were queued."""
    from unioncard.checkin import services as checkin
    from unioncard.checkin.models import RosterEntry
    from unioncard.i18n import translate
    from unioncard.reader_station.domain import ROLE_LABELS

    session = uow.session
    event = checkin.get_event(session, actor, event_id)  # scope and the right to manage events
    if event.cancelled_at is not None:
        raise ValidationError(N_("The event is cancelled"), code="event_cancelled")
    days = event.starts_on.strftime("%d.%m.%Y") if event.starts_on == event.ends_on else \
        f"{event.starts_on:%d.%m.%Y}–{event.ends_on:%d.%m.%Y}"
    subject = translate(INVITATION_SUBJECT, "ru", event=event.name)
    count = 0
    rows = session.execute(select(Person.id, Person.email, Person.phone, RosterEntry.role)
                           .join(RosterEntry, RosterEntry.person_id == Person.id)
                           .where(RosterEntry.event_id == event.id)).all()
    for person_id, email, phone, role in rows:
        if not (email or phone):
            continue
        role_text = translate(ROLE_LABELS.get(role, role), "ru") if role in ROLE_LABELS else role
        outbox.enqueue(session, channel=d.Channel.EMAIL if email else d.Channel.SMS, address=email or phone,
                       kind=d.Kind.EVENT_INVITATION, subject=subject, person_id=person_id,
                       body=translate(INVITATION_BODY, "ru", event=event.name, days=days, venue=event.venue,
                                      role=role_text.lower()))
        count += 1
    audit.record(session, actor, "event.invite", "event", event.id, event.organisation_id, invited=count)
    uow.commit()
    return count

