"""Mailings (staff: news to the members of their subtree who agreed to messages) and the public
unsubscribe page the messages link to. The rules are in unioncard.messaging.mailings."""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import ngettext
from flask_login import login_required

from unioncard.checkin_web.input_guard import bounded_id
from unioncard.checkin_web.scope import actor as _actor
from unioncard.checkin_web.scope import rt as _rt
from unioncard.checkin_web.scope import user_can
from unioncard.errors import NotFound, UnionCardError
from unioncard.jobs import domain as jd
from unioncard.messaging import mailings
from unioncard.registry import domain as d

bp = Blueprint("mailings", __name__)


@bp.app_context_processor
def _mailing_links():
    return {"can_send_mailings": user_can(d.Permission.SEND_MAILINGS)}


def _allowed() -> None:
    if not user_can(d.Permission.SEND_MAILINGS):
        abort(404)


def _audience(form) -> mailings.Audience:
    return mailings.Audience(organisation_id=bounded_id(form.get("organisation_id")) or _actor().organisation_id,
                             category=(form.get("category") or None), event_id=bounded_id(form.get("event_id")))


def _filters_key(audience: mailings.Audience) -> str:
    return f"{audience.organisation_id}|{audience.category or ''}|{audience.event_id or ''}"


@bp.route("/mailings", methods=["GET", "POST"])
@login_required
def index():
    """The list of mailings, and a new one: first its audience counted and shown, then sent."""
    _allowed()
    form = request.form if request.method == "POST" else request.args
    draft = {"subject": (form.get("subject") or "")[:300], "body": (form.get("body") or "")[:6000],
             "organisation_id": form.get("organisation_id") or "", "category": form.get("category") or "",
             "event_id": form.get("event_id") or ""}
    count, channels, counted = None, {}, ""
    if request.method == "POST" and request.form.get("confirm") == "send":
        try:
            audience = _audience(request.form)
            # The count shown, for exactly these filters: anything else (a filter changed after
            # counting) is refused rather than sent under a number the sender did not see.
            filters, _sep, shown = (request.form.get("counted") or "").rpartition("|")
            expected = int(shown) if filters == _filters_key(audience) and shown.isdigit() else -1
            with _rt().uow() as uow:
                mailing = mailings.start_mailing(uow, _actor(), audience, draft["subject"], draft["body"],
                                                  expected=expected)
        except UnionCardError as refused:
            flash(refused.render(), "error")
        else:
            flash(ngettext("The mailing is queued for %(num)s member", "The mailing is queued for %(num)s members",
                           mailing.recipients), "info")
            return redirect(url_for("mailings.mailing", mailing_id=mailing.id))
    with _rt().session_factory() as session:
        if request.method == "POST" and request.form.get("confirm") != "send":
            try:
                audience = _audience(request.form)
                channels = mailings.count_by_channel(session, _actor(), audience)
                count = sum(channels.values())
                counted = f"{_filters_key(audience)}|{count}"
            except UnionCardError as refused:
                flash(refused.render(), "error")
        sent = mailings.list_mailings(session, _actor())
        from unioncard.checkin import services as checkin

        events = checkin.list_events(session, _actor()) if user_can(d.Permission.MANAGE_EVENTS) else []
        from unioncard.registry import services as registry

        own = registry.get_organisation(session, _actor(), _actor().organisation_id)
        organisations = [own, *registry.children(session, _actor(), own.id)]
    return render_template("mailings/index.html", mailings=sent, draft=draft, count=count, events=events,
                           categories=d.CATEGORY_LABELS, organisations=organisations, channels=channels,
                           counted=counted)


@bp.route("/mailings/<int:mailing_id>")
@login_required
def mailing(mailing_id: int):
    _allowed()
    with _rt().session_factory() as session:
        try:
            found = mailings.get_mailing(session, _actor(), mailing_id)
            counts = mailings.progress(session, _actor(), mailing_id)
            job = mailings.mailing_job(session, found)
        except NotFound:
            abort(404)
    preparing = job is not None and job.status not in jd.FINISHED
    return render_template("mailings/mailing.html", mailing=found, counts=counts,
                           done=max(0, found.recipients - counts["queued"]), preparing=preparing,
                           prepared=jd.percent(job.done, job.total) if preparing else None,
                           job_failed=job is not None and job.status == jd.Status.FAILED)


@bp.route("/u/<token>", methods=["GET", "POST"])
def unsubscribe(token: str):
    """The link in every mailing: withdraw consent section 3 without signing in (RFC 8058's
    one-click POST works too). A changed link is refused; a used one says so and changes nothing."""
    token = token[:80]
    if request.method == "POST":
        with _rt().uow() as uow:
            outcome = mailings.unsubscribe(uow, _rt().settings.secret_key, token)
        status = 404 if outcome == "invalid" else 200
        return render_template("mailings/unsubscribed.html", outcome=outcome), status
    from unioncard.messaging import domain as md

    if md.consent_of_token(_rt().settings.secret_key, token) is None:
        return render_template("mailings/unsubscribed.html", outcome="invalid"), 404
    return render_template("mailings/unsubscribe.html", token=token)
