"""Statistical reports: the reporting campaign, its dashboard, Form 2 and Form 7 of an
organisation (corrections, explanations, submission, acceptance or return), their XLSX and PDF,
organisation passports with their completeness, and activists' positions.

Views only call the statistics services with the signed-in user's actor; an organisation outside
the user's part of the union answers 404 on every page and every download."""

from __future__ import annotations

from datetime import date

from flask import Blueprint, Response, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import ngettext
from flask_login import login_required

from unioncard import clock
from unioncard.checkin_web.input_guard import bounded_date, bounded_id, page_number
from unioncard.checkin_web.scope import actor as _actor
from unioncard.checkin_web.scope import rt as _rt
from unioncard.checkin_web.scope import organisation_or_404, search_text, user_can
from unioncard.errors import NotFound, PermissionDenied, UnionCardError
from unioncard.registry import domain as d
from unioncard.registry import services as registry
from unioncard.registry.models import Organisation
from unioncard.statistics import domain as sd
from unioncard.statistics import output
from unioncard.statistics import services as stats

bp = Blueprint("statistics", __name__, url_prefix="/statistics")
PER_PAGE = 50


@bp.app_context_processor
def _statistics_links():
    return {"can_report": user_can(d.Permission.FILL_REPORTS, d.Permission.REVIEW_REPORTS,
                                   d.Permission.OPEN_CAMPAIGNS),
            "form_status_labels": sd.FORM_STATUS_LABELS}


def _allowed() -> None:
    if not _actor().can(d.Permission.VIEW_MEMBERS):
        abort(404)


def _year(year: int) -> int:
    if not 1900 < year < 3000:
        abort(404)
    return year


def _view_or_404(session, year: int, organisation_id: int):
    try:
        return stats.view_form(session, _actor(), _year(year), organisation_id)
    except NotFound as exc:
        if exc.code == "campaign_not_found":
            flash(exc.render(), "error")
            return None
        abort(404)


@bp.route("/")
@login_required
def index():
    _allowed()
    with _rt().session_factory() as session:
        found = stats.campaigns(session)
        own = stats.own_tasks(session, _actor())
        own_org = session.get(Organisation, _actor().organisation_id)
    today = clock.today()
    return render_template("statistics/index.html", campaigns=found, own=own, own_org=own_org,
                           reportable=sd.form_kind_for(own_org.level) is not None if own_org else False,
                           can_open=_actor().can(d.Permission.OPEN_CAMPAIGNS),
                           can_review=_actor().can(d.Permission.REVIEW_REPORTS),
                           default_year=today.year - 1 if today.month <= 6 else today.year,
                           default_deadline=date(today.year + (today.month > 6), 2, 1).isoformat())


@bp.route("/campaigns", methods=["POST"])
@login_required
def open_campaign():
    _allowed()
    try:
        raw_year = (request.form.get("year") or "").strip()
        if not (raw_year.isascii() and raw_year.isdigit() and len(raw_year) == 4):
            raise ValueError(raw_year)
        year = int(raw_year)
        deadline = bounded_date(date.fromisoformat(request.form.get("deadline", "")))
    except ValueError:
        flash(_("Give the year as four digits and the deadline as day.month.year"), "error")
        return redirect(url_for("statistics.index"))
    try:
        with _rt().uow() as uow:
            campaign = stats.open_campaign(uow, _actor(), year, deadline)
            uow.commit()
        flash(_("The reporting campaign for %(year)s is open until %(day)s", year=campaign.year,
                day=campaign.deadline.strftime("%d.%m.%Y")), "success")
        return redirect(url_for("statistics.dashboard", year=campaign.year))
    except PermissionDenied:
        abort(404)
    except UnionCardError as exc:
        flash(exc.render(), "error")
    return redirect(url_for("statistics.index"))


@bp.route("/<int:year>/")
@login_required
def dashboard(year: int):
    _allowed()
    status = request.args.get("status", "")
    if status not in {*sd.FormStatus, "overdue", ""}:
        status = ""
    with _rt().session_factory() as session:
        try:
            campaign, counts, overdue, lines, page, pages, total = stats.dashboard(
                session, _actor(), _year(year), status=status, page=page_number(), per_page=PER_PAGE)
        except NotFound as exc:
            flash(exc.render(), "error")
            return redirect(url_for("statistics.index"))
        own = stats.own_tasks(session, _actor())
    everyone = sum(counts.values()) or 1
    chart = [(_(sd.FORM_STATUS_LABELS[s]), 100 * counts[s] / everyone, str(counts[s]))
             for s in (sd.FormStatus.ACCEPTED, sd.FormStatus.SUBMITTED, sd.FormStatus.RETURNED,
                       sd.FormStatus.DRAFT, sd.FormStatus.NOT_STARTED)]
    return render_template("statistics/dashboard.html", campaign=campaign, counts=counts, overdue=overdue,
                           lines=lines, page=page, pages=pages, total=total, status=status, chart=chart, own=own,
                           labels=sd.FORM_STATUS_LABELS, today=clock.today(),
                           can_remind=_actor().can(d.Permission.REVIEW_REPORTS))


@bp.route("/<int:year>/remind", methods=["POST"])
@login_required
def remind(year: int):
    _allowed()
    try:
        with _rt().uow() as uow:
            count = stats.remind(uow, _actor(), _year(year))
            uow.commit()
        flash(ngettext("A reminder is shown to %(num)s organisation", "A reminder is shown to %(num)s organisations",
                       count), "success")
    except PermissionDenied:
        abort(404)
    except UnionCardError as exc:
        flash(exc.render(), "error")
    return redirect(url_for("statistics.dashboard", year=year))


@bp.route("/<int:year>/org/<int:organisation_id>")
@login_required
def form(year: int, organisation_id: int):
    _allowed()
    with _rt().session_factory() as session:
        view = _view_or_404(session, year, organisation_id)
        if view is None:
            return redirect(url_for("statistics.index"))
        history = stats.form_history(session, _actor(), year, organisation_id)
    rows, columns, headings, not_applicable = output.layout(view)
    explanations = (view.form.explanations if view.form else None) or {}
    below_chart = []
    if view.kind == "form7":
        expected = sum(view.below.values()) or 1
        below_chart = [(_(sd.FORM_STATUS_LABELS[s]), 100 * view.below.get(s, 0) / expected,
                        str(view.below.get(s, 0)))
                       for s in (sd.FormStatus.ACCEPTED, sd.FormStatus.SUBMITTED, sd.FormStatus.RETURNED,
                                 sd.FormStatus.DRAFT, sd.FormStatus.NOT_STARTED)]
    return render_template(
        "statistics/form.html", view=view, rows=rows, columns=columns, headings=headings,
        not_applicable=not_applicable, explanations=explanations, history=history, below_chart=below_chart,
        comparison=output.comparison_rows(view), status_labels=sd.FORM_STATUS_LABELS,
        may_fill=stats.may_fill(_actor(), view.organisation) and view.editable,
        may_review=stats.may_review(_actor(), view.organisation), table3_rows=sd.TABLE3_ROWS,
        can_review=_actor().can(d.Permission.REVIEW_REPORTS),
        column_names=sd.COLUMN_NAMES, history_labels=sd.FORM_ACTION_LABELS,
        finding_texts={f.code: finding_text(f) for f in view.findings})


def finding_text(finding) -> str:
    params = dict(finding.params)
    if "column" in params:
        params["column"] = _(params["column"])
    return _(finding.message, **params)


def _form_action(year: int, organisation_id: int, act) -> Response:
    """One change of a form through its service, which decides everything: an organisation
    outside the user's part of the union, or a step the user may not take, is a 404."""
    _allowed()
    _year(year)
    try:
        with _rt().uow() as uow:
            message = act(uow)
            uow.commit()
        if message:
            flash(message, "success")
    except (PermissionDenied, NotFound) as exc:
        if exc.code != "campaign_not_found":
            abort(404)
        flash(exc.render(), "error")
        return redirect(url_for("statistics.index"))
    except UnionCardError as exc:
        flash(exc.render(), "error")
    return redirect(url_for("statistics.form", year=year, organisation_id=organisation_id))


@bp.route("/<int:year>/org/<int:organisation_id>/correct", methods=["POST"])
@login_required
def correct(year: int, organisation_id: int):
    f = request.form

    def act(uow):
        kept = stats.correct(uow, _actor(), year, organisation_id, f.get("row", ""), f.get("col", ""),
                             f.get("value", ""), f.get("reason", ""), f.get("version"))
        return _("The figure is corrected") if kept else _("The registry's figure is back")

    return _form_action(year, organisation_id, act)


@bp.route("/<int:year>/org/<int:organisation_id>/explain", methods=["POST"])
@login_required
def explain(year: int, organisation_id: int):
    f = request.form

    def act(uow):
        kept = stats.explain(uow, _actor(), year, organisation_id, f.get("code", ""), f.get("text", ""),
                             f.get("version"))
        return _("The explanation is saved") if kept else _("The explanation is removed")

    return _form_action(year, organisation_id, act)


@bp.route("/<int:year>/org/<int:organisation_id>/submit", methods=["POST"])
@login_required
def submit(year: int, organisation_id: int):
    def act(uow):
        stats.submit(uow, _actor(), year, organisation_id, request.form.get("version"))
        return _("The form is sent to the organisation above")

    return _form_action(year, organisation_id, act)


@bp.route("/<int:year>/org/<int:organisation_id>/accept", methods=["POST"])
@login_required
def accept(year: int, organisation_id: int):
    def act(uow):
        stats.accept(uow, _actor(), year, organisation_id, request.form.get("version"))
        return _("The form is accepted")

    return _form_action(year, organisation_id, act)


@bp.route("/<int:year>/org/<int:organisation_id>/return", methods=["POST"])
@login_required
def return_form(year: int, organisation_id: int):
    def act(uow):
        stats.return_form(uow, _actor(), year, organisation_id, request.form.get("version"),
                          request.form.get("comment", ""))
        return _("The form is returned for correction")

    return _form_action(year, organisation_id, act)


def _download(year: int, organisation_id: int, kind: str):
    _allowed()
    with _rt().session_factory() as session:
        view = _view_or_404(session, year, organisation_id)
    if view is None:
        return redirect(url_for("statistics.index"))
    name = f"{view.kind}-{view.campaign.year}-{view.organisation.code}"
    if kind == "xlsx":
        return Response(output.xlsx(view), mimetype="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                        headers={"Content-Disposition": f"attachment; filename={_ascii(name)}.xlsx"})
    return Response(output.pdf(view), mimetype="application/pdf",
                    headers={"Content-Disposition": f"inline; filename={_ascii(name)}.pdf"})


def _ascii(name: str) -> str:
    return "".join(ch if ch.isascii() and (ch.isalnum() or ch in "-_") else "_" for ch in name)


@bp.route("/<int:year>/org/<int:organisation_id>.xlsx")
@login_required
def form_xlsx(year: int, organisation_id: int):
    return _download(year, organisation_id, "xlsx")


@bp.route("/<int:year>/org/<int:organisation_id>.pdf")
@login_required
def form_pdf(year: int, organisation_id: int):
    return _download(year, organisation_id, "pdf")


# --- passports ---------------------------------------------------------------------------------

@bp.route("/passport/<int:organisation_id>", methods=["GET", "POST"])
@login_required
def passport(organisation_id: int):
    _allowed()
    with _rt().session_factory() as session:
        org = organisation_or_404(session, organisation_id)
        history = stats.passport_history(session, _actor(), org.id)
    values = stats.passport_values(history[0]) if history else {}
    failed = False
    if request.method == "POST":
        values = {name: request.form.get(name, "") for name in sd.PASSPORT_FIELDS}
        try:
            with _rt().uow() as uow:
                stats.save_passport(uow, _actor(), org.id, values)
                uow.commit()
            flash(_("The passport is saved"), "success")
            return redirect(url_for("statistics.passport", organisation_id=org.id))
        except PermissionDenied:
            flash(_("You do not have the right to do this"), "error")
            failed = True
        except UnionCardError as exc:
            field = exc.params.get("field")
            flash(_("«%(field)s»: %(problem)s", field=_(sd.PASSPORT_FIELD_LABELS[field]), problem=exc.render())
                  if field in sd.PASSPORT_FIELD_LABELS else exc.render(), "error")
            failed = True
    missing = sd.missing_passport_fields(
        {k: (v if v != "" else None) for k, v in values.items()}, org.level, org.kind)
    mandatory = sd.mandatory_passport_fields(org.level, org.kind, values.get("institution_type"))
    return render_template("statistics/passport.html", org=org, values=values, history=history[:10],
                           missing=missing, mandatory=mandatory, labels=sd.PASSPORT_FIELD_LABELS,
                           types=sd.INSTITUTION_TYPE_LABELS, primary=org.level == d.Level.PRIMARY,
                           can_edit=_actor().can(d.Permission.FILL_REPORTS), failed=failed)


@bp.route("/passports")
@login_required
def passports():
    _allowed()
    page = page_number()
    with _rt().session_factory() as session:
        rows, total = stats.passport_completeness(session, _actor())
        incomplete = stats.passport_states(session, _actor(), only_incomplete=True)
    chart = [(row.name, row.percent, f"{row.percent:.1f}".replace(".", ",") + " %") for row in rows[:40]]
    pages = max(1, -(-len(incomplete) // PER_PAGE))
    page = min(page, pages)
    return render_template("statistics/passports.html", rows=rows, total=total, chart=chart,
                           incomplete=incomplete[(page - 1) * PER_PAGE: page * PER_PAGE],
                           incomplete_count=len(incomplete), page=page, pages=pages, labels=sd.PASSPORT_FIELD_LABELS)


# --- activists ---------------------------------------------------------------------------------

@bp.route("/positions/<int:organisation_id>", methods=["GET", "POST"])
@login_required
def positions(organisation_id: int):
    _allowed()
    with _rt().session_factory() as session:
        org = organisation_or_404(session, organisation_id)
        query, stored = search_text(f"positions:{org.id}")
        if stored:
            return stored
        held = stats.positions(session, _actor(), org.id)
        people = {p.id: p.person for p in held}
        appointed = stats.appointed_chairperson(session, _actor(), org.id)
        appointed_person = appointed.person if appointed else None
        if any(p.kind == sd.PositionKind.CHAIRPERSON for p in held):
            appointed = None
        found = []
        if query:
            found, _total = registry.list_members(session, _actor(), org.id, query=query, per_page=20)
            found = [(m.person_id, m.person) for m in found]
    return render_template("statistics/positions.html", org=org, held=held, people=people, query=query,
                           appointed=appointed, appointed_person=appointed_person,
                           found=found, kinds=sd.POSITION_LABELS, today=clock.today().isoformat(),
                           can_edit=_actor().can(d.Permission.FILL_REPORTS))


@bp.route("/positions/<int:organisation_id>/add", methods=["POST"])
@login_required
def add_position(organisation_id: int):
    _allowed()
    f = request.form
    with _rt().session_factory() as session:
        organisation_or_404(session, organisation_id)
    try:
        starts_on = bounded_date(date.fromisoformat(f.get("starts_on", "")))
        ends_on = bounded_date(date.fromisoformat(f["ends_on"])) if f.get("ends_on") else None
    except ValueError:
        flash(_("Give the dates as day.month.year"), "error")
        return redirect(url_for("statistics.positions", organisation_id=organisation_id))
    person_id = bounded_id(f.get("person_id"))
    if person_id is None:
        flash(_("Choose the person from the list found"), "error")
        return redirect(url_for("statistics.positions", organisation_id=organisation_id))
    try:
        with _rt().uow() as uow:
            stats.add_position(uow, _actor(), organisation_id, person_id, f.get("kind", ""), starts_on, ends_on,
                               elected_alternative=bool(f.get("elected_alternative")),
                               elected_first_time=bool(f.get("elected_first_time")),
                               is_paid=bool(f.get("is_paid")))
            uow.commit()
        flash(_("The position is recorded"), "success")
    except PermissionDenied:
        abort(404)
    except UnionCardError as exc:
        flash(exc.render(), "error")
    return redirect(url_for("statistics.positions", organisation_id=organisation_id))


@bp.route("/positions/<int:organisation_id>/<int:position_id>/end", methods=["POST"])
@login_required
def end_position(organisation_id: int, position_id: int):
    _allowed()
    with _rt().session_factory() as session:
        organisation_or_404(session, organisation_id)
    try:
        ends_on = bounded_date(date.fromisoformat(request.form.get("ends_on", "")))
    except ValueError:
        flash(_("Give the dates as day.month.year"), "error")
        return redirect(url_for("statistics.positions", organisation_id=organisation_id))
    try:
        with _rt().uow() as uow:
            stats.end_position(uow, _actor(), position_id, ends_on, organisation_id)
            uow.commit()
        flash(_("The term is ended"), "success")
    except (PermissionDenied, NotFound):
        abort(404)
    except UnionCardError as exc:
        flash(exc.render(), "error")
    return redirect(url_for("statistics.positions", organisation_id=organisation_id))
