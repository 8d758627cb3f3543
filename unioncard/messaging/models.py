"""The outbox: every message to a member, queued in the transaction that caused it."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from unioncard.orm import Base


class OutboxMessage(Base):
    __tablename__ = "outbox_message"

    id: Mapped[int] = mapped_column(primary_key=True)
    channel: Mapped[str] = mapped_column(String(8))
    address: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(24))
    subject: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text)
    person_id: Mapped[int | None] = mapped_column(ForeignKey("person.id"), index=True)
    # A mailing's messages keep their text once, on the mailing, and the section-3 consent they
    # were sent under: the unsubscribe link names it, and a withdrawn one stops the message.
    mailing_id: Mapped[int | None] = mapped_column(ForeignKey("mailing.id"), index=True)
    consent_id: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(12))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime)
    last_error: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(DateTime)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime)

    # The sender picks what is due, per channel, oldest first.
    __table_args__ = (Index("ix_outbox_due", "status", "channel", "next_attempt_at"),)


class Mailing(Base):
    """News to the members of a subtree who agreed to messages (consent section 3)."""

    __tablename__ = "mailing"

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisation.id"))
    org_path: Mapped[str] = mapped_column(String(255))
    category: Mapped[str | None] = mapped_column(String(16))
    event_id: Mapped[int | None] = mapped_column(ForeignKey("event.id"))
    subject: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text)
    recipients: Mapped[int] = mapped_column(Integer, default=0)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime)
    # The job queueing its messages (None: queued at once, in the transaction that made it).
    job_id: Mapped[int | None] = mapped_column(ForeignKey("job.id"))


class UndeliverableAddress(Base):
    """An address a server refused for good: nothing more is sent to it (until it is changed)."""

    __tablename__ = "undeliverable_address"

    id: Mapped[int] = mapped_column(primary_key=True)
    channel: Mapped[str] = mapped_column(String(8))
    address: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(String(300))
    recorded_at: Mapped[datetime] = mapped_column(DateTime)

    __table_args__ = (Index("ux_undeliverable", "channel", "address", unique=True),)
