"""Cards, their history, number counters, the revocation feed and per-region settings."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, DateTime, ForeignKey, Index, Integer, String, Text, select, text
from sqlalchemy.orm import Mapped, column_property, mapped_column, relationship

from unioncard.issuer.domain import ACTIVE
from unioncard.orm import Base, byte_ordered_string

_ACTIVE_SQL = "status IN (" + ", ".join(f"'{s.value}'" for s in sorted(ACTIVE)) + ")"


class Card(Base):
    """A card from its order on: the order and the card are one record with one status."""

    __tablename__ = "card"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    number: Mapped[str | None] = mapped_column(String(16), unique=True)
    membership_id: Mapped[int] = mapped_column(ForeignKey("membership.id"), index=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("person.id"))
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisation.id"))
    org_path: Mapped[str] = mapped_column(byte_ordered_string(255))
    region_code: Mapped[str] = mapped_column(String(2))
    ordered_by: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    ordered_at: Mapped[datetime] = mapped_column(DateTime)
    status_changed_at: Mapped[datetime] = mapped_column(DateTime)
    status_reason: Mapped[str | None] = mapped_column(String(200))
    replaces_card_id: Mapped[int | None] = mapped_column(ForeignKey("card.id"))
    # SHA-256 of the private link's token for a virtual card; None = no link (or revoked).
    link_token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    # The chip: the UID (plain UID cards are bound to the number by it) and the fingerprint of the
    # card's own public key (chip application cards).
    chip_uid: Mapped[str | None] = mapped_column(String(32), unique=True)
    chip_key: Mapped[str | None] = mapped_column(String(16))
    # Optimistic lock: a second writer that read the same version fails instead of overwriting.
    lock_version: Mapped[int] = mapped_column(Integer, default=1)
    # The load from the earlier registry (migration.models.MigrationLoad) this row came in with.
    migration_load_id: Mapped[int | None] = mapped_column(Integer, index=True)

    membership = relationship("Membership", lazy="joined")
    person = relationship("Person", lazy="joined")

    __mapper_args__ = {"version_id_col": lock_version}
    __table_args__ = (
        # One card of each kind per person that is not cancelled/rejected/void/blocked/revoked:
        # the database itself refuses a second order, even from two clerks at the same moment.
        Index("uq_card_active_per_person", "person_id", "kind", unique=True,
              sqlite_where=text(_ACTIVE_SQL), postgresql_where=text(_ACTIVE_SQL)),
        Index("ix_card_scope_status", "org_path", "status"),
        Index("ix_card_person", "person_id"),
    )


class CardCredential(Base):
    """A card's signed credential (QR / chip / virtual card), made once the card has its number.
    A table of its own: a bureau batch stores 100 000 of them by COPY, where updating as many rows
    of the card table (nine indexes, pages without room for a new version) took longer than
    reading and signing them together."""

    __tablename__ = "card_credential"

    card_id: Mapped[int] = mapped_column(ForeignKey("card.id"), primary_key=True)
    credential: Mapped[str] = mapped_column(Text)


# Read with the card as before (card.credential); written only by issuer.services.make_credentials.
Card.credential = column_property(
    select(CardCredential.credential).where(CardCredential.card_id == Card.id).correlate_except(CardCredential)
    .scalar_subquery())


class CardEvent(Base):
    """Every status change: who, when, from, to, why (alongside the audit log)."""

    __tablename__ = "card_event"

    id: Mapped[int] = mapped_column(primary_key=True)
    card_id: Mapped[int] = mapped_column(ForeignKey("card.id"), index=True)
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime] = mapped_column(DateTime)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    actor: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str | None] = mapped_column(String(200))


class CardNumberCounter(Base):
    """The next unused serial per region. Only ever incremented, so a number is never reused."""

    __tablename__ = "card_number_counter"

    region_code: Mapped[str] = mapped_column(String(2), primary_key=True)
    next_serial: Mapped[int] = mapped_column(Integer)


class Revocation(Base):
    """The revocation feed: its id is the feed version, read incrementally by stations and partners."""

    __tablename__ = "revocation"

    id: Mapped[int] = mapped_column(primary_key=True)
    card_id: Mapped[int] = mapped_column(ForeignKey("card.id"))
    number: Mapped[str] = mapped_column(String(16), index=True)
    status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(String(200))
    at: Mapped[datetime] = mapped_column(DateTime)


class RegionCardSettings(Base):
    __tablename__ = "region_card_settings"

    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisation.id"), primary_key=True)
    auto_approve: Mapped[bool] = mapped_column(Boolean, default=False)
