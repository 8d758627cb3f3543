"""Statistical reporting: passports, activists, campaigns, Form 2 and Form 7, their workflow.

Every function takes the actor: an organisation outside the actor's part of the union does not
exist for them (404), whichever door asks (web page, XLSX, PDF, CLI).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date

from sqlalchemy import and_, case, delete, exists, false, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased

from unioncard import clock
from unioncard.db import UnitOfWork, chunked
from unioncard.errors import Conflict, NotFound, PermissionDenied, ValidationError
from unioncard.i18n import N_
from unioncard.registry import audit
from unioncard.registry import services as registry
from unioncard.registry import domain as d
from unioncard.registry.actor import Actor
from unioncard.registry.models import AuditEntry, ChairpersonTerm, Membership, Organisation, Person
from unioncard.statistics import domain as sd
from unioncard.statistics.models import (
    ActivistPosition, OrganisationPassport, ReportingCampaign, StatCorrection, StatForm, StatFormValue,
)

MAX_TEXT = 500
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _text(value, limit: int = MAX_TEXT, *, field_name: str = "text") -> str:
    value = (value or "").strip()
    if _CONTROL.search(value):
        raise ValidationError(N_("The text holds characters that cannot be stored"), code="text_control_characters",
                              field=field_name)
    if len(value) > limit:
        raise ValidationError(N_("The text is longer than %(limit)s characters"), code="text_too_long",
                              field=field_name, limit=limit)
    return value


def _visible_org(session: Session, actor: Actor, organisation_id) -> Organisation:
    """The registry's scoped lookup, for someone who may see members (an id past what the database
    holds is as unknown as any other)."""
    if not (isinstance(organisation_id, int) and 0 < organisation_id < 2**63) \
            or not actor.can(d.Permission.VIEW_MEMBERS):
        raise NotFound(N_("Organisation not found"), code="organisation_not_found")
    return registry.get_organisation(session, actor, organisation_id)


# --- passports -------------------------------------------------------------------------------

def current_passport(session: Session, organisation_id: int, on: date | None = None) -> OrganisationPassport | None:
    on = on or clock.today()
    return session.scalars(select(OrganisationPassport).where(
        OrganisationPassport.organisation_id == organisation_id, OrganisationPassport.valid_from <= on)
        .order_by(OrganisationPassport.valid_from.desc())).first()


def passport_for_report(session: Session, organisation_id: int, on: date) -> OrganisationPassport | None:
    return passports_for_report(session, [organisation_id], on).get(organisation_id)


def passport_history(session: Session, actor: Actor, organisation_id: int) -> list[OrganisationPassport]:
    org = _visible_org(session, actor, organisation_id)
    return list(session.scalars(select(OrganisationPassport).where(OrganisationPassport.organisation_id == org.id)
                                .order_by(OrganisationPassport.valid_from.desc())))


def passport_values(passport: OrganisationPassport | None) -> dict:
    return {name: getattr(passport, name) for name in sd.PASSPORT_FIELDS} if passport else {}


def _count(value, name: str) -> int | None:
    if value in (None, ""):
        return None
    number = sd.whole_number(value)
    if number is None:
        raise ValidationError(N_("Enter a whole number"), code="passport_not_a_number", field=name)
    if not 0 <= number <= 10_000_000:
        raise ValidationError(N_("Enter a number from 0 to 10 000 000"), code="passport_number_out_of_range",
                              field=name)
    return number


def _working_and_student_members(session: Session, org: Organisation, on: date) -> dict[str, int]:
    return dict(session.execute(select(Membership.category, func.count()).where(
        Membership.org_path.startswith(org.path), Membership.join_date <= on,
        or_(Membership.leave_date.is_(None), Membership.leave_date > on)).group_by(Membership.category)).all())


def save_passport(uow: UnitOfWork, actor: Actor, organisation_id: int, raw: dict,
                  valid_from: date | None = None) -> OrganisationPassport:
    """A new version of the passport from ``valid_from`` (today by default); the same day's version
    is replaced. Headcounts below the registry's members are refused."""
    session = uow.session
    org = _visible_org(session, actor, organisation_id)
    needed = d.Permission.FILL_REPORTS if org.path == actor.scope_path or org.level == d.Level.PRIMARY \
        else d.Permission.EDIT_ORGANISATIONS
    if not actor.can(needed):
        raise PermissionDenied()
    today = clock.today()
    valid_from = valid_from or today
    if valid_from > today or valid_from.year < 1900:
        raise ValidationError(N_("The date cannot be in the future"), code="passport_date_invalid",
                              field="valid_from")
    values: dict = {}
    institution_type = (raw.get("institution_type") or "").strip() or None
    if institution_type is not None and institution_type not in set(sd.InstitutionType):
        raise ValidationError(N_("Choose the type of institution from the list"), code="institution_type_unknown",
                              field="institution_type")
    values["institution_type"] = institution_type
    for name in ("employees_total", "employees_women", "employees_youth", "students_total", "students_women",
                 "students_youth"):
        values[name] = _count(raw.get(name), name)
    founded = raw.get("founded_on")
    if isinstance(founded, str):
        try:
            founded = date.fromisoformat(founded.strip()) if founded.strip() else None
        except ValueError:
            raise ValidationError(N_("Give the date as day.month.year"), code="passport_date_invalid",
                                  field="founded_on") from None
    if founded is not None and not (date(1890, 1, 1) <= founded <= today):
        raise ValidationError(N_("The date of creation is impossible"), code="founded_on_impossible",
                              field="founded_on")
    values["founded_on"] = founded
    legal = raw.get("legal_entity")
    if legal not in (None, "", True, False, "yes", "no"):
        raise ValidationError(N_("Choose yes or no"), code="legal_entity_invalid", field="legal_entity")
    values["legal_entity"] = None if legal in (None, "") else legal in (True, "yes")
    values["address"] = _text(raw.get("address"), 300, field_name="address") or None
    values["phone"] = d.validate_phone(_text(raw.get("phone"), 40, field_name="phone"))
    values["email"] = d.validate_email(_text(raw.get("email"), 200, field_name="email"))
    sd.check_passport(values, _working_and_student_members(session, org, today))
    passport = session.scalar(select(OrganisationPassport).where(
        OrganisationPassport.organisation_id == org.id, OrganisationPassport.valid_from == valid_from))
    before = passport_values(current_passport(session, org.id))
    if passport is None:
        passport = OrganisationPassport(organisation_id=org.id, valid_from=valid_from)
        session.add(passport)
    for name, value in values.items():
        setattr(passport, name, value)
    passport.recorded_at = clock.now()
    passport.recorded_by = actor.user_id
    session.flush()
    changed = sorted(name for name in sd.PASSPORT_FIELDS if before.get(name) != values[name])
    audit.record(session, actor, "passport.save", "organisation", org.id, org.id, valid_from=valid_from,
                 changed=changed)
    return passport


@dataclass
class PassportState:
    organisation: Organisation
    passport: OrganisationPassport | None
    missing: list[str]
    mandatory: int

    @property
    def filled(self) -> int:
        return self.mandatory - len(self.missing)


@dataclass
class CompletenessRow:
    organisation_id: int
    name: str
    organisations: int = 0
    complete: int = 0
    mandatory: int = 0
    filled: int = 0

    @property
    def percent(self) -> float:
        return round(100 * self.filled / self.mandatory, 1) if self.mandatory else 100.0


def passports_for_report(session: Session, org_ids, on: date) -> dict[int, OrganisationPassport]:
    """Each organisation's passport in force on the date; failing that, the first one filled in
    after it (a chairperson who fills the passport in January reports last year's form with it)."""
    found: dict[int, OrganisationPassport] = {}
    for chunk in chunked(list(org_ids), 5000):
        for passport in session.scalars(select(OrganisationPassport).where(
                OrganisationPassport.organisation_id.in_(chunk)).order_by(OrganisationPassport.valid_from)):
            held = found.get(passport.organisation_id)
            if held is None or passport.valid_from <= on:
                found[passport.organisation_id] = passport
    return found


def passport_states(session: Session, actor: Actor, within_id: int | None = None, *, only_incomplete: bool = False,
                    on: date | None = None) -> list[PassportState]:
    """Each organisation under ``within_id`` (the actor's own by default) with what its passport lacks."""
    if not actor.can(d.Permission.VIEW_MEMBERS):
        raise PermissionDenied()
    on = on or clock.today()
    root = _visible_org(session, actor, within_id) if within_id else session.scalar(
        select(Organisation).where(Organisation.path == actor.scope_path))
    if root is None:
        return []
    orgs = list(session.scalars(select(Organisation).where(
        Organisation.path.startswith(root.path), Organisation.removed_on.is_(None),
        Organisation.level != d.Level.SUBDIVISION).order_by(Organisation.path)))
    passports = passports_for_report(session, [o.id for o in orgs], on)
    states = []
    for org in orgs:
        passport = passports.get(org.id)
        values = passport_values(passport)
        mandatory = sd.mandatory_passport_fields(org.level, org.kind, values.get("institution_type"))
        missing = sd.missing_passport_fields(values, org.level, org.kind)
        if only_incomplete and not missing:
            continue
        states.append(PassportState(org, passport, missing, len(mandatory)))
    return states


def passport_completeness(session: Session, actor: Actor) -> tuple[list[CompletenessRow], CompletenessRow]:
    """«Заполнено обязательных полей»: per region for central staff, per territorial organisation
    (and the region's own primaries) for a region, the actor's own organisation below that."""
    states = passport_states(session, actor)
    depth = len(d.path_ids(actor.scope_path))
    rows: dict[int, CompletenessRow] = {}
    total = CompletenessRow(0, "")
    names = {}
    for state in states:
        ids = d.path_ids(state.organisation.path)
        group = ids[depth] if len(ids) > depth else ids[-1]
        names.setdefault(group, None)
        row = rows.setdefault(group, CompletenessRow(group, ""))
        for target in (row, total):
            target.organisations += 1
            target.complete += not state.missing
            target.mandatory += state.mandatory
            target.filled += state.filled
    for org in session.scalars(select(Organisation).where(Organisation.id.in_(list(rows)))):
        rows[org.id].name = org.name
    return sorted(rows.values(), key=lambda r: r.name), total


# --- activists ---------------------------------------------------------------------------------

def appointed_chairperson(session: Session, actor: Actor, organisation_id: int):
    """The registry's current chairperson term, for the activists page to show beside positions."""
    org = _visible_org(session, actor, organisation_id)
    return session.scalars(select(ChairpersonTerm).where(
        ChairpersonTerm.organisation_id == org.id, ChairpersonTerm.starts_on <= clock.today(),
        ChairpersonTerm.ends_on >= clock.today()).order_by(ChairpersonTerm.starts_on.desc())).first()


def positions(session: Session, actor: Actor, organisation_id: int, *, include_ended: bool = False
              ) -> list[ActivistPosition]:
    org = _visible_org(session, actor, organisation_id)
    query = select(ActivistPosition).where(ActivistPosition.organisation_id == org.id)
    if not include_ended:
        query = query.where(or_(ActivistPosition.ends_on.is_(None), ActivistPosition.ends_on >= clock.today()))
    return list(session.scalars(query.order_by(ActivistPosition.kind, ActivistPosition.starts_on)))


def add_position(uow: UnitOfWork, actor: Actor, organisation_id: int, person_id: int, kind: str, starts_on: date,
                 ends_on: date | None = None, *, elected_alternative: bool = False, elected_first_time: bool = False,
                 is_paid: bool = False) -> ActivistPosition:
    session = uow.session
    org = _visible_org(session, actor, organisation_id)
    if not actor.can(d.Permission.FILL_REPORTS):
        raise PermissionDenied()
    if kind not in set(sd.PositionKind):
        raise ValidationError(N_("Choose the position from the list"), code="position_kind_unknown", field="kind")
    if ends_on is not None and ends_on <= starts_on:
        raise ValidationError(N_("The term must end after it starts"), code="term_dates_invalid", field="ends_on")
    if not (date(1950, 1, 1) <= starts_on <= date(2100, 1, 1)):
        raise ValidationError(N_("The date of the start is impossible"), code="position_date_invalid",
                              field="starts_on")
    # Activists are union members the actor can see: another region's person ids are unknown here.
    member_paths = session.scalars(select(Membership.org_path).where(
        Membership.person_id == person_id, Membership.is_active.is_(True))).all() if 0 < person_id < 2**63 else []
    if not any(actor.sees(path) for path in member_paths):
        raise NotFound(N_("Member not found"), code="member_not_found")
    duplicate = session.scalar(select(ActivistPosition.id).where(
        ActivistPosition.organisation_id == org.id, ActivistPosition.person_id == person_id,
        ActivistPosition.kind == kind, or_(ActivistPosition.ends_on.is_(None), ActivistPosition.ends_on > starts_on)))
    if duplicate is not None:
        raise Conflict(N_("This person already holds this position here"), code="position_exists")
    position = ActivistPosition(organisation_id=org.id, person_id=person_id, kind=kind, starts_on=starts_on,
                                ends_on=ends_on, elected_alternative=elected_alternative,
                                elected_first_time=elected_first_time, is_paid=is_paid, recorded_at=clock.now())
    session.add(position)
    session.flush()
    audit.record(session, actor, "position.add", "activist_position", position.id, org.id, person_id=person_id,
                 kind=kind, starts_on=starts_on, ends_on=ends_on)
    return position


def end_position(uow: UnitOfWork, actor: Actor, position_id: int, ends_on: date,
                 organisation_id: int | None = None) -> ActivistPosition:
    session = uow.session
    position = session.get(ActivistPosition, position_id) if 0 < position_id < 2**63 else None
    if position is None or (organisation_id is not None and position.organisation_id != organisation_id):
        raise NotFound(N_("Position not found"), code="position_not_found")
    _visible_org(session, actor, position.organisation_id)
    if not actor.can(d.Permission.FILL_REPORTS):
        raise PermissionDenied()
    if ends_on <= position.starts_on:
        raise ValidationError(N_("The term must end after it starts"), code="term_dates_invalid", field="ends_on")
    position.ends_on = ends_on
    audit.record(session, actor, "position.end", "activist_position", position.id, position.organisation_id,
                 ends_on=ends_on)
    return position


# --- campaigns -------------------------------------------------------------------------------

def campaigns(session: Session) -> list[ReportingCampaign]:
    return list(session.scalars(select(ReportingCampaign).order_by(ReportingCampaign.year.desc())))


def get_campaign(session: Session, year) -> ReportingCampaign:
    try:
        year = int(year)
    except (TypeError, ValueError):
        year = 0
    campaign = session.scalar(select(ReportingCampaign).where(ReportingCampaign.year == year)) \
        if 1900 < year < 3000 else None
    if campaign is None:
        raise NotFound(N_("No reporting campaign has been opened for %(year)s"), code="campaign_not_found",
                       year=year)
    return campaign


def open_campaign(uow: UnitOfWork, actor: Actor, year: int, deadline: date) -> ReportingCampaign:
    session = uow.session
    if not actor.can(d.Permission.OPEN_CAMPAIGNS):
        raise PermissionDenied()
    today = clock.today()
    if not (2000 <= year <= today.year):
        raise ValidationError(N_("A report is made for a year that has begun: from 2000 to %(year)s"),
                              code="campaign_year_invalid", field="year", year=today.year)
    if session.scalar(select(ReportingCampaign.id).where(ReportingCampaign.year == year)) is not None:
        raise Conflict(N_("The campaign for %(year)s is already open"), code="campaign_exists", year=year)
    if deadline < today:
        raise ValidationError(N_("The deadline has already passed: choose a later day"),
                              code="campaign_deadline_past", field="deadline")
    if deadline < date(year, 1, 1) or deadline.year > year + 1:
        raise ValidationError(N_("The deadline must fall in the reporting year or the next one"),
                              code="campaign_deadline_invalid", field="deadline")
    campaign = ReportingCampaign(year=year, deadline=deadline, opened_at=clock.now(), opened_by=actor.user_id)
    session.add(campaign)
    session.flush()
    audit.record(session, actor, "campaign.open", "reporting_campaign", campaign.id, None, year=year,
                 deadline=deadline)
    return campaign


# --- counting the registry ---------------------------------------------------------------------

def member_counts(session: Session, root_path: str, year: int, on: date) -> dict[int, sd.MemberCounts]:
    """Per primary organisation under ``root_path`` (subdivisions count in their primary): members
    on ``on`` by category, sex, youth and first admission this year; leavers of the year."""
    start = date(year, 1, 1)
    earlier = aliased(Membership)
    first_time = and_(Membership.join_date >= start, ~exists().where(
        earlier.person_id == Membership.person_id, earlier.id != Membership.id,
        earlier.join_date < Membership.join_date))
    inner = (select(Membership.org_path.label("path"), Membership.category.label("category"),
                    (Person.sex == d.Sex.FEMALE).label("female"),
                    (Person.birth_date > sd.youth_cutoff(on)).label("youth"),
                    case((first_time, True), else_=False).label("first_time"))
             .join(Person, Person.id == Membership.person_id)
             .where(Membership.org_path.startswith(root_path), Membership.join_date <= on,
                    or_(Membership.leave_date.is_(None), Membership.leave_date > on))).subquery()
    out: dict[int, sd.MemberCounts] = {}
    primary_of = _primary_of(session, root_path)
    for path, category, female, youth, first, count in session.execute(
            select(inner.c.path, inner.c.category, inner.c.female, inner.c.youth, inner.c.first_time, func.count())
            .group_by(inner.c.path, inner.c.category, inner.c.female, inner.c.youth, inner.c.first_time)):
        primary = primary_of(path)
        if primary is not None:
            out.setdefault(primary, sd.MemberCounts()).add(category, female, youth, first, count)
    for path, reason, count in session.execute(
            select(Membership.org_path, Membership.leave_reason, func.count()).where(
                Membership.org_path.startswith(root_path), Membership.leave_date >= start, Membership.leave_date <= on,
                Membership.leave_reason.in_([d.LeaveReason.OWN_WISH, d.LeaveReason.EXPELLED]))
            .group_by(Membership.org_path, Membership.leave_reason)):
        primary = primary_of(path)
        if primary is None:
            continue
        counts = out.setdefault(primary, sd.MemberCounts())
        if reason == d.LeaveReason.OWN_WISH:
            counts.left_own_wish += count
        else:
            counts.expelled += count
    return out


def _primary_of(session: Session, root_path: str):
    """path → the id of the primary organisation on it (the path's own or an ancestor)."""
    primaries = set(session.scalars(select(Organisation.id).where(
        Organisation.path.startswith(root_path), Organisation.level == d.Level.PRIMARY)))
    root_ancestors = d.path_ids(root_path)
    primaries.update(i for i in root_ancestors if session.scalar(
        select(Organisation.level).where(Organisation.id == i)) == d.Level.PRIMARY)

    def primary_of(path: str) -> int | None:
        for organisation_id in reversed(d.path_ids(path)):
            if organisation_id in primaries:
                return organisation_id
        return None

    return primary_of


def headcount(passport: OrganisationPassport | None) -> sd.Headcount:
    if passport is None:
        return sd.Headcount()
    return sd.Headcount((passport.employees_total, passport.employees_women, passport.employees_youth),
                        (passport.students_total, passport.students_women, passport.students_youth))


# --- one organisation's form ---------------------------------------------------------------------

@dataclass
class FormView:
    campaign: ReportingCampaign
    organisation: Organisation
    kind: str                              # form2 | form7
    form: StatForm | None
    on: date
    figures: sd.Figures
    registry: sd.Figures = field(default_factory=dict)
    corrections: dict = field(default_factory=dict)   # (row, col) → StatCorrection
    findings: list = field(default_factory=list)
    blocking: list = field(default_factory=list)
    previous: sd.Figures | None = None
    table3: sd.Figures | None = None
    below: dict = field(default_factory=dict)          # Form 7: forms below by status

    @property
    def status(self) -> str:
        return self.form.status if self.form else sd.FormStatus.NOT_STARTED

    @property
    def editable(self) -> bool:
        return self.status in sd.EDITABLE

    @property
    def version(self) -> int:
        return self.form.version if self.form else 0

    @property
    def overdue(self) -> bool:
        return sd.is_overdue(self.status, self.campaign.deadline, clock.today())


def _form_org(session: Session, actor: Actor, organisation_id) -> tuple[Organisation, str]:
    org = _visible_org(session, actor, organisation_id)
    kind = sd.form_kind_for(org.level)
    if kind is None or org.removed_on is not None:
        raise NotFound(N_("This organisation does not report on a statistical form"), code="form_not_applicable")
    return org, kind


def _stored_form(session: Session, campaign_id: int, organisation_id: int) -> StatForm | None:
    return session.scalar(select(StatForm).where(StatForm.campaign_id == campaign_id,
                                                 StatForm.organisation_id == organisation_id))


def _frozen_figures(session: Session, form_id: int) -> sd.Figures:
    return {(row, col): value for row, col, value in session.execute(
        select(StatFormValue.row, StatFormValue.col, StatFormValue.value).where(StatFormValue.form_id == form_id))}


def _live_form2(session: Session, org: Organisation, campaign: ReportingCampaign, form: StatForm | None, on: date):
    counts = member_counts(session, org.path, campaign.year, on).get(org.id, sd.MemberCounts())
    registry = sd.complete_form2(sd.registry_figures(counts, headcount(passport_for_report(session, org.id, on))))
    corrections = {}
    if form is not None:
        corrections = {(c.row, c.col): c for c in session.scalars(
            select(StatCorrection).where(StatCorrection.form_id == form.id))}
    figures = sd.apply_corrections(registry, {key: c.value for key, c in corrections.items()})
    return registry, corrections, figures


def view_form(session: Session, actor: Actor, year, organisation_id) -> FormView:
    """The form as the actor sees it: live figures while it can change, frozen ones once sent."""
    org, kind = _form_org(session, actor, organisation_id)
    campaign = get_campaign(session, year)
    form = _stored_form(session, campaign.id, org.id)
    on = sd.report_date(campaign.year, clock.today())
    view = FormView(campaign, org, kind, form, on, {})
    frozen = form is not None and form.status in (sd.FormStatus.SUBMITTED, sd.FormStatus.ACCEPTED)
    if kind == "form2":
        view.registry, view.corrections, live = _live_form2(session, org, campaign, form, on)
        view.figures = sd.complete_form2(_frozen_figures(session, form.id)) if frozen else live
        view.findings = sd.check_form2(view.figures)
    else:
        table2, table3, below = _live_form7(session, org, campaign, on)
        view.below = below
        if frozen:
            stored = _frozen_figures(session, form.id)
            view.figures = _with_percent({k: v for k, v in stored.items() if not k[0].startswith("t3:")})
            view.table3 = {(k[0][3:], k[1]): v for k, v in stored.items() if k[0].startswith("t3:")}
        else:
            view.figures, view.table3 = table2, table3
        view.findings = sd.check_form7(view.figures, view.table3) + _below_findings(below)
    view.blocking = sd.blocking(view.findings, (form.explanations if form else None) or {})
    view.previous = _previous_figures(session, org, kind, campaign.year)
    return view


def _with_percent(figures: sd.Figures) -> sd.Figures:
    out = dict(figures)
    for column in sd.FORM7_COLUMNS:
        out[("9", column)] = sd.percent(out.get(("8", column)), out.get(("7", column)))
    return out


def _previous_figures(session: Session, org: Organisation, kind: str, year: int) -> sd.Figures | None:
    previous = session.scalar(select(StatForm).join(ReportingCampaign).where(
        ReportingCampaign.year == year - 1, StatForm.organisation_id == org.id,
        StatForm.status.in_([sd.FormStatus.SUBMITTED, sd.FormStatus.ACCEPTED])))
    if previous is None:
        return None
    figures = _frozen_figures(session, previous.id)
    return sd.complete_form2(figures) if kind == "form2" else _with_percent(
        {k: v for k, v in figures.items() if not k[0].startswith("t3:")})


def _below_findings(below: dict) -> list[sd.Finding]:
    expected = sum(below.values())
    accepted = below.get(sd.FormStatus.ACCEPTED, 0)
    if accepted == expected:
        return []
    return [sd.Finding("form7_not_all_accepted", N_("Accepted %(accepted)s of %(expected)s forms of the "
                                                    "organisations below"),
                       {"accepted": accepted, "expected": expected})]


def _live_form7(session: Session, org: Organisation, campaign: ReportingCampaign, on: date):
    """Table II as the sum of the accepted Form 2s under ``org``, summed in the database; Table III
    from the positions held on the report date."""
    groups: dict[tuple, dict] = {}
    accepted = and_(StatForm.campaign_id == campaign.id, StatForm.form == "form2",
                    StatForm.status == sd.FormStatus.ACCEPTED, StatForm.org_path.startswith(org.path))
    keys = (StatForm.institution_type, StatForm.students_organisation, StatForm.created_this_year,
            StatForm.members_under_half)
    for *key, count in session.execute(select(*keys, func.count()).where(accepted).group_by(*keys)):
        groups[tuple(key)] = {"count": count, "figures": {}}
    for *key, row, col, total in session.execute(
            select(*keys, StatFormValue.row, StatFormValue.col, func.sum(StatFormValue.value))
            .join(StatFormValue, StatFormValue.form_id == StatForm.id).where(accepted)
            .group_by(*keys, StatFormValue.row, StatFormValue.col)):
        groups[tuple(key)]["figures"][(row, col)] = int(total) if total is not None else None
    forms = [sd.AcceptedForm2(key[0], bool(key[1]), bool(key[2]), group["figures"], bool(key[3]), group["count"])
             for key, group in groups.items()]
    table2 = sd.form7_table2(forms)
    table3 = sd.form7_table3(_activists(session, org.path, on))
    return table2, table3, _form2_statuses_below(session, org, campaign)


def _form2_statuses_below(session: Session, org: Organisation, campaign: ReportingCampaign) -> dict:
    expected = session.scalar(select(func.count()).select_from(Organisation).where(
        Organisation.path.startswith(org.path), Organisation.path != org.path, Organisation.removed_on.is_(None),
        Organisation.level == d.Level.PRIMARY))
    out = dict(session.execute(select(StatForm.status, func.count()).where(
        StatForm.campaign_id == campaign.id, StatForm.form == "form2", StatForm.org_path.startswith(org.path),
        StatForm.org_path != org.path).group_by(StatForm.status)).all())
    out[sd.FormStatus.NOT_STARTED] = out.get(sd.FormStatus.NOT_STARTED, 0) + max(0, expected - sum(out.values()))
    return out


def _activists(session: Session, root_path: str, on: date) -> list[sd.Activist]:
    rows = session.execute(
        select(ActivistPosition.kind, ActivistPosition.is_paid, ActivistPosition.organisation_id, Organisation.level,
               Organisation.kind, Person.sex, Person.birth_date)
        .join(Organisation, Organisation.id == ActivistPosition.organisation_id)
        .join(Person, Person.id == ActivistPosition.person_id)
        .where(Organisation.path.startswith(root_path), ActivistPosition.starts_on <= on,
               or_(ActivistPosition.ends_on.is_(None), ActivistPosition.ends_on >= on))).all()
    # A chairperson appointed in the registry (the term behind their login) counts even before
    # anyone records the position with its details; a recorded position takes its place.
    recorded = {r[2] for r in rows if r[0] == sd.PositionKind.CHAIRPERSON}
    rows += [(sd.PositionKind.CHAIRPERSON, False, oid, level, kind, sex, birth)
             for oid, level, kind, sex, birth in session.execute(
                 select(ChairpersonTerm.organisation_id, Organisation.level, Organisation.kind, Person.sex,
                        Person.birth_date)
                 .join(Organisation, Organisation.id == ChairpersonTerm.organisation_id)
                 .join(Person, Person.id == ChairpersonTerm.person_id)
                 .where(Organisation.path.startswith(root_path), ChairpersonTerm.starts_on <= on,
                        ChairpersonTerm.ends_on >= on))
             if oid not in recorded]
    chair_orgs = {r[2] for r in rows if r[0] == sd.PositionKind.CHAIRPERSON and r[3] == d.Level.PRIMARY}
    passports = passports_for_report(session, chair_orgs, on)
    sizes: dict[int, int] = {}
    for chunk in chunked(sorted(chair_orgs), 5000):
        sizes.update(session.execute(select(Membership.organisation_id, func.count()).where(
            Membership.organisation_id.in_(chunk), Membership.join_date <= on,
            or_(Membership.leave_date.is_(None), Membership.leave_date > on))
            .group_by(Membership.organisation_id)).all())
    cutoff = sd.youth_cutoff(on)
    return [sd.Activist(kind, level, passports[oid].institution_type if oid in passports else None,
                        org_kind == d.OrgKind.STUDENTS, sizes.get(oid, 0), bool(paid), sex == d.Sex.FEMALE,
                        birth > cutoff)
            for kind, paid, oid, level, org_kind, sex, birth in rows]


# --- the workflow ------------------------------------------------------------------------------

def may_fill(actor: Actor, org: Organisation) -> bool:
    """An organisation fills its own form; the level above accepts or returns it, and never
    accepts figures it typed itself. An administrator may stand in for anyone."""
    if not (actor.can(d.Permission.FILL_REPORTS) and actor.sees(org.path)):
        return False
    return org.path == actor.scope_path or actor.can(d.Permission.OPEN_CAMPAIGNS)


def may_review(actor: Actor, org: Organisation) -> bool:
    """The level above decides: someone whose part of the union holds the organisation, not the
    organisation itself."""
    return actor.can(d.Permission.REVIEW_REPORTS) and actor.sees(org.path) and org.path != actor.scope_path


def _draft(session: Session, campaign: ReportingCampaign, org: Organisation, kind: str) -> StatForm:
    """The stored form, made on the first change; two people making it at once get the same one."""
    form = _stored_form(session, campaign.id, org.id)
    if form is not None:
        return form
    now = clock.now()
    try:
        with session.begin_nested():
            form = StatForm(campaign_id=campaign.id, organisation_id=org.id, org_path=org.path, form=kind,
                            status=sd.FormStatus.DRAFT, version=1, created_at=now, updated_at=now)
            session.add(form)
            session.flush()
    except IntegrityError:
        form = _stored_form(session, campaign.id, org.id)
    return form


def _bump(session: Session, form: StatForm, version: int, **changes) -> None:
    """Change the form only if nobody has since: exactly one of two simultaneous actions wins."""
    result = session.execute(update(StatForm).where(StatForm.id == form.id, StatForm.version == version)
                             .values(version=version + 1, updated_at=clock.now(), **changes))
    if result.rowcount != 1:
        raise Conflict(N_("Someone has already changed this form: reload the page"), code="form_state_changed")
    session.refresh(form)


def _version(value) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return -1


def _expected_version(form: StatForm, sent, *, existed: bool = True) -> int:
    """The version a change must find. A page shown before the form was stored sends 0: an edit
    then applies to whatever is stored now; a submission only if nothing was stored before it."""
    version = _version(sent)
    return form.version if version == 0 and existed else version


def _editable_form(session: Session, actor: Actor, year, organisation_id):
    """The organisation, its campaign and its form (made on the first change), refused unless the
    actor fills it and it can still change."""
    org, kind = _form_org(session, actor, organisation_id)
    if not may_fill(actor, org):
        raise PermissionDenied()
    campaign = get_campaign(session, year)
    form = _draft(session, campaign, org, kind)
    if form.status not in sd.EDITABLE:
        raise Conflict(N_("The form has been sent: it can be changed only after it is returned"),
                       code="form_locked")
    return org, kind, campaign, form


def correct(uow: UnitOfWork, actor: Actor, year, organisation_id, row: str, column: str, value, reason: str,
            version) -> StatCorrection | None:
    """Replace a registry figure with one counted by hand (a reason is required); an empty value
    takes the correction back."""
    session = uow.session
    org, kind, campaign, form = _editable_form(session, actor, year, organisation_id)
    if kind != "form2":
        raise PermissionDenied()   # Form 7 is a sum: nothing in it is typed
    _bump(session, form, _expected_version(form, version), status=sd.FormStatus.DRAFT)
    existing = session.scalar(select(StatCorrection).where(StatCorrection.form_id == form.id,
                                                           StatCorrection.row == row, StatCorrection.col == column))
    if str(value).strip() == "":
        if existing is not None:
            session.delete(existing)
            audit.record(session, actor, "form.correction_removed", "stat_form", form.id, org.id, row=row,
                         col=column)
        return None
    number = sd.validate_correction(row, column, value)
    reason = _text(reason, field_name="reason")
    if not reason:
        raise ValidationError(N_("Say why the figure differs from the registry"), code="correction_reason_missing",
                              field="reason")
    on = sd.report_date(campaign.year, clock.today())
    registry, _c, _f = _live_form2(session, org, campaign, None, on)
    if existing is None:
        existing = StatCorrection(form_id=form.id, row=row, col=column)
        session.add(existing)
    existing.registry_value = registry.get((row, column))
    existing.value, existing.reason = number, reason
    existing.recorded_at, existing.recorded_by = clock.now(), actor.user_id
    session.flush()
    audit.record(session, actor, "form.correct", "stat_form", form.id, org.id, row=row, col=column,
                 registry_value=existing.registry_value, value=number, reason=reason)
    return existing


def explain(uow: UnitOfWork, actor: Actor, year, organisation_id, code: str, text: str, version) -> bool:
    """An explanation of a finding that may be explained; an empty text takes it back."""
    session = uow.session
    org, _kind, _campaign, form = _editable_form(session, actor, year, organisation_id)
    code = _text(code, 64, field_name="code")
    text = _text(text, field_name="explanation")
    explanations = dict(form.explanations or {})
    if text:
        explanations[code] = text
    else:
        explanations.pop(code, None)
    _bump(session, form, _expected_version(form, version), explanations=explanations or None,
          status=sd.FormStatus.DRAFT)
    audit.record(session, actor, "form.explain" if text else "form.explanation_removed", "stat_form", form.id,
                 org.id, check=code, text=text)
    return bool(text)


def submit(uow: UnitOfWork, actor: Actor, year, organisation_id, version) -> StatForm:
    """Freeze the figures and send the form up; refused while a check fails unexplained."""
    session = uow.session
    org, kind = _form_org(session, actor, organisation_id)
    if not may_fill(actor, org):
        raise PermissionDenied()
    view = view_form(session, actor, year, organisation_id)
    if view.blocking:
        raise ValidationError(N_("The form has %(count)s unresolved problems: fix or explain them first"),
                              code="form_checks_failed", count=len(view.blocking))
    form = _draft(session, view.campaign, org, kind)
    expected = _expected_version(form, version, existed=view.form is None)
    target = sd.next_status(form.status, "submit")
    values = dict(view.figures)
    if kind == "form7":
        values.update({(f"t3:{row}", col): v for (row, col), v in (view.table3 or {}).items()})
    passport = passport_for_report(session, org.id, view.on)
    _bump(session, form, expected, status=target, submitted_at=clock.now(), return_comment=None,
          institution_type=passport.institution_type if passport else None,
          students_organisation=org.kind == d.OrgKind.STUDENTS,
          created_this_year=bool(passport and passport.founded_on and passport.founded_on.year == view.campaign.year),
          members_under_half=sd.members_under_half(view.figures) if kind == "form2" else False)
    session.execute(delete(StatFormValue).where(StatFormValue.form_id == form.id))
    rows = [{"form_id": form.id, "row": row, "col": col, "value": value}
            for (row, col), value in values.items() if value is not None and not isinstance(value, float)
            and row != "9"]
    if rows:
        session.execute(insert(StatFormValue), rows)
    audit.record(session, actor, "form.submit", "stat_form", form.id, org.id, year=view.campaign.year, form=kind)
    return form


def _decide(uow: UnitOfWork, actor: Actor, year, organisation_id, version, action: str, comment: str = "") -> StatForm:
    session = uow.session
    org, kind = _form_org(session, actor, organisation_id)
    if not may_review(actor, org):
        raise PermissionDenied()
    campaign = get_campaign(session, year)
    form = _stored_form(session, campaign.id, org.id)
    if form is None:
        raise Conflict(N_("Someone has already changed this form: reload the page"), code="form_state_changed")
    target = sd.next_status(form.status, action)
    changes = {"status": target, "decided_at": clock.now()}
    if action == "return":
        comment = _text(comment, field_name="comment")
        if not comment:
            raise ValidationError(N_("Say what must be corrected"), code="return_comment_missing", field="comment")
        changes["return_comment"] = comment
    _bump(session, form, _version(version), **changes)
    audit.record(session, actor, f"form.{action}", "stat_form", form.id, org.id, year=campaign.year, form=kind,
                 comment=comment or None)
    return form


def accept(uow: UnitOfWork, actor: Actor, year, organisation_id, version) -> StatForm:
    return _decide(uow, actor, year, organisation_id, version, "accept")


def return_form(uow: UnitOfWork, actor: Actor, year, organisation_id, version, comment: str) -> StatForm:
    return _decide(uow, actor, year, organisation_id, version, "return", comment)


def form_history(session: Session, actor: Actor, year, organisation_id) -> list:
    org, _kind = _form_org(session, actor, organisation_id)
    campaign = get_campaign(session, year)
    form = _stored_form(session, campaign.id, org.id)
    if form is None:
        return []
    return list(session.scalars(select(AuditEntry).where(
        AuditEntry.object_type == "stat_form", AuditEntry.object_id == str(form.id)).order_by(AuditEntry.id.desc())))


# --- the dashboard ---------------------------------------------------------------------------

@dataclass
class DashboardLine:
    organisation: Organisation
    kind: str
    status: str
    form: StatForm | None
    overdue: bool


def dashboard(session: Session, actor: Actor, year, *, status: str = "", page: int = 1, per_page: int = 50):
    """The forms of the actor's part of the union below their own organisation: how many are in each
    state, and one page of them (optionally of one state, «overdue» included)."""
    if not actor.can(d.Permission.VIEW_MEMBERS):
        raise PermissionDenied()
    campaign = get_campaign(session, year)
    today = clock.today()
    reporting = and_(Organisation.path.startswith(actor.scope_path), Organisation.path != actor.scope_path,
                     Organisation.removed_on.is_(None),
                     Organisation.level.in_([d.Level.PRIMARY, d.Level.TERRITORIAL, d.Level.REGIONAL]))
    its_form = and_(StatForm.organisation_id == Organisation.id, StatForm.campaign_id == campaign.id)
    joined = select(Organisation, StatForm).outerjoin(StatForm, its_form).where(reporting)
    counts = {s: 0 for s in sd.FormStatus}
    for state, count in session.execute(
            select(StatForm.status, func.count()).select_from(Organisation)
            .outerjoin(StatForm, its_form).where(reporting).group_by(StatForm.status)):
        counts[state or sd.FormStatus.NOT_STARTED] = count
    overdue_count = 0 if today <= campaign.deadline else sum(
        counts[s] for s in (sd.FormStatus.NOT_STARTED, sd.FormStatus.DRAFT, sd.FormStatus.RETURNED))
    query = joined
    if status == "overdue":
        query = query.where(or_(StatForm.status.is_(None), StatForm.status.in_(list(sd.EDITABLE)))) if today > campaign.deadline else query.where(false())
    elif status == sd.FormStatus.NOT_STARTED:
        query = query.where(or_(StatForm.id.is_(None), StatForm.status == sd.FormStatus.NOT_STARTED))
    elif status in set(sd.FormStatus):
        query = query.where(StatForm.status == status)
    total = session.scalar(select(func.count()).select_from(query.subquery()))
    pages = max(1, (total + per_page - 1) // per_page)
    page = min(max(1, page), pages)
    lines = []
    # Submitted forms first: they wait for the actor's decision.
    order = case((StatForm.status == sd.FormStatus.SUBMITTED, 0), else_=1)
    for org, form in session.execute(query.order_by(order, Organisation.path).limit(per_page)
                                     .offset((page - 1) * per_page)):
        state = form.status if form else sd.FormStatus.NOT_STARTED
        lines.append(DashboardLine(org, sd.form_kind_for(org.level), state, form,
                                   sd.is_overdue(state, campaign.deadline, today)))
    return campaign, counts, overdue_count, lines, page, pages, total


def remind(uow: UnitOfWork, actor: Actor, year) -> int:
    """Mark every form below the actor that is neither submitted nor accepted as reminded: its
    organisation's home page shows the reminder with the deadline."""
    session = uow.session
    if not actor.can(d.Permission.REVIEW_REPORTS):
        raise PermissionDenied()
    campaign = get_campaign(session, year)
    now = clock.now()
    missing = session.execute(select(Organisation.id, Organisation.path, Organisation.level).where(
        Organisation.path.startswith(actor.scope_path), Organisation.path != actor.scope_path,
        Organisation.removed_on.is_(None),
        Organisation.level.in_([d.Level.PRIMARY, d.Level.TERRITORIAL, d.Level.REGIONAL]),
        ~exists().where(StatForm.organisation_id == Organisation.id, StatForm.campaign_id == campaign.id))).all()
    if missing:
        session.execute(insert(StatForm), [dict(
            campaign_id=campaign.id, organisation_id=oid, org_path=path, form=sd.form_kind_for(level),
            status=sd.FormStatus.NOT_STARTED, version=1, students_organisation=False, created_this_year=False,
            members_under_half=False, created_at=now, updated_at=now) for oid, path, level in missing])
    result = session.execute(update(StatForm).where(
        StatForm.campaign_id == campaign.id, StatForm.org_path.startswith(actor.scope_path),
        StatForm.org_path != actor.scope_path, StatForm.status.in_(list(sd.EDITABLE)))
        .values(reminded_at=now))
    audit.record(session, actor, "campaign.remind", "reporting_campaign", campaign.id, actor.organisation_id,
                 year=campaign.year, forms=result.rowcount)
    return result.rowcount


@dataclass
class OwnTask:
    campaign: ReportingCampaign
    organisation: Organisation
    status: str
    reminded: bool
    overdue: bool
    return_comment: str | None


def own_tasks(session: Session, actor: Actor) -> list[OwnTask]:
    """The home page's first lines for someone who reports: their own organisation's form in the
    newest campaign, and in any older one where it was started or reminded, unless accepted."""
    if not actor.can(d.Permission.FILL_REPORTS) or actor.organisation_id is None:
        return []
    org = session.get(Organisation, actor.organisation_id)
    if org is None or sd.form_kind_for(org.level) is None or org.level == d.Level.CENTRAL:
        return []
    tasks = []
    today = clock.today()
    for index, campaign in enumerate(campaigns(session)):
        form = _stored_form(session, campaign.id, org.id)
        status = form.status if form else sd.FormStatus.NOT_STARTED
        if status == sd.FormStatus.ACCEPTED or (index > 0 and form is None):
            continue
        tasks.append(OwnTask(campaign, org, status, bool(form and form.reminded_at),
                             sd.is_overdue(status, campaign.deadline, today), form.return_comment if form else None))
    return sorted(tasks, key=lambda task: task.campaign.year)
