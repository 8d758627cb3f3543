"""One-time sign-in codes for members (no passwords)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, Index, Integer, String
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

    __table_args__ = (Index("ix_sign_in_code_contact", "contact", "created_at"),)
