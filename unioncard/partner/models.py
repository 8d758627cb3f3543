"""Partner keys and the log of partner queries."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from unioncard.orm import Base


class PartnerKey(Base):
    """One API key of one partner. The key itself is shown once; only its SHA-256 is kept."""

    __tablename__ = "partner_key"

    id: Mapped[int] = mapped_column(primary_key=True)
    partner_name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(20))
    key_prefix: Mapped[str] = mapped_column(String(16))   # the key's first characters, to tell keys apart
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    per_minute: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime)
    revoked_by: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))


class PartnerQuery(Base):
    """Every verification a partner asked for: who, when, how, and why the answer was what it
    was. No names and no card number: the card when it was found, nothing when it was not."""

    __tablename__ = "partner_query"

    id: Mapped[int] = mapped_column(primary_key=True)
    key_id: Mapped[int] = mapped_column(ForeignKey("partner_key.id"))
    at: Mapped[datetime] = mapped_column(DateTime)
    method: Mapped[str] = mapped_column(String(12))        # number | credential
    outcome: Mapped[str] = mapped_column(String(24))
    card_id: Mapped[int | None] = mapped_column(ForeignKey("card.id"))
    client_ip: Mapped[str | None] = mapped_column(String(45))
    reference: Mapped[str] = mapped_column(String(24), unique=True)  # told to the partner for disputes

    __table_args__ = (Index("ix_partner_query_key_at", "key_id", "at"),)
