"""Events, rosters, stations, published bundles and the merged check-in journal."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Boolean, Date, DateTime, ForeignKey, Index, Integer, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from unioncard.orm import Base, byte_ordered_string


class Event(Base):
    __tablename__ = "event"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(300))
    kind: Mapped[str] = mapped_column(String(16))          # congress, conference, seminar
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisation.id"))
    org_path: Mapped[str] = mapped_column(byte_ordered_string(255))  # the organiser's: who may see it
    starts_on: Mapped[date] = mapped_column(Date)
    ends_on: Mapped[date] = mapped_column(Date)
    venue: Mapped[str] = mapped_column(String(300))
    admission: Mapped[str] = mapped_column(String(16))     # roster | members
    roster_changed_at: Mapped[datetime] = mapped_column(DateTime)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    # A cancelled event is kept: its desks are revoked and no new desk data are signed for it.
    cancelled_at: Mapped[datetime | None] = mapped_column(DateTime)
    cancel_reason: Mapped[str | None] = mapped_column(String(300))
    # The credentials committee's rule, e.g. «2/3» of the elected delegates (checkin/quorum.py).
    quorum_rule: Mapped[str | None] = mapped_column(String(40))
    # When a desk prints a badge, per role: "delegate=auto,guest=button,staff=button,member=none".
    badge_modes: Mapped[str | None] = mapped_column(String(120))


class RosterEntry(Base):
    __tablename__ = "event_roster"

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("event.id"))
    person_id: Mapped[int] = mapped_column(ForeignKey("person.id"))
    role: Mapped[str] = mapped_column(String(16))

    __table_args__ = (UniqueConstraint("event_id", "person_id", name="uq_event_roster_person"),)


class Station(Base):
    """An enrolled desk. Only the SHA-256 of its token is kept; revoking ends its sync."""

    __tablename__ = "event_station"

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("event.id"), index=True)
    desk: Mapped[str] = mapped_column(String(64))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime)
    last_seen_at: Mapped[datetime | None] = mapped_column(DateTime)
    last_bundle_version: Mapped[int | None] = mapped_column(Integer)
    clock_offset_seconds: Mapped[int | None] = mapped_column(Integer)


class EventBundleRecord(Base):
    __tablename__ = "event_bundle"

    event_id: Mapped[int] = mapped_column(ForeignKey("event.id"), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    issued_at: Mapped[datetime] = mapped_column(DateTime)
    expires_at: Mapped[datetime] = mapped_column(DateTime)
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(Integer)
    feed_version: Mapped[int] = mapped_column(Integer)
    roster_count: Mapped[int] = mapped_column(Integer)
    revoked_count: Mapped[int] = mapped_column(Integer)
    content: Mapped[bytes] = mapped_column(LargeBinary)


class CheckIn(Base):
    """One journal entry from a desk (a check-in or an undo), kept as sent. ``effective_at`` is the
    desk's clock corrected by its known offset from the server; among the live check-ins of one
    card in one event the earliest is the check-in, the later ones are flagged duplicates."""

    __tablename__ = "event_checkin"

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("event.id"))
    station_id: Mapped[int] = mapped_column(ForeignKey("event_station.id"))
    nonce: Mapped[str] = mapped_column(String(32), unique=True)
    kind: Mapped[str] = mapped_column(String(8))           # checkin | undo
    ref_nonce: Mapped[str | None] = mapped_column(String(32))
    number: Mapped[str | None] = mapped_column(String(16))
    role: Mapped[str | None] = mapped_column(String(16))
    region_code: Mapped[str | None] = mapped_column(String(2))
    verdict: Mapped[str | None] = mapped_column(String(32))
    source: Mapped[str | None] = mapped_column(String(8))
    station_clock: Mapped[datetime] = mapped_column(DateTime)
    effective_at: Mapped[datetime] = mapped_column(DateTime)
    received_at: Mapped[datetime] = mapped_column(DateTime)
    undone: Mapped[bool] = mapped_column(Boolean, default=False)
    duplicate: Mapped[bool] = mapped_column(Boolean, default=False)
    # How the server knows whose card it was: "roster" (the number is a held card of someone on
    # the event's list) or "credential" (the entry carried the card's signed credential, which
    # verified; its name is kept). None: only a number, which is all the staff are shown.
    identified_by: Mapped[str | None] = mapped_column(String(12))
    credential_name: Mapped[str | None] = mapped_column(String(200))
    # Who was at the desk (a check-in by document names them), and the event day (the venue's
    # date of effective_at): a card is checked in once per day.
    operator: Mapped[str | None] = mapped_column(String(100))
    event_day: Mapped[date | None] = mapped_column(Date)
    # A session door's scan (kind "session"): which sitting, and "in" or "out".
    session_id: Mapped[int | None] = mapped_column(ForeignKey("event_session.id"))
    direction: Mapped[str | None] = mapped_column(String(3))

    __table_args__ = (
        Index("ix_event_checkin_event_number", "event_id", "number"),
        Index("ix_event_checkin_event_id", "event_id", "id"),
        Index("ix_event_checkin_event_day", "event_id", "event_day"),
    )


class EventSession(Base):
    """A sitting of an event on one of its days (a plenary, a section), optionally in a room."""

    __tablename__ = "event_session"

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("event.id"), index=True)
    day: Mapped[date] = mapped_column(Date)
    name: Mapped[str] = mapped_column(String(200))
    room: Mapped[str] = mapped_column(String(100), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime)
    # A removed session is kept: a desk that still had it may send its door's scans, which are
    # taken (and not counted) rather than refusing that desk's every later upload.
    removed_at: Mapped[datetime | None] = mapped_column(DateTime)


class Absence(Base):
    """Why an elected delegate is not at the event, as the staff recorded it for the credentials
    committee's report."""

    __tablename__ = "event_absence"

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("event.id"))
    person_id: Mapped[int] = mapped_column(ForeignKey("person.id"))
    reason: Mapped[str] = mapped_column(String(300))
    recorded_by: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    recorded_at: Mapped[datetime] = mapped_column(DateTime)

    __table_args__ = (UniqueConstraint("event_id", "person_id", name="uq_event_absence_person"),)
