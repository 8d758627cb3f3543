"""Batches, their cards (items) and print jobs."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from unioncard.orm import Base


class Batch(Base):
    __tablename__ = "bureau_batch"

    id: Mapped[int] = mapped_column(primary_key=True)
    region_code: Mapped[str] = mapped_column(String(2))
    region_organisation_id: Mapped[int | None] = mapped_column(ForeignKey("organisation.id"))
    region_path: Mapped[str] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(16), default="open")
    encoding: Mapped[str] = mapped_column(String(8), default="chip")
    layout: Mapped[str] = mapped_column(String(64), default="union")
    created_at: Mapped[datetime] = mapped_column(DateTime)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    # Who runs it now: a run takes the batch by writing its owner and refreshing the heartbeat.
    run_owner: Mapped[str | None] = mapped_column(String(128))
    run_heartbeat: Mapped[datetime | None] = mapped_column(DateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    produced_at: Mapped[datetime | None] = mapped_column(DateTime)
    shipped_at: Mapped[datetime | None] = mapped_column(DateTime)


class BatchItem(Base):
    """One card in a batch. A spoiled card stays (with its reason); its remake is a new item."""

    __tablename__ = "bureau_item"

    id: Mapped[int] = mapped_column(primary_key=True)
    batch_id: Mapped[int] = mapped_column(ForeignKey("bureau_batch.id"))
    card_id: Mapped[int] = mapped_column(ForeignKey("card.id"))
    position: Mapped[int] = mapped_column(Integer)
    stage: Mapped[str] = mapped_column(String(16), default="queued")
    print_job_id: Mapped[int | None] = mapped_column(ForeignKey("bureau_print_job.id"))
    chip_uid: Mapped[str | None] = mapped_column(String(32))
    chip_key: Mapped[str | None] = mapped_column(String(16))  # fingerprint of the card's own public key
    remake_of: Mapped[int | None] = mapped_column(ForeignKey("bureau_item.id"))
    spoiled_reason: Mapped[str | None] = mapped_column(String(200))
    updated_at: Mapped[datetime] = mapped_column(DateTime)

    __table_args__ = (
        UniqueConstraint("card_id", name="uq_bureau_item_card"),  # a card is in one batch, once
        Index("ix_bureau_item_batch_stage", "batch_id", "stage", "position"),
    )


class PrintJob(Base):
    __tablename__ = "bureau_print_job"

    id: Mapped[int] = mapped_column(primary_key=True)
    batch_id: Mapped[int] = mapped_column(ForeignKey("bureau_batch.id"), index=True)
    title: Mapped[str] = mapped_column(String(64), unique=True)
    printer: Mapped[str] = mapped_column(String(200))
    printer_job: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    cards: Mapped[int] = mapped_column(Integer)
    detail: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(DateTime)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime)
