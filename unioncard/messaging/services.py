"""The outbox: messages are queued in the transaction that causes them (a code requested, a card
ready), and a sender process delivers what is due, with retries and back-off, at each channel's
rate. Delivery is at least once: a message claimed by a sender that dies is tried again once its
claim lapses."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Callable

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from unioncard import clock
from unioncard.messaging import domain as d
from unioncard.i18n import N_, translate
from unioncard.messaging.models import Mailing, OutboxMessage, UndeliverableAddress
from unioncard.messaging.senders import (ChannelDown, Outgoing, PermanentFailure, Sender, TemporaryFailure)

log = logging.getLogger(__name__)

UNSUBSCRIBE_LINE = N_("You get this message because you agreed to the union's messages. To stop them: %(link)s")
UNSUBSCRIBE_SMS = N_("Stop: %(link)s")

# A claimed message not recorded as sent or failed by then is free to be tried again.
CLAIM_LEASE = timedelta(minutes=5)


def enqueue(session: Session, *, channel: str, address: str, kind: str, subject: str, body: str,
            person_id: int | None = None) -> OutboxMessage:
    """Queue one message; to an address refused for good before, it is kept as suppressed."""
    channel, kind = d.Channel(channel), d.Kind(kind)
    refused = session.scalar(select(UndeliverableAddress.id).where(UndeliverableAddress.channel == channel,
                                                                   UndeliverableAddress.address == address))
    now = clock.now()
    message = OutboxMessage(channel=channel, address=address, kind=kind, subject=subject[:300], body=body,
                            person_id=person_id, attempts=0, created_at=now,
                            status=d.Status.SUPPRESSED if refused else d.Status.QUEUED,
                            next_attempt_at=None if refused else now,
                            last_error="address refused before" if refused else None)
    session.add(message)
    session.flush()
    return message


@dataclass
class DeliveryRun:
    sent: int = 0
    retried: int = 0
    failed: int = 0
    skipped: int = 0
    channel_errors: dict = field(default_factory=dict)

    @property
    def handled(self) -> int:
        return self.sent + self.retried + self.failed + self.skipped


def _claim(uow_factory, channel: d.Channel, now: datetime, batch: int, link_for=None) -> list[Outgoing]:
    with uow_factory() as uow:
        session = uow.session
        query = (select(OutboxMessage)
                 .where(OutboxMessage.status == d.Status.QUEUED, OutboxMessage.channel == channel,
                        OutboxMessage.next_attempt_at <= now)
                 .order_by(OutboxMessage.next_attempt_at, OutboxMessage.id).limit(batch))
        if session.bind.dialect.name == "postgresql":
            # Two senders side by side never take the same message.
            query = query.with_for_update(skip_locked=True)
        rows = list(session.scalars(query))
        for row in rows:
            row.next_attempt_at = now + CLAIM_LEASE
        mailings = {m.id: m for m in session.scalars(select(Mailing).where(
            Mailing.id.in_({r.mailing_id for r in rows if r.mailing_id})))}
        claimed = []
        for r in rows:
            if r.mailing_id in mailings:
                # The mailing's text, and a link that withdraws consent 3 without signing in.
                mailing = mailings[r.mailing_id]
                link = link_for(r.consent_id) if link_for and r.consent_id else None
                if r.channel == d.Channel.SMS:
                    # An SMS is paid by the part: the subject and the start of the text, then the link.
                    text = f"{mailing.subject}. {mailing.body}"
                    text = text if len(text) <= d.SMS_TEXT_MAX else text[:d.SMS_TEXT_MAX - 1].rstrip() + "…"
                    body = text + (f"\n{translate(UNSUBSCRIBE_SMS, 'ru', link=link)}" if link else "")
                else:
                    body = mailing.body + (f"\n\n—\n{translate(UNSUBSCRIBE_LINE, 'ru', link=link)}" if link else "")
                claimed.append(Outgoing(r.id, r.channel, r.address, mailing.subject, body, link))
            else:
                claimed.append(Outgoing(r.id, r.channel, r.address, r.subject, r.body))
        uow.commit()
        return claimed


def _still_wanted(session: Session, message_id: int) -> bool:
    """A mailing goes only while its member keeps section 3 (withdrawn: it stops at once)."""
    from unioncard.registry.models import Consent
    from unioncard.registry.services import has_consent

    row = session.get(OutboxMessage, message_id)
    if row is None or row.status != d.Status.QUEUED:
        return False
    if row.consent_id is not None:
        consent = session.get(Consent, row.consent_id)
        return consent is not None and consent.withdrawn_on is None
    if row.kind == d.Kind.MAILING and row.person_id is not None:
        return has_consent(session, row.person_id, "messaging")
    return True


def _record(uow_factory, message: Outgoing, outcome: str, error: str | None, now: datetime) -> None:
    with uow_factory() as uow:
        row = uow.session.get(OutboxMessage, message.id)
        row.attempts += 1 if outcome != "skipped" else 0
        row.last_error = error
        if outcome == "sent":
            row.status, row.sent_at, row.next_attempt_at = d.Status.SENT, now, None
        elif outcome == "skipped":
            row.status, row.next_attempt_at = d.Status.SUPPRESSED, None
        elif outcome == "permanent":
            row.status, row.next_attempt_at = d.Status.FAILED, None
            if not uow.session.scalar(select(UndeliverableAddress.id).where(
                    UndeliverableAddress.channel == row.channel, UndeliverableAddress.address == row.address)):
                uow.session.add(UndeliverableAddress(channel=row.channel, address=row.address,
                                                     reason=(error or "")[:300], recorded_at=now))
        else:
            retry_at = d.next_attempt(row.attempts, now)
            row.status = d.Status.QUEUED if retry_at else d.Status.FAILED
            row.next_attempt_at = retry_at
        uow.commit()


def _release(uow_factory, messages: list[Outgoing], now: datetime) -> None:
    """A channel that is down takes back what it claimed, untried, for the next run."""
    if not messages:
        return
    with uow_factory() as uow:
        uow.session.execute(update(OutboxMessage).where(OutboxMessage.id.in_([m.id for m in messages]),
                                                        OutboxMessage.status == d.Status.QUEUED)
                            .values(next_attempt_at=now + d.RETRY_DELAYS[0]))
        uow.commit()


def deliver_due(uow_factory, senders: dict[str, Callable[[], Sender]], *, batch: int = 200,
                per_second: dict[str, float] | None = None, now: Callable[[], datetime] = clock.now,
                sleep: Callable[[float], None] = time.sleep, limit: int | None = None,
                link_for: Callable[[int], str] | None = None) -> DeliveryRun:
    """Send every message due now, channel by channel, until none is left (or ``limit``).
    ``link_for(consent_id)`` gives a mailing's unsubscribe link (the public address of /u/…)."""
    run = DeliveryRun()
    for channel, open_sender in senders.items():
        channel = d.Channel(channel)
        rate = (per_second or {}).get(channel)
        gap = 1.0 / rate if rate else 0.0
        sender: Sender | None = None
        try:
            while limit is None or run.handled < limit:
                claimed = _claim(uow_factory, channel, now(), batch, link_for)
                if not claimed:
                    break
                for index, message in enumerate(claimed):
                    with uow_factory() as uow:
                        wanted = _still_wanted(uow.session, message.id)
                    if not wanted:
                        _record(uow_factory, message, "skipped", "consent withdrawn", now())
                        run.skipped += 1
                        continue
                    started = time.monotonic()
                    try:
                        if sender is None:
                            sender = open_sender()
                        sender.send(message)
                    except ChannelDown as exc:
                        run.channel_errors[channel] = exc.reason
                        _release(uow_factory, claimed[index:], now())
                        raise
                    except PermanentFailure as exc:
                        _record(uow_factory, message, "permanent", exc.reason, now())
                        run.failed += 1
                    except TemporaryFailure as exc:
                        _record(uow_factory, message, "temporary", exc.reason, now())
                        run.retried += 1
                    else:
                        _record(uow_factory, message, "sent", None, now())
                        run.sent += 1
                    if gap:
                        rest = gap - (time.monotonic() - started)
                        if rest > 0:
                            sleep(rest)
        except ChannelDown as exc:
            log.warning("channel %s is down: %s", channel, exc.reason)
        finally:
            if sender is not None:
                sender.close()
    return run

