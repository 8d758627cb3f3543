"""Registry tables: organisations, people, memberships, consents, chairpersons, users, audit."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import JSON, Boolean, Date, DateTime, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from unioncard.orm import Base, byte_ordered_string


class Organisation(Base):
    __tablename__ = "organisation"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(300))
    level: Mapped[str] = mapped_column(String(16))
    kind: Mapped[str | None] = mapped_column(String(16))
    inn: Mapped[str | None] = mapped_column(String(12))
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("organisation.id"), index=True)
    path: Mapped[str] = mapped_column(byte_ordered_string(255), index=True)
    # Two-digit regional code used in card numbers; set on regional organisations.
    region_code: Mapped[str | None] = mapped_column(String(2))
    added_on: Mapped[date] = mapped_column(Date)
    removed_on: Mapped[date | None] = mapped_column(Date)
    removal_reason: Mapped[str | None] = mapped_column(String(200))
    # The load from the earlier registry (migration.models.MigrationLoad) this row came in with.
    migration_load_id: Mapped[int | None] = mapped_column(Integer, index=True)

    parent: Mapped["Organisation | None"] = relationship(remote_side="Organisation.id")


class OrganisationParentHistory(Base):
    """Each period an organisation spent under a parent: moving a subtree closes one, opens one."""

    __tablename__ = "organisation_parent_history"

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisation.id"), index=True)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("organisation.id"))
    valid_from: Mapped[datetime] = mapped_column(DateTime)
    valid_to: Mapped[datetime | None] = mapped_column(DateTime)


class Person(Base):
    __tablename__ = "person"

    id: Mapped[int] = mapped_column(primary_key=True)
    surname: Mapped[str] = mapped_column(String(100))
    given_name: Mapped[str] = mapped_column(String(100))
    patronymic: Mapped[str | None] = mapped_column(String(100))
    birth_date: Mapped[date] = mapped_column(Date)
    sex: Mapped[str | None] = mapped_column(String(8))
    phone: Mapped[str | None] = mapped_column(String(16))
    email: Mapped[str | None] = mapped_column(String(200))
    identity_key: Mapped[str] = mapped_column(String(330), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime)


class Membership(Base):
    """A person's registration in one primary organisation. At most one is open per person."""

    __tablename__ = "membership"

    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("person.id"))
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisation.id"), index=True)
    # Copies of the organisation's path and the person's search key, so that scoped lists and
    # surname searches over a regional organisation's 170 k members use one index.
    org_path: Mapped[str] = mapped_column(byte_ordered_string(255))
    sort_name: Mapped[str] = mapped_column(byte_ordered_string(310))
    category: Mapped[str] = mapped_column(String(16))
    join_date: Mapped[date] = mapped_column(Date)
    leave_date: Mapped[date | None] = mapped_column(Date)
    leave_reason: Mapped[str | None] = mapped_column(String(24))
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    # The load from the earlier registry (migration.models.MigrationLoad) this row came in with.
    migration_load_id: Mapped[int | None] = mapped_column(Integer, index=True)

    person: Mapped[Person] = relationship()
    organisation: Mapped[Organisation] = relationship()

    __table_args__ = (
        Index("uq_membership_active_person", "person_id", unique=True,
              sqlite_where=text("is_active"), postgresql_where=text("is_active")),
        Index("ix_membership_scope_name", "org_path", "sort_name"),
        # Counting a subtree's current members (every list's total) from the index alone.
        Index("ix_membership_active_path", "org_path", postgresql_where=text("is_active"),
              sqlite_where=text("is_active")),
        Index("ix_membership_sort_name", "sort_name"),
        Index("ix_membership_person", "person_id"),
    )


class Consent(Base):
    """One grant of one consent section; withdrawal closes it, a new grant is a new row."""

    __tablename__ = "consent"

    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("person.id"), index=True)
    section: Mapped[str] = mapped_column(String(20))
    given_on: Mapped[date] = mapped_column(Date)
    form: Mapped[str] = mapped_column(String(12))
    withdrawn_on: Mapped[date | None] = mapped_column(Date)
    recorded_at: Mapped[datetime] = mapped_column(DateTime)
    recorded_by: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    # The load from the earlier registry (migration.models.MigrationLoad) this row came in with.
    migration_load_id: Mapped[int | None] = mapped_column(Integer, index=True)


class ChairpersonTerm(Base):
    __tablename__ = "chairperson_term"

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisation.id"), index=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("person.id"))
    starts_on: Mapped[date] = mapped_column(Date)
    ends_on: Mapped[date] = mapped_column(Date)

    person: Mapped[Person] = relationship()


class UserAccount(Base):
    __tablename__ = "user_account"

    id: Mapped[int] = mapped_column(primary_key=True)
    login: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    full_name: Mapped[str] = mapped_column(String(300))
    role: Mapped[str] = mapped_column(String(20))
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisation.id"), index=True)
    chairperson_term_id: Mapped[int | None] = mapped_column(ForeignKey("chairperson_term.id"))
    # Last day the login works (a chairperson's is the end of the term of office).
    valid_until: Mapped[date | None] = mapped_column(Date)
    is_enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(DateTime)
    last_login_at: Mapped[datetime | None] = mapped_column(DateTime)
    created_at: Mapped[datetime] = mapped_column(DateTime)

    organisation: Mapped[Organisation] = relationship()
    chairperson_term: Mapped[ChairpersonTerm | None] = relationship()


class AuditEntry(Base):
    """Append-only: database triggers refuse UPDATE and DELETE (see the first migration)."""

    __tablename__ = "audit_entry"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime, index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(48))
    object_type: Mapped[str] = mapped_column(String(32))
    object_id: Mapped[str | None] = mapped_column(String(64))
    organisation_id: Mapped[int | None] = mapped_column(Integer)
    details: Mapped[dict | None] = mapped_column(JSON)

    __table_args__ = (Index("ix_audit_object", "object_type", "object_id"),)


class ImportLog(Base):
    """Files imported into a primary organisation, by content hash (for the history page)."""

    __tablename__ = "import_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisation.id"), index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    file_name: Mapped[str] = mapped_column(String(255))
    sha256: Mapped[str] = mapped_column(String(64))
    rows: Mapped[int] = mapped_column(Integer)
    created: Mapped[int] = mapped_column(Integer)
    updated: Mapped[int] = mapped_column(Integer)
    unchanged: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(DateTime)
    summary: Mapped[str | None] = mapped_column(Text)


class UserSession(Base):
    """A login session kept on the server: the browser's cookie holds only its random token (the
    hash is stored), so logout, a password change or disabling the user ends it for good, and
    every session has an absolute lifetime besides its idle timeout."""

    __tablename__ = "user_session"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    last_seen_at: Mapped[datetime] = mapped_column(DateTime)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime)
    end_reason: Mapped[str | None] = mapped_column(String(24))
    address: Mapped[str | None] = mapped_column(String(45))


class LoginThrottle(Base):
    """Failed passwords per (login, address): repeated failures lock that login from that address
    only, so a stranger cannot lock someone out by guessing from elsewhere."""

    __tablename__ = "login_throttle"
    __table_args__ = (Index("uq_login_throttle_user_address", "user_id", "address", unique=True),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"))
    address: Mapped[str] = mapped_column(String(45))
    failures: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(DateTime)
    updated_at: Mapped[datetime] = mapped_column(DateTime)
