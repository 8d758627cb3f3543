"""«Приём в Профсоюз»: the public application pages (phone first) and the chairperson's queue.
The rules are in unioncard.members.joining; this only calls it."""

from __future__ import annotations

from datetime import date

from flask import Blueprint, abort, flash, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_login import login_required

from unioncard.checkin_web.input_guard import bounded_id
from unioncard.checkin_web.scope import actor as _actor
from unioncard.checkin_web.scope import rt as _rt
from unioncard.errors import NotFound, PermissionDenied, UnionCardError
from unioncard.members import consent_text
from unioncard.members import joining
from unioncard.registry import domain as d

bp = Blueprint("joining", __name__)

APPLICATION_KEY = "application_id"


@bp.route("/join")
def start():
    region_id = bounded_id(request.args.get("region"))
    text = (request.args.get("q") or "").strip()[:100]
    found, error = None, None
    with _rt().session_factory() as db_session:
        regions = joining.regions(db_session)
        if region_id and text:
            try:
                found = joining.find_primaries(db_session, region_id, text)
            except NotFound as exc:
                error = exc.render()
    # Rendered after the session is closed: the page's user lookup opens its own (SQLite has one
    # writer, and its reads begin IMMEDIATE too).
    return render_template("joining/start.html", regions=regions, region_id=region_id, q=text, found=found,
                           error=error)


@bp.route("/join/<int:primary_id>", methods=["GET", "POST"])
def form(primary_id: int):
    # Public: any primary organisation's application form (organisation names are public), so its id
    # is not a scoped organisation_id.
    organisation_id = primary_id
    with _rt().session_factory() as db_session:
        try:
            org = joining.get_primary(db_session, organisation_id)
        except NotFound:
            abort(404)
        org_name = org.name
    values = {k: (request.form.get(k) or "")[:200] for k in
              ("surname", "given_name", "patronymic", "birth_date", "sex", "category", "contact")}
    error, status = None, 200
    if request.method == "POST":
        try:
            birth = date.fromisoformat(values["birth_date"])
        except ValueError:
            error, status = _("Enter the birth date"), 400
        else:
            try:
                with _rt().uow() as uow:
                    application_id = joining.apply(uow, joining.Application(
                        organisation_id=organisation_id, surname=values["surname"], given_name=values["given_name"],
                        patronymic=values["patronymic"] or None, birth_date=birth, sex=values["sex"] or None,
                        category=values["category"], contact=values["contact"],
                        consent_version=(request.form.get("consent_version") or "")[:16],
                        processing=request.form.get("processing") == "yes",
                        partner_transfer=request.form.get("partner_transfer") == "yes",
                        messaging=request.form.get("messaging") == "yes"), _rt().settings.secret_key)
            except UnionCardError as refused:
                error, status = refused.render(), refused.http_status
            else:
                session[APPLICATION_KEY] = application_id
                return redirect(url_for("joining.confirm"))
    ticked = {k for k in ("processing", "partner_transfer", "messaging") if request.form.get(k) == "yes"}
    return render_template("joining/form.html", org_name=org_name, organisation_id=organisation_id, values=values,
                           error=error, consent=consent_text, sexes=d.SEX_LABELS, categories=d.CATEGORY_LABELS,
                           ticked=ticked), status


@bp.route("/join/confirm", methods=["GET", "POST"])
def confirm():
    application_id = session.get(APPLICATION_KEY)
    if not isinstance(application_id, int):
        return redirect(url_for("joining.start"))
    error, status = None, 200
    if request.method == "POST":
        try:
            with _rt().uow() as uow:
                application = joining.confirm(uow, application_id, (request.form.get("code") or "")[:20],
                                              _rt().settings.secret_key)
            with _rt().session_factory() as db_session:
                org_name = joining.get_primary(db_session, application.organisation_id).name
        except UnionCardError as refused:
            error, status = refused.render(), 401
        else:
            session.pop(APPLICATION_KEY, None)
            return render_template("joining/sent.html", org_name=org_name)
    return render_template("joining/confirm.html", error=error), status


@bp.route("/registry/org/<int:organisation_id>/applications")
@login_required
def applications(organisation_id: int):
    with _rt().session_factory() as db_session:
        try:
            waiting = joining.list_waiting(db_session, _actor(), organisation_id)
        except (NotFound, PermissionDenied):
            abort(404)
        rows = [(a, joining.transfer_question(db_session, _actor(), a)) for a in waiting]
    return render_template("joining/applications.html", rows=rows, organisation_id=organisation_id,
                           categories=d.CATEGORY_LABELS)


@bp.route("/applications/<int:application_id>/<any(accept, refuse):decision>", methods=["POST"])
@login_required
def decide(application_id: int, decision: str):
    with _rt().session_factory() as db_session:
        try:
            organisation_id = joining.get_application(db_session, _actor(), application_id).organisation_id
        except (NotFound, PermissionDenied):
            abort(404)
    try:
        with _rt().uow() as uow:
            if decision == "accept":
                membership = joining.accept(uow, _actor(), application_id,
                                            different_person=request.form.get("different_person") == "yes",
                                            member_page=f"{_rt().settings.public_url}/me/")
                person = membership.person
                flash(_("Accepted: %(name)s is on the register",
                        name=f"{person.surname} {person.given_name} {person.patronymic or ''}".strip()), "info")
            else:
                joining.refuse(uow, _actor(), application_id, (request.form.get("reason") or "")[:400])
                flash(_("The application is refused; the applicant is told the reason"), "info")
    except UnionCardError as refused:
        flash(refused.render(), "error")
    return redirect(url_for("joining.applications", organisation_id=organisation_id))
