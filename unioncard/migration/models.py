"""The loads from the union's earlier registry: one row per region moved in."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, DateTime, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from unioncard.orm import Base


class MigrationLoad(Base):
    """A region loaded from an exchange folder, in one transaction: the row exists only if all of
    the region did. Its digest tells a second load of the same folder (nothing to do) from a
    changed one (refused: a loaded region is never merged again)."""

    __tablename__ = "migration_load"

    id: Mapped[int] = mapped_column(primary_key=True)
    region_org_code: Mapped[str] = mapped_column(String(64), unique=True)
    region_code: Mapped[str | None] = mapped_column(String(2))
    organisation_id: Mapped[int] = mapped_column(Integer)
    source_name: Mapped[str] = mapped_column(String(255))
    source_sha256: Mapped[str] = mapped_column(String(64))
    # What the exchange files held for the region (organisations, members, consents by section,
    # cards by status, positions): the reconciliation compares the registry with these.
    source_counts: Mapped[dict] = mapped_column(JSON)
    loaded_at: Mapped[datetime] = mapped_column(DateTime)
    seconds: Mapped[int] = mapped_column(Integer)
