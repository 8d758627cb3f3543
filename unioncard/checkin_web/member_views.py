"""The members' own page (/me): sign-in by a one-time code sent to the member's confirmed e-mail
or phone, their membership and cards, the consents they may withdraw, who read their data, and
their data to download. Every rule is in unioncard.members.services; this only calls it."""

from __future__ import annotations

import json

from flask import Blueprint, Response, flash, g, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from markupsafe import Markup

from unioncard.checkin_web.scope import rt as _rt
from unioncard.errors import NotFound, UnionCardError
from unioncard.members import domain as md
from unioncard.members import services as members
from unioncard.registry import domain as d

bp = Blueprint("member", __name__, url_prefix="/me")

SESSION_KEY = "member"
CONTACT_KEY = "member_contact"


def _principal() -> members.MemberPrincipal | None:
    """The signed-in member, checked against their session on the server on every request: the
    cookie holds only the session's id and the chosen person, no address."""
    held = session.get(SESSION_KEY)
    if not isinstance(held, dict):
        return None
    try:
        session_id = int(held["sid"])
        person_id = int(held["person_id"]) if held.get("person_id") is not None else None
    except (KeyError, TypeError, ValueError):
        return None
    from datetime import timedelta

    max_age = timedelta(hours=_rt().settings.session_max_hours)
    with _rt().session_factory() as db_session:
        try:
            return members.resume(db_session, session_id, person_id, max_age)
        except NotFound:
            session.pop(SESSION_KEY, None)
            return None


def _keep(principal: members.MemberPrincipal) -> None:
    session[SESSION_KEY] = {"sid": principal.session_id, "person_id": principal.person_id}


def _signed_in():
    principal = _principal()
    if principal is None:
        return None, redirect(url_for("member.sign_in"))
    if principal.person_id is None:
        return None, redirect(url_for("member.choose"))
    return principal, None


def _set_zone(session_db, page) -> None:
    from unioncard.registry.services import region_code_of
    from unioncard.registry.timezones import zone_of_region

    g.viewer_zone = zone_of_region(region_code_of(session_db, page.membership.organisation))


@bp.route("/", methods=["GET", "POST"])
def sign_in():
    if _principal() is not None and request.method == "GET":
        return redirect(url_for("member.page"))
    error, status = None, 200
    contact = ""
    if request.method == "POST":
        contact = (request.form.get("contact") or "")[:200]
        try:
            with _rt().uow() as uow:
                members.request_code(uow, contact, _rt().settings.secret_key)
        except UnionCardError as refused:
            error, status = refused.render(), refused.http_status
        else:
            session[CONTACT_KEY] = contact
            return redirect(url_for("member.code"))
    return render_template("member/sign_in.html", error=error, contact=contact), status


@bp.route("/code", methods=["GET", "POST"])
def code():
    contact = session.get(CONTACT_KEY)
    if not contact:
        return redirect(url_for("member.sign_in"))
    error, status = None, 200
    if request.method == "POST":
        try:
            with _rt().uow() as uow:
                principal = members.sign_in(uow, contact, (request.form.get("code") or "")[:20],
                                            _rt().settings.secret_key)
        except UnionCardError as refused:
            error, status = refused.render(), 401
        else:
            locale = session.get("locale")
            session.clear()  # a fresh session for the member: no fixation, no staff login left in it
            if locale:
                session["locale"] = locale
            session.permanent = True
            _keep(principal)
            return redirect(url_for("member.page"))
    return render_template("member/code.html", error=error, contact=contact), status


@bp.route("/choose", methods=["GET", "POST"])
def choose():
    principal = _principal()
    if principal is None:
        return redirect(url_for("member.sign_in"))
    with _rt().session_factory() as db_session:
        if request.method == "POST":
            try:
                chosen = members.choose(db_session, principal, int(request.form.get("person_id", "0")[:12] or 0))
            except (NotFound, ValueError):
                flash(_("Member not found"), "error")
            else:
                _keep(chosen)
                return redirect(url_for("member.page"))
        people = members.people_of(db_session, principal)
    return render_template("member/choose.html", people=people)


@bp.route("/card")
def page():
    principal, away = _signed_in()
    if away:
        return away
    from unioncard.checkin_web.formatting import qr_svg

    with _rt().session_factory() as db_session:
        try:
            mine = members.my_page(db_session, principal)
        except NotFound:
            session.pop(SESSION_KEY, None)
            return redirect(url_for("member.sign_in"))
        _set_zone(db_session, mine)
    # Signing a credential writes: after the reading session is closed (SQLite has one writer).
    virtual = next((c for c in mine.cards if c.kind == "virtual" and c.number), None)
    credential = _credential_of(virtual.id) if virtual is not None else None
    return render_template("member/page.html", mine=mine, sections=list(d.ConsentSection),
                           qr_svg=Markup(qr_svg(credential)) if credential else None)


def _credential_of(card_id: int) -> str | None:
    """The issued virtual card's signed credential (its QR), signed on first view as on the private
    link's page; without keys set up the page shows the number alone."""
    from unioncard.issuer import services as cards
    from unioncard.issuer.models import Card

    rt = _rt()
    with rt.uow() as uow:
        card = uow.session.get(Card, card_id)
        if card.status != "issued":
            return None  # a blocked or lost card shows no code to be scanned
        return cards.credential_on_view(uow, card, rt.signer)


@bp.route("/consents/<section>", methods=["GET", "POST"])
def withdraw(section: str):
    principal, away = _signed_in()
    if away:
        return away
    try:
        section = d.ConsentSection(section)
    except ValueError:
        return render_template("error.html", title=_("Not found"), text=_("There is no such consent")), 404
    if request.method == "POST":
        giving = request.form.get("action") == "give"
        try:
            with _rt().uow() as uow:
                (members.give if giving else members.withdraw)(uow, principal, section)
        except UnionCardError as refused:
            flash(refused.render(), "error")
        else:
            from unioncard.checkin_web.formatting import label

            flash((_("Consent given: %(section)s") if giving else _("Consent withdrawn as of today: %(section)s"))
                  % {"section": label("consent_section", section)}, "info")
        return redirect(url_for("member.page"))
    return render_template("member/withdraw.html", section=section)


@bp.route("/seen")
def seen():
    principal, away = _signed_in()
    if away:
        return away
    with _rt().session_factory() as db_session:
        mine = members.my_page(db_session, principal)
        _set_zone(db_session, mine)
        readings = members.who_saw_my_data(db_session, principal)
    return render_template("member/seen.html", readings=readings,
                           read_labels={k: _(v) for k, v in md.READ_ACTIONS.items()})


@bp.route("/my-data.json")
def my_data():
    principal, away = _signed_in()
    if away:
        return away
    with _rt().session_factory() as db_session:
        data = members.my_data(db_session, principal)
    body = json.dumps(data, ensure_ascii=False, indent=2)
    return Response(body, mimetype="application/json",
                    headers={"Content-Disposition": 'attachment; filename="my-data.json"'})


@bp.route("/my-data.pdf")
def my_data_pdf():
    principal, away = _signed_in()
    if away:
        return away
    from unioncard import clock
    from unioncard.members import export_pdf
    from unioncard.registry.timezones import MOSCOW, shown

    with _rt().session_factory() as db_session:
        data = members.my_data(db_session, principal)
    body = export_pdf.pdf(data, shown(clock.now(), MOSCOW))
    return Response(body, mimetype="application/pdf",
                    headers={"Content-Disposition": 'attachment; filename="my-data.pdf"'})


@bp.route("/virtual-card", methods=["POST"])
def order_virtual():
    principal, away = _signed_in()
    if away:
        return away
    try:
        with _rt().uow() as uow:
            result = members.order_virtual_card(uow, principal, _rt().settings.card_issuer_prefix)
    except UnionCardError as refused:
        flash(refused.render(), "error")
    else:
        if result.refused:
            flash(result.refused[0].message, "error")
        else:
            flash(_("The virtual card is ordered: it appears here once the region approves it"), "info")
    return redirect(url_for("member.page"))


@bp.route("/sign-out", methods=["POST"])
def sign_out():
    principal = _principal()
    if principal is not None:
        with _rt().uow() as uow:
            members.sign_out(uow, principal)
    session.pop(SESSION_KEY, None)
    session.pop(CONTACT_KEY, None)
    flash(_("You have signed out"), "info")
    return redirect(url_for("member.sign_in"))
