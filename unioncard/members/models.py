"""One-time sign-in codes for members (no passwords)."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Boolean, Date, DateTime, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from unioncard.orm import Base


class SignInCode(Base):
    """A code sent to a contact (an e-mail address or a phone as the registry stores it). A row is
    written whether or not the contact belongs to a member, so the answer and the work are the
    same either way; only the code's hash is kept."""

    __tablename__ = "member_sign_in_code"

    id: Mapped[int] = mapped_column(primary_key=True)
    contact: Mapped[str] = mapped_column(String(200))
    code_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime)
    expires_at: Mapped[datetime] = mapped_column(DateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    used_at: Mapped[datetime | None] = mapped_column(DateTime)
    # A code that signed a member in is their session on the server: the browser's cookie holds
    # only this row's id, and signing out (or the session's age) ends it for every copy of it.
    signed_in_at: Mapped[datetime | None] = mapped_column(DateTime)
    signed_out_at: Mapped[datetime | None] = mapped_column(DateTime)

    __table_args__ = (Index("ix_sign_in_code_contact", "contact", "created_at"),)


class MembershipApplication(Base):
    """«Приём в Профсоюз» online: an applicant's data and consent choices, waiting in the primary
    organisation's queue once their e-mail or phone is confirmed by a code."""

    __tablename__ = "membership_application"

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisation.id"), index=True)
    org_path: Mapped[str] = mapped_column(String(255))
    surname: Mapped[str] = mapped_column(String(100))
    given_name: Mapped[str] = mapped_column(String(100))
    patronymic: Mapped[str | None] = mapped_column(String(100))
    birth_date: Mapped[date] = mapped_column(Date)
    sex: Mapped[str | None] = mapped_column(String(8))
    category: Mapped[str] = mapped_column(String(16))
    channel: Mapped[str] = mapped_column(String(8))
    contact: Mapped[str] = mapped_column(String(200))
    # The consent text's version the applicant read, and what they chose for sections 2 and 3
    # (section 1 is required to apply at all).
    consent_version: Mapped[str] = mapped_column(String(16))
    partner_transfer: Mapped[bool] = mapped_column(Boolean)
    messaging: Mapped[bool] = mapped_column(Boolean)
    status: Mapped[str] = mapped_column(String(12))
    code_hash: Mapped[str | None] = mapped_column(String(64))
    code_expires_at: Mapped[datetime | None] = mapped_column(DateTime)
    code_attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    confirmed_at: Mapped[datetime | None] = mapped_column(DateTime)
    # Already on a register somewhere: a transfer question for the chairperson, never a second record.
    existing_membership_id: Mapped[int | None] = mapped_column(ForeignKey("membership.id"))
    decided_at: Mapped[datetime | None] = mapped_column(DateTime)
    decided_by: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    refusal_reason: Mapped[str | None] = mapped_column(String(300))
    membership_id: Mapped[int | None] = mapped_column(ForeignKey("membership.id"))
