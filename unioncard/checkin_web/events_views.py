"""Event staff pages: events, their roster (from the registry or an XLSX), desks and their
enrolment tokens, the bundle, live counts, duplicates and the XLSX export of the journal.
Events outside the user's scope answer 404."""

from __future__ import annotations

from datetime import date

from flask import Blueprint, Response, abort, flash, jsonify, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import ngettext
from flask_login import login_required

from unioncard import clock
from unioncard.checkin import services as checkin
from unioncard.checkin_web.input_guard import bounded_id, page_number
from unioncard.checkin_web.scope import search_text
from unioncard.checkin_web.scope import actor as _actor
from unioncard.checkin_web.scope import rt as _rt
from unioncard.checkin_web.scope import user_can
from unioncard.errors import NotFound, UnionCardError
from unioncard.i18n import N_
from unioncard.issuer import cardnumber
from unioncard.reader_station import bundle as eb
from unioncard.reader_station.domain import ROLE_LABELS
from unioncard.registry import domain as d
from unioncard.registry import services as registry

bp = Blueprint("events", __name__, url_prefix="/events")


@bp.app_context_processor
def _event_links():
    return {"can_manage_events": user_can(d.Permission.MANAGE_EVENTS)}


def _allowed() -> None:
    if not _actor().can(d.Permission.MANAGE_EVENTS):
        abort(404)


def _event_or_404(session, event_id: int):
    try:
        return checkin.get_event(session, _actor(), event_id)
    except NotFound:
        abort(404)


def _check_event(event_id: int) -> None:
    """Before any change: an event outside the user's scope is a 404, never a flashed error."""
    with _rt().session_factory() as session:
        _event_or_404(session, event_id)


def _desk_settings(form) -> dict:
    """The quorum rule and, per role, when a desk prints the badge, from an event form."""
    return {"quorum_rule": form.get("quorum_rule", "")[:100],
            "badge_modes": {role: form.get(f"badge_{role}", eb.DEFAULT_BADGES[role])[:10]
                            for role in eb.ROLES}}


BADGE_MODE_LABELS = {"auto": N_("at check-in"), "button": N_("by the button"), "none": N_("never")}


@bp.app_context_processor
def _badge_labels():
    return {"badge_mode_labels": BADGE_MODE_LABELS, "badge_roles": eb.ROLES,
            "default_badges": eb.DEFAULT_BADGES, "role_labels": ROLE_LABELS}


@bp.route("/")
@login_required
def index():
    _allowed()
    with _rt().session_factory() as session:
        events = checkin.list_events(session, _actor())
    return render_template("events/index.html", events=events, kinds=checkin.KIND_LABELS,
                           today=clock.today().isoformat())


@bp.route("/", methods=["POST"])
@login_required
def create():
    _allowed()
    form = request.form
    try:
        with _rt().uow() as uow:
            organisation_id = bounded_id(form.get("organisation_id")) or _actor().organisation_id
            event = checkin.create_event(
                uow, _actor(), code=form.get("code", ""), name=form.get("name", ""), kind=form.get("kind", ""),
                organisation_id=organisation_id, starts_on=date.fromisoformat(form.get("starts_on", "")),
                ends_on=date.fromisoformat(form.get("ends_on", "")), venue=form.get("venue", ""),
                admission=form.get("admission", ""), **_desk_settings(form))
            uow.commit()
            return redirect(url_for("events.event", event_id=event.id))
    except UnionCardError as exc:
        flash(exc.render(), "error")
    except ValueError:
        flash(_("Give the dates as day.month.year"), "error")
    return redirect(url_for("events.index"))


@bp.route("/<int:event_id>")
@login_required
def event(event_id: int):
    _allowed()
    with _rt().session_factory() as session:
        found = _event_or_404(session, event_id)
        desks = checkin.stations(session, found.id)
        latest = checkin.latest_bundle(session, found.id)
        counts = checkin.counts(session, found)
        roster_size = checkin.roster_size(session, found.id)
        without_card = checkin.roster_without_cards(session, found.id) if roster_size else 0
        arrivals = checkin.arrivals_by_hour(session, found)
        days = _days_with_quorum(session, found)
        attendance = checkin.session_attendance(session, found)
    # Desks stop when the event data expire: say so if the newest data end before the event does.
    ends_early = latest is not None and latest.expires_at < checkin.event_data_end(found) - checkin.EVENT_END_MARGIN
    return render_template("events/event.html", event=found, desks=desks, latest=latest, counts=counts,
                           roster_size=roster_size, role_labels=ROLE_LABELS, kinds=checkin.KIND_LABELS,
                           ends_early=ends_early, without_card=without_card, arrivals=arrivals, days=days,
                           attendance=attendance, event_days=checkin.event_days(found),
                           badge_modes=checkin.badge_modes(found))


def _days_with_quorum(session, event) -> list[tuple]:
    """(day, arrivals that day, quorum that day) for each day of the event up to today."""
    today = checkin.today_at_event(session, event)
    delegates = checkin.elected_delegates(session, event) if event.admission == "roster" else None
    rows = []
    for day in checkin.event_days(event):
        if day > today and rows:
            break
        quorum = checkin.quorum_status(session, event, day=day, delegates=delegates) if delegates is not None else None
        rows.append((day, checkin.counts(session, event, day).arrived, quorum, day == today))
    return rows


@bp.route("/<int:event_id>/live.json")
@login_required
def live(event_id: int):
    _allowed()
    with _rt().session_factory() as session:
        found = _event_or_404(session, event_id)
        counts = checkin.counts(session, found)
    return jsonify({"arrived": counts.arrived, "expected": counts.expected, "duplicates": counts.duplicates,
                    "undone": counts.undone, "by_role": counts.by_role, "by_region": counts.by_region})


@bp.route("/<int:event_id>/roster", methods=["POST"])
@login_required
def roster(event_id: int):
    _allowed()
    _check_event(event_id)
    try:
        with _rt().uow() as uow:
            upload = request.files.get("file")
            upload_given = bool(upload and upload.filename)
            if upload_given:
                rows = checkin.read_roster_file(upload.read(), upload.filename)
                result = checkin.import_roster(uow, _actor(), event_id, rows)
            else:
                org = registry.get_organisation_by_code(uow.session, _actor(), request.form.get("org_code", "").strip())
                result = checkin.add_organisation_members(uow, _actor(), event_id, org.id,
                                                          request.form.get("role", "delegate"))
            uow.commit()
        if result.problems and upload_given:
            flash(_("The list has errors, so nothing was changed. Correct the rows below and upload the file again."),
                  "error")
        else:
            flash(ngettext("Added to the list: %(num)s person", "Added to the list: %(num)s people", result.added)
                  + (". " + ngettext("Role changed for %(num)s person", "Role changed for %(num)s people",
                                     result.updated) if result.updated else "")
                  + (". " + ngettext("%(num)s person already on the list kept their role",
                                     "%(num)s people already on the list kept their roles", result.kept)
                     if result.kept else ""), "ok")
        for row, problem in result.problems[:20]:
            flash(_("Row %(row)s: %(problem)s", row=row, problem=problem), "error")
        if len(result.problems) > 20:
            flash(_("…and %(more)s more rows with errors", more=len(result.problems) - 20), "error")
    except UnionCardError as exc:
        flash(exc.render(), "error")
    return redirect(url_for("events.event", event_id=event_id))


@bp.route("/<int:event_id>/desks", methods=["POST"])
@login_required
def enrol(event_id: int):
    _allowed()
    _check_event(event_id)
    try:
        with _rt().uow() as uow:
            station, token = checkin.enrol_station(uow, _actor(), event_id, request.form.get("desk", ""))
            uow.commit()
        # The token is shown once, on the next page; it is not kept.
        return render_template("events/token.html", event_id=event_id, desk=station.desk, token=token,
                               server=request.host_url.rstrip("/"))
    except UnionCardError as exc:
        flash(exc.render(), "error")
        return redirect(url_for("events.event", event_id=event_id))


@bp.route("/<int:event_id>/desks/<int:station_id>/revoke", methods=["POST"])
@login_required
def revoke(event_id: int, station_id: int):
    _allowed()
    _check_event(event_id)
    try:
        with _rt().uow() as uow:
            station = checkin.revoke_station(uow, _actor(), event_id, station_id)
            uow.commit()
        flash(_("Desk «%(desk)s» can no longer synchronise", desk=station.desk), "ok")
    except NotFound:
        abort(404)
    return redirect(url_for("events.event", event_id=event_id))


@bp.route("/<int:event_id>/bundle", methods=["POST"])
@login_required
def publish(event_id: int):
    _allowed()
    _check_event(event_id)
    try:
        with _rt().uow() as uow:
            record = checkin.publish_bundle(uow, _actor(), event_id, _rt().signer(),
                                            card_prefixes=_rt().settings.card_prefixes)
            uow.commit()
        flash(_("Desk data version %(version)s signed: %(size)s KB", version=record.version,
                size=round(record.size / 1024, 1)), "ok")
    except UnionCardError as exc:
        flash(exc.render(), "error")
    return redirect(url_for("events.event", event_id=event_id))


@bp.route("/<int:event_id>/bundle.bin")
@login_required
def bundle_file(event_id: int):
    """The newest bundle as a file, for a desk without network (USB stick)."""
    _allowed()
    with _rt().session_factory() as session:
        found = _event_or_404(session, event_id)
        record = checkin.latest_bundle(session, found.id)
    if record is None:
        abort(404)
    return Response(record.content, mimetype="application/octet-stream", headers={
        "Content-Disposition": f"attachment; filename=event-{found.code}-v{record.version}.ucb"})


# What the server knows of a check-in's holder (checkin.services._identify).
IDENTIFIED_BY = {"roster": N_("the event's list"), "credential": N_("the card's signature"),
                 None: N_("number only, not confirmed")}


@bp.route("/<int:event_id>/duplicates")
@login_required
def duplicates(event_id: int):
    _allowed()
    with _rt().session_factory() as session:
        found = _event_or_404(session, event_id)
        rows = checkin.journal_rows(session, _actor(), found.id, duplicates_only=True, limit=2000)
    return render_template("events/duplicates.html", event=found, rows=rows, role_labels=ROLE_LABELS,
                           fmt=cardnumber.format)


@bp.route("/<int:event_id>/checkins.xlsx")
@login_required
def export(event_id: int):
    _allowed()
    from unioncard.checkin_web.formatting import viewer_zone, zone_name
    from unioncard.registry.timezones import local
    from unioncard.tables import Table, write_tables

    with _rt().session_factory() as session:
        found = _event_or_404(session, event_id)
        rows = checkin.journal_rows(session, _actor(), found.id)

    def status(entry):
        return _("undone") if entry.undone else (_("duplicate") if entry.duplicate else _("checked in"))

    content = write_tables(Table(
        [_("Card number"), _("Member"), _("Identified by"), _("Role"), _("Region"), _("Desk"),
         _("Time") + f" ({zone_name()})", _("Status"), _("How"), _("At the desk")],
        ([cardnumber.format(row.entry.number), row.full_name or "", _(IDENTIFIED_BY[row.entry.identified_by]),
          _(ROLE_LABELS.get(row.entry.role or "member", ROLE_LABELS["member"])), row.entry.region_code, row.desk,
          local(row.entry.effective_at, viewer_zone()).replace(tzinfo=None), status(row.entry),
          _("by document, without the card") if row.entry.source == "document" else _("by the card"),
          row.entry.operator or ""] for row in rows),
        sheet_title=_("Check-ins"), widths=[21, 34, 20, 12, 7, 12, 16, 12, 18, 20]))
    return Response(content, mimetype="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                    headers={"Content-Disposition": f"attachment; filename=checkins-{found.code}.xlsx"})


# --- the list with names, one person at a time ---------------------------------------------------

ROSTER_PER_PAGE = 50


@bp.route("/<int:event_id>/list", methods=["GET", "POST"])
@login_required
def roster_list(event_id: int):
    """Who is on the list, as whom and from where, searchable; add one member found by surname or
    card number, change a role, take someone off."""
    _allowed()
    page = page_number()
    without_card = request.args.get("without_card") == "1"
    with _rt().session_factory() as session:
        found = _event_or_404(session, event_id)  # before anything is stored for it
        # Both searches travel in a POST and stay in the session, never in the address (names in
        # it would end up in logs and browser history).
        query, stored = search_text(f"roster:{event_id}")
        if stored:
            return stored
        find_text, stored = search_text(f"roster-find:{event_id}", field="find")
        if stored:
            return stored
        if request.method == "POST":
            abort(400)
        lines, total = checkin.roster_lines(session, _actor(), found.id, query=query, without_card=without_card,
                                            page=page, per_page=ROSTER_PER_PAGE)
        candidates = checkin.find_for_roster(session, _actor(), found.id, find_text) if find_text else None
    return render_template("events/roster.html", event=found, lines=lines, total=total, query=query, page=page,
                           pages=max(1, -(-total // ROSTER_PER_PAGE)), without_card=without_card,
                           find_text=find_text, candidates=candidates, role_labels=ROLE_LABELS,
                           roles=checkin.ROSTER_ROLES, min_length=checkin.ROSTER_SEARCH_MIN)


@bp.route("/<int:event_id>/list/add", methods=["POST"])
@login_required
def roster_add(event_id: int):
    _allowed()
    _check_event(event_id)
    try:
        with _rt().uow() as uow:
            outcome = checkin.add_member_to_roster(uow, _actor(), event_id,
                                                   bounded_id(request.form.get("membership_id")) or 0,
                                                   request.form.get("role", ""))
            uow.commit()
        flash({"added": _("Added to the list"), "changed": _("The role is changed"),
               "same": _("Already on the list with this role")}[outcome], "ok")
    except UnionCardError as exc:
        flash(exc.render(), "error")
    return redirect(url_for("events.roster_list", event_id=event_id))


@bp.route("/<int:event_id>/list/<int:person_id>/remove", methods=["POST"])
@login_required
def roster_remove(event_id: int, person_id: int):
    _allowed()
    _check_event(event_id)
    try:
        with _rt().uow() as uow:
            checkin.remove_from_roster(uow, _actor(), event_id, person_id)
            uow.commit()
        flash(_("Taken off the list. Desks learn it at their next synchronisation."), "ok")
    except NotFound:
        abort(404)
    except UnionCardError as exc:
        flash(exc.render(), "error")
    return redirect(url_for("events.roster_list", event_id=event_id))


@bp.route("/<int:event_id>/edit", methods=["GET", "POST"])
@login_required
def edit(event_id: int):
    _allowed()
    with _rt().uow() as uow:
        found = _event_or_404(uow.session, event_id)
        if request.method == "POST":
            form = request.form
            try:
                checkin.update_event(
                    uow, _actor(), found.id, name=form.get("name", "")[:300], kind=form.get("kind", ""),
                    starts_on=date.fromisoformat(form.get("starts_on", "")[:10]),
                    ends_on=date.fromisoformat(form.get("ends_on", "")[:10]), venue=form.get("venue", "")[:300],
                    admission=form.get("admission", ""), **_desk_settings(form))
                uow.commit()
            except UnionCardError as exc:
                uow.rollback()
                flash(exc.render(), "error")
            except ValueError:
                uow.rollback()
                flash(_("Give the dates as day.month.year"), "error")
            else:
                flash(_("Changes saved"), "ok")
                return redirect(url_for("events.event", event_id=event_id))
        return render_template("events/edit.html", event=found, kinds=checkin.KIND_LABELS,
                               badge_modes=checkin.badge_modes(found))


@bp.route("/<int:event_id>/invite", methods=["POST"])
@login_required
def invite(event_id: int):
    """Invitations to everyone on the list, by e-mail or SMS (unioncard.messaging.mailings)."""
    _allowed()
    _check_event(event_id)
    from unioncard.messaging import mailings

    try:
        with _rt().uow() as uow:
            count = mailings.invite_roster(uow, _actor(), event_id)
    except UnionCardError as exc:
        flash(exc.render(), "error")
    else:
        flash(ngettext("An invitation is queued for %(num)s person", "Invitations are queued for %(num)s people",
                       count), "ok")
    return redirect(url_for("events.event", event_id=event_id))


@bp.route("/<int:event_id>/cancel", methods=["POST"])
@login_required
def cancel(event_id: int):
    _allowed()
    _check_event(event_id)
    try:
        with _rt().uow() as uow:
            checkin.cancel_event(uow, _actor(), event_id, request.form.get("reason", ""))
            uow.commit()
        flash(_("The event is cancelled; its desks are revoked."), "ok")
        return redirect(url_for("events.event", event_id=event_id))
    except UnionCardError as exc:
        flash(exc.render(), "error")
        return redirect(url_for("events.edit", event_id=event_id))


# --- sessions ------------------------------------------------------------------------------------

@bp.route("/<int:event_id>/sessions", methods=["POST"])
@login_required
def add_session(event_id: int):
    _allowed()
    _check_event(event_id)
    try:
        with _rt().uow() as uow:
            sitting = checkin.add_session(uow, _actor(), event_id,
                                          day=date.fromisoformat(request.form.get("day", "")[:10]),
                                          name=request.form.get("name", "")[:300], room=request.form.get("room", "")[:300])
            uow.commit()
        flash(_("Session «%(name)s» added. Desks get it with their next data.", name=sitting.name), "ok")
    except UnionCardError as exc:
        flash(exc.render(), "error")
    except ValueError:
        flash(_("Give the dates as day.month.year"), "error")
    return redirect(url_for("events.event", event_id=event_id) + "#sessions")


@bp.route("/<int:event_id>/sessions/<int:session_id>/remove", methods=["POST"])
@login_required
def remove_session(event_id: int, session_id: int):
    _allowed()
    _check_event(event_id)
    try:
        with _rt().uow() as uow:
            checkin.remove_session(uow, _actor(), event_id, session_id)
            uow.commit()
        flash(_("The session is removed"), "ok")
    except NotFound:
        abort(404)
    except UnionCardError as exc:
        flash(exc.render(), "error")
    return redirect(url_for("events.event", event_id=event_id) + "#sessions")


# --- the credentials committee ---------------------------------------------------------------------

def _report_moment(session, event):
    """The day and the moment (viewer's local time → naive UTC) the committee asks about."""
    from datetime import datetime, timezone
    from zoneinfo import ZoneInfo

    from unioncard.checkin_web.formatting import viewer_zone

    day_text = request.args.get("day", "")[:10]
    day = None
    if day_text != "all":
        try:
            day = date.fromisoformat(day_text) if day_text else checkin.today_at_event(session, event)
        except ValueError:
            day = checkin.today_at_event(session, event)
        day = min(max(day, event.starts_on), event.ends_on)
    at = None
    at_text = request.args.get("at", "")[:16]
    if at_text:
        try:
            local = datetime.fromisoformat(at_text).replace(tzinfo=ZoneInfo(viewer_zone()))
            at = local.astimezone(timezone.utc).replace(tzinfo=None)
        except ValueError:
            at = None
    if at is not None and not checkin.EARLIEST_DESK_CLOCK <= at <= checkin.LATEST_DESK_CLOCK:
        at = None
    return day, at or clock.now().replace(microsecond=0), at_text if at else ""


def _moment_text(at) -> str:
    from unioncard.checkin_web.formatting import viewer_zone
    from unioncard.registry.timezones import shown

    return shown(at, viewer_zone())


@bp.route("/<int:event_id>/committee")
@login_required
def committee(event_id: int):
    """The credentials committee's page: elected, registered and absent delegates with reasons, by
    region, sex and age, and the quorum, for a day and any moment of the event."""
    _allowed()
    with _rt().session_factory() as session:
        found = _event_or_404(session, event_id)
        day, at, at_text = _report_moment(session, found)
        report = checkin.committee_report(session, _actor(), found.id, day=day, at=at)
    from unioncard.checkin import committee_output

    return render_template("events/committee.html", event=found, report=report, day=day, at_text=at_text,
                           days=checkin.event_days(found), moment=_moment_text(at),
                           summary=committee_output.summary_rows(report),
                           breakdowns=committee_output.breakdowns(report))


@bp.route("/<int:event_id>/committee.<any(pdf, xlsx):fmt>")
@login_required
def committee_file(event_id: int, fmt: str):
    _allowed()
    from unioncard.checkin import committee_output

    with _rt().session_factory() as session:
        found = _event_or_404(session, event_id)
        day, at, _at_text = _report_moment(session, found)
        report = checkin.committee_report(session, _actor(), found.id, day=day, at=at)
    moment = _moment_text(at)
    if fmt == "pdf":
        return Response(committee_output.pdf(report, moment), mimetype="application/pdf", headers={
            "Content-Disposition": f"attachment; filename=committee-{found.code}.pdf"})
    return Response(committee_output.xlsx(report, moment),
                    mimetype="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                    headers={"Content-Disposition": f"attachment; filename=committee-{found.code}.xlsx"})


@bp.route("/<int:event_id>/committee/<int:person_id>/absence", methods=["POST"])
@login_required
def absence(event_id: int, person_id: int):
    _allowed()
    _check_event(event_id)
    try:
        with _rt().uow() as uow:
            outcome = checkin.record_absence(uow, _actor(), event_id, person_id, request.form.get("reason", ""))
            uow.commit()
        flash(_("The reason is saved") if outcome == "saved" else _("The reason is removed"), "ok")
    except NotFound:
        abort(404)
    except UnionCardError as exc:
        flash(exc.render(), "error")
    return redirect(url_for("events.committee", event_id=event_id, day=request.form.get("day", "")[:10] or None))
