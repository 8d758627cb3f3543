"""Administrator pages for partner API keys: list with the last day's queries, a new key (shown
once), revoke, and how one key's answers split by cause."""

from __future__ import annotations

from datetime import timedelta

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import login_required

from unioncard import clock
from unioncard.checkin_web.scope import actor as _actor
from unioncard.checkin_web.scope import rt as _rt
from unioncard.checkin_web.scope import user_can
from unioncard.errors import NotFound, UnionCardError
from unioncard.partner import services as partners
from unioncard.partner.domain import KIND_LABELS, OUTCOME_LABELS
from unioncard.registry import domain as d

bp = Blueprint("partners", __name__, url_prefix="/partners")


@bp.app_context_processor
def _partner_links():
    return {"can_manage_partners": user_can(d.Permission.MANAGE_PARTNERS)}


def _allowed() -> None:
    if not _actor().can(d.Permission.MANAGE_PARTNERS):
        abort(404)


@bp.route("/")
@login_required
def index():
    _allowed()
    with _rt().session_factory() as session:
        rows = partners.list_keys(session, _actor(), clock.now())
    return render_template("partners/index.html", rows=rows, kinds=KIND_LABELS,
                           default_per_minute=partners.DEFAULT_PER_MINUTE)


@bp.route("/", methods=["POST"])
@login_required
def create():
    _allowed()
    try:
        per_minute = int(request.form.get("per_minute") or partners.DEFAULT_PER_MINUTE)
    except ValueError:
        flash(_("The limit must be a whole number"), "error")
        return redirect(url_for("partners.index"))
    try:
        with _rt().uow() as uow:
            key, text = partners.create_key(uow.session, _actor(), request.form.get("partner_name", ""),
                                            request.form.get("kind", ""), per_minute)
            name = key.partner_name
            uow.commit()
    except UnionCardError as exc:
        flash(exc.render(), "error")
        return redirect(url_for("partners.index"))
    # The key is shown once, on this page; it is not kept.
    return render_template("partners/new_key.html", partner_name=name, key=text,
                           api_url=request.host_url.rstrip("/") + "/api/v1")


@bp.route("/<int:key_id>")
@login_required
def key(key_id: int):
    _allowed()
    with _rt().session_factory() as session:
        rows = partners.list_keys(session, _actor(), clock.now(), key_id=key_id)
        if not rows:
            abort(404)
        found = rows[0]
        week = partners.outcome_counts(session, _actor(), key_id, clock.now() - timedelta(days=7))
    return render_template("partners/key.html", row=found, week=week, outcomes=OUTCOME_LABELS, kinds=KIND_LABELS)


@bp.route("/<int:key_id>/revoke", methods=["POST"])
@login_required
def revoke(key_id: int):
    _allowed()
    try:
        with _rt().uow() as uow:
            key = partners.revoke_key(uow.session, _actor(), key_id)
            name = key.partner_name
            uow.commit()
    except NotFound:
        abort(404)
    current_app.extensions["unioncard_partner_keys"].clear()
    flash(_("The key of «%(partner)s» is revoked", partner=name), "ok")
    return redirect(url_for("partners.index"))
