"""Reports: card coverage by regional organisation (Table 3 of the union's report), on screen
and as Excel, for any date."""

from __future__ import annotations

from datetime import date, datetime

from flask import Blueprint, Response, abort, render_template, request
from flask_babel import gettext as _
from flask_login import login_required

from unioncard import clock
from unioncard.checkin_web.input_guard import bounded_date
from unioncard.checkin_web.scope import actor as _actor
from unioncard.checkin_web.scope import rt as _rt
from unioncard.checkin_web.scope import user_can
from unioncard.issuer import coverage as cov
from unioncard.registry import domain as d

bp = Blueprint("reports", __name__, url_prefix="/reports")


@bp.app_context_processor
def _report_links():
    return {"can_read_reports": user_can(d.Permission.VIEW_MEMBERS)}


def _date() -> tuple[date, str | None]:
    raw = request.args.get("on", "").strip()
    if not raw:
        return clock.today(), None
    # The date field sends 2020-05-19; a date typed into the address the Russian way is 19.05.2020.
    for shape in ("%Y-%m-%d", "%d.%m.%Y"):
        try:
            return bounded_date(datetime.strptime(raw, shape).date()), None
        except ValueError:
            continue
    return clock.today(), _("Give the date as day.month.year")


def _figures():
    if not _actor().can(d.Permission.VIEW_MEMBERS):
        abort(404)
    on, problem = _date()
    with _rt().session_factory() as session:
        rows, totals = cov.coverage(session, _actor(), on)
    return on, problem, rows, totals


@bp.route("/coverage")
@login_required
def coverage():
    from unioncard.checkin_web.formatting import percent

    on, problem, rows, totals = _figures()
    chart = [(row.name, row.percent, f"{percent(row.percent)} %") for row in rows]
    # Central and regional staff see regions; anyone below, their own organisation.
    by_region = len(d.path_ids(_actor().scope_path)) <= 2
    return render_template("reports/coverage.html", on=on, problem=problem, rows=rows, totals=totals, chart=chart,
                           by_region=by_region)


@bp.route("/coverage.xlsx")
@login_required
def coverage_xlsx():
    from unioncard.tables import Table, write_tables

    on, _problem, rows, totals = _figures()
    headers = ["№", _("Regional organisation"), _("Members on the registry"), _("Plastic cards"), _("Virtual cards"),
               _("Members with the new card"), _("Share with the new card") + ", %"]
    content = write_tables(Table(
        headers, ([index, row.name, row.members, row.plastic, row.virtual, row.with_card, row.percent]
                  for index, row in enumerate(rows, start=1)),
        title=_("Card coverage by regional organisation on %(day)s", day=on.strftime("%d.%m.%Y")),
        sheet_title=_("Card coverage"), widths=[5, 48, 14, 14, 14, 16, 12],
        total=["", _("Total"), totals.members, totals.plastic, totals.virtual, totals.with_card, totals.percent]))
    return Response(content, mimetype="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                    headers={"Content-Disposition": f"attachment; filename=coverage-{on.isoformat()}.xlsx"})
