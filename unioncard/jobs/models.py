"""A job's row: what to do, for whom, how far it got (a checkpoint to resume from), and how it ended."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from unioncard.orm import Base


class Job(Base):
    __tablename__ = "job"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(12))
    # JSON: the job's own parameters, and the actor it acts as (checked when it was submitted).
    params: Mapped[str] = mapped_column(Text)
    actor: Mapped[str] = mapped_column(Text)
    org_path: Mapped[str] = mapped_column(String(255))
    created_by: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime)
    started_at: Mapped[datetime | None] = mapped_column(DateTime)
    # The worker holding the job and its last sign of life: a job whose worker stopped giving
    # signs for the lease is taken up by another, which then owns it (the first one's writes
    # are refused from then on).
    worker: Mapped[str | None] = mapped_column(String(120))
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    done: Mapped[int] = mapped_column(BigInteger, default=0)
    total: Mapped[int | None] = mapped_column(BigInteger)
    checkpoint: Mapped[str | None] = mapped_column(Text)
    result: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(String(500))

    __table_args__ = (Index("ix_job_status", "status", "heartbeat_at"), Index("ix_job_created_by", "created_by"))
