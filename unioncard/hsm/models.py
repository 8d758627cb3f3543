"""What the database keeps about keys: only the trust bundles issued (public data). Key records
and private keys live in the key stores, never here."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from unioncard.orm import Base


class TrustBundleRecord(Base):
    __tablename__ = "trust_bundle"

    # The primary key makes a version impossible to issue twice, even by two operators at once.
    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    issued_at: Mapped[datetime] = mapped_column(DateTime)
    expires_at: Mapped[datetime] = mapped_column(DateTime)
    root_key_id: Mapped[str] = mapped_column(String(32))
    sha256: Mapped[str] = mapped_column(String(64))
    content: Mapped[bytes] = mapped_column(LargeBinary)
    # The root public key (DER) that signed it: what a desk pins when it is enrolled.
    root_public_key: Mapped[bytes | None] = mapped_column(LargeBinary)
    issued_by: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
