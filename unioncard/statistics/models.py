"""Statistics tables: organisation passports, activists' positions, reporting campaigns, forms."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import JSON, Boolean, Date, DateTime, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from unioncard.orm import Base, byte_ordered_string
from unioncard.registry.models import Organisation, Person


class OrganisationPassport(Base):
    """What no registry of members can know, as of a date; a change is a new row (its history)."""

    __tablename__ = "organisation_passport"
    __table_args__ = (UniqueConstraint("organisation_id", "valid_from", name="uq_passport_org_date"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisation.id"), index=True)
    valid_from: Mapped[date] = mapped_column(Date)
    institution_type: Mapped[str | None] = mapped_column(String(24))
    employees_total: Mapped[int | None] = mapped_column(Integer)
    employees_women: Mapped[int | None] = mapped_column(Integer)
    employees_youth: Mapped[int | None] = mapped_column(Integer)
    students_total: Mapped[int | None] = mapped_column(Integer)
    students_women: Mapped[int | None] = mapped_column(Integer)
    students_youth: Mapped[int | None] = mapped_column(Integer)
    founded_on: Mapped[date | None] = mapped_column(Date)
    legal_entity: Mapped[bool | None] = mapped_column(Boolean)
    address: Mapped[str | None] = mapped_column(String(300))
    phone: Mapped[str | None] = mapped_column(String(16))
    email: Mapped[str | None] = mapped_column(String(200))
    recorded_at: Mapped[datetime] = mapped_column(DateTime)
    recorded_by: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))


class ActivistPosition(Base):
    """A person's elected or staff position in an organisation, with its term (Table III, Form 15)."""

    __tablename__ = "activist_position"

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisation.id"), index=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("person.id"), index=True)
    kind: Mapped[str] = mapped_column(String(24))
    starts_on: Mapped[date] = mapped_column(Date)
    ends_on: Mapped[date | None] = mapped_column(Date)
    elected_alternative: Mapped[bool] = mapped_column(Boolean, default=False)
    elected_first_time: Mapped[bool] = mapped_column(Boolean, default=False)
    is_paid: Mapped[bool] = mapped_column(Boolean, default=False)
    # The load from the earlier registry (migration.models.MigrationLoad) this row came in with.
    migration_load_id: Mapped[int | None] = mapped_column(Integer, index=True)
    recorded_at: Mapped[datetime] = mapped_column(DateTime)

    person: Mapped[Person] = relationship()
    organisation: Mapped[Organisation] = relationship()


class ReportingCampaign(Base):
    __tablename__ = "reporting_campaign"

    id: Mapped[int] = mapped_column(primary_key=True)
    year: Mapped[int] = mapped_column(Integer, unique=True)
    deadline: Mapped[date] = mapped_column(Date)
    opened_at: Mapped[datetime] = mapped_column(DateTime)
    opened_by: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))


class StatForm(Base):
    """One organisation's form for one campaign. ``version`` grows with every change, so two people
    acting on the same state cannot both win."""

    __tablename__ = "stat_form"
    __table_args__ = (UniqueConstraint("campaign_id", "organisation_id", name="uq_stat_form_campaign_org"),
                      Index("ix_stat_form_campaign_path", "campaign_id", "org_path"))

    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("reporting_campaign.id"))
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisation.id"))
    org_path: Mapped[str] = mapped_column(byte_ordered_string(255))
    form: Mapped[str] = mapped_column(String(8))
    status: Mapped[str] = mapped_column(String(12))
    version: Mapped[int] = mapped_column(Integer, default=1)
    # Frozen at submission: what Form 7 needs besides the figures.
    institution_type: Mapped[str | None] = mapped_column(String(24))
    students_organisation: Mapped[bool] = mapped_column(Boolean, default=False)
    created_this_year: Mapped[bool] = mapped_column(Boolean, default=False)
    members_under_half: Mapped[bool] = mapped_column(Boolean, default=False)
    explanations: Mapped[dict | None] = mapped_column(JSON)
    return_comment: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    updated_at: Mapped[datetime] = mapped_column(DateTime)
    submitted_at: Mapped[datetime | None] = mapped_column(DateTime)
    decided_at: Mapped[datetime | None] = mapped_column(DateTime)
    reminded_at: Mapped[datetime | None] = mapped_column(DateTime)

    campaign: Mapped[ReportingCampaign] = relationship()
    organisation: Mapped[Organisation] = relationship()


class StatCorrection(Base):
    """A figure counted by hand instead of the registry's, with the reason."""

    __tablename__ = "stat_correction"
    __table_args__ = (UniqueConstraint("form_id", "row", "col", name="uq_stat_correction_cell"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    form_id: Mapped[int] = mapped_column(ForeignKey("stat_form.id"))
    row: Mapped[str] = mapped_column(String(8))
    col: Mapped[str] = mapped_column(String(12))
    registry_value: Mapped[int | None] = mapped_column(Integer)
    value: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(String(500))
    recorded_at: Mapped[datetime] = mapped_column(DateTime)
    recorded_by: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))


class StatFormValue(Base):
    """The figures of a form as submitted (rows × columns); Form 7 sums those of accepted forms."""

    __tablename__ = "stat_form_value"
    __table_args__ = (UniqueConstraint("form_id", "row", "col", name="uq_stat_value_cell"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    form_id: Mapped[int] = mapped_column(ForeignKey("stat_form.id"))
    row: Mapped[str] = mapped_column(String(8))
    col: Mapped[str] = mapped_column(String(12))
    value: Mapped[int | None] = mapped_column(Integer)  # percentages are not stored: they are recomputed
