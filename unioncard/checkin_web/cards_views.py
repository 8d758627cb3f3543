"""Card pages: order cards for members, approve orders (region), hand cards out by number
(«Выдан» / «Отказ», typed, wedge-scanned or camera-scanned), report a loss, reissue.

Everything goes through the issuer services with the user's actor: another organisation's
cards and members answer 404, like things that do not exist.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import Blueprint, Response, abort, flash, redirect, render_template, request, url_for
from markupsafe import Markup
from flask_babel import gettext as _
from flask_login import login_required
from sqlalchemy import func, select

from unioncard.checkin_web.formatting import qr_svg
from unioncard.checkin_web.scope import actor as _actor
from unioncard.checkin_web.scope import organisation_or_404 as _org_or_404
from unioncard.checkin_web.scope import rt as _rt
from unioncard.checkin_web.input_guard import form_ids, page_cursor, page_number
from unioncard.checkin_web.scope import search_text
from unioncard.errors import NotFound, UnionCardError
from unioncard.issuer import cardnumber
from unioncard.issuer import domain as cd
from unioncard.issuer import services as cards
from unioncard.issuer.domain import CardKind, CardStatus
from unioncard.issuer.models import Card, RegionCardSettings
from unioncard.registry import domain as d
from unioncard.registry import services as registry

bp = Blueprint("cards", __name__, url_prefix="/cards")
PER_PAGE = 50
MAX_NUMBERS = 500


def _prefix() -> str:
    return _rt().settings.card_issuer_prefix


def _card_or_404(session, card_id: int):
    try:
        return cards.get_card(session, _actor(), card_id)
    except NotFound:
        abort(404)


@bp.route("/org/<int:organisation_id>", methods=["GET", "POST"])
@login_required
def organisation(organisation_id: int):
    """Members with their cards (primary organisations), or card counts by status (higher levels)."""
    page = page_number()
    with _rt().session_factory() as session:
        org = _org_or_404(session, organisation_id)
        query, stored = search_text(f"cards:{org.id}")
        if stored:
            return stored
        counts = dict(session.execute(select(Card.status, func.count()).where(Card.org_path.like(org.path + "%"))
                                      .group_by(Card.status)).all())
        rows, total, card_map = [], 0, {}
        holds_members = d.Level(org.level) in registry.MEMBER_LEVELS
        if holds_members and _actor().can(d.Permission.VIEW_MEMBERS):
            rows, total = registry.list_members(session, _actor(), org.id, query=query, page=page, per_page=PER_PAGE,
                                                **page_cursor())
            card_map = cards.cards_of_members(session, [r.id for r in rows])
        current = {r.id: {kind: cards.current_card(card_map.get(r.id, []), kind) for kind in CardKind} for r in rows}
        consents = registry.current_consents_of(session, [r.person_id for r in rows])
        auto = None
        if org.level == d.Level.REGIONAL:
            settings = session.get(RegionCardSettings, org.id)
            auto = bool(settings and settings.auto_approve)
        return render_template(
            "cards/organisation.html", org=org, rows=rows, total=total, current=current, consents=consents,
            counts=counts, statuses=list(CardStatus), query=query, page=page, pages=max(1, -(-total // PER_PAGE)),
            holds_members=holds_members, can_order=_actor().can(d.Permission.ORDER_CARDS) and holds_members,
            can_approve=_actor().can(d.Permission.APPROVE_CARDS), can_hand_out=_actor().can(d.Permission.HAND_OUT_CARDS),
            auto_approve=auto, kinds=list(CardKind),
        )


@bp.route("/org/<int:organisation_id>/order", methods=["POST"])
@login_required
def order(organisation_id: int):
    rt = _rt()
    with rt.uow() as uow:
        org = _org_or_404(uow.session, organisation_id)
        ids = form_ids("membership_id", 1000)
        try:
            kind = CardKind(request.form.get("kind", "plastic"))
        except ValueError:
            abort(400)
        if not ids:
            flash(_("Tick the members you are ordering cards for"), "error")
            return redirect(url_for(".organisation", organisation_id=org.id))
        try:
            result = cards.order_cards(uow, _actor(), ids, kind, issuer_prefix=_prefix())
            uow.commit()
        except UnionCardError as exc:
            uow.rollback()
            flash(exc.render(), "error")
            return redirect(url_for(".organisation", organisation_id=org.id))
        if result.ordered:
            flash(_("Cards ordered: %(count)s", count=len(result.ordered)), "success")
        names = {m.id: m for m in (uow.session.get(registry.Membership, r.membership_id) for r in result.refused)
                 if m is not None and _actor().sees(m.org_path)}
        for refusal in result.refused:
            who = names.get(refusal.membership_id)
            label = f"{who.person.surname} {who.person.given_name}" if who else "—"
            flash(f"{label}: {refusal.message}", "error")
        return redirect(url_for(".organisation", organisation_id=org.id))


@bp.route("/org/<int:organisation_id>/approvals", methods=["GET", "POST"])
@login_required
def approvals(organisation_id: int):
    rt = _rt()
    with rt.uow() as uow:
        org = _org_or_404(uow.session, organisation_id)
        if not _actor().can(d.Permission.APPROVE_CARDS):
            abort(404)
        if request.method == "POST":
            action = request.form.get("action")
            try:
                if action == "auto":
                    cards.set_auto_approve(uow, _actor(), org.id, request.form.get("enabled") == "1")
                    message = _("Automatic approval is on") if request.form.get("enabled") == "1" \
                        else _("Automatic approval is off")
                else:
                    ids = form_ids("card_id", 5000)
                    if not ids:
                        flash(_("Tick the orders first"), "error")
                        return redirect(url_for(".approvals", organisation_id=org.id))
                    if action == "approve":
                        done = cards.approve(uow, _actor(), ids, issuer_prefix=_prefix())
                        message = _("Orders approved: %(count)s", count=len(done))
                    elif action == "reject":
                        done = cards.reject(uow, _actor(), ids, request.form.get("reason", ""))
                        message = _("Orders rejected: %(count)s", count=len(done))
                    else:
                        abort(400)
                uow.commit()
                flash(message, "success")
            except UnionCardError as exc:
                uow.rollback()
                flash(exc.render(), "error")
            return redirect(url_for(".approvals", organisation_id=org.id))
        pending, total = cards.list_cards(uow.session, _actor(), org.id, statuses=[CardStatus.ORDERED], per_page=500)
        return render_template("cards/approvals.html", org=org, pending=pending, total=total,
                               auto_approve=org.level == "regional" and cards.auto_approves(uow.session, org))


@bp.route("/org/<int:organisation_id>/hand-out", methods=["GET", "POST"])
@login_required
def hand_out(organisation_id: int):
    """Mark cards «Выдан» or «Отказ» by their numbers, many at once."""
    rt = _rt()
    results, text = [], ""
    with rt.uow() as uow:
        org = _org_or_404(uow.session, organisation_id)
        if not _actor().can(d.Permission.HAND_OUT_CARDS):
            abort(404)
        if request.method == "POST":
            text = request.form.get("numbers", "")[:MAX_NUMBERS * 40]
            outcome = CardStatus.REFUSED if request.form.get("outcome") == "refused" else CardStatus.ISSUED
            numbers = [line.strip() for line in text.replace(",", "\n").splitlines() if line.strip()][:MAX_NUMBERS]
            if not numbers:
                flash(_("Type or scan at least one card number"), "error")
            else:
                results = cards.mark_by_numbers(uow, _actor(), numbers, outcome, request.form.get("reason"))
                uow.commit()
                ok = sum(1 for r in results if r.ok)
                flash(_("Marked «%(status)s»: %(ok)s of %(count)s",
                        status=_(cd.STATUS_LABELS[outcome]), ok=ok, count=len(results)),
                      "success" if ok == len(results) else "error")
                text = "\n".join(r.number for r in results if not r.ok)  # keep what still needs attention
        waiting, _total = cards.list_cards(uow.session, _actor(), org.id,
                                           statuses=[CardStatus.DELIVERED, CardStatus.REFUSED], per_page=200)
        return render_template("cards/hand_out.html", org=org, results=results, text=text, waiting=waiting,
                               format_number=cardnumber.format)


@bp.route("/<int:card_id>", methods=["GET", "POST"])
@login_required
def card(card_id: int):
    rt = _rt()
    link = None
    with rt.uow() as uow:
        item = _card_or_404(uow.session, card_id)
        if request.method == "POST":
            action = request.form.get("action")
            try:
                if action == "cancel":
                    cards.cancel(uow, _actor(), item.id, request.form.get("reason"))
                    message = _("The order has been cancelled")
                elif action in ("lost", "stolen", "damaged"):
                    cards.report_loss(uow, _actor(), item.id, CardStatus(action), request.form.get("reason"))
                    message = _("The card has been blocked")
                elif action == "reissue":
                    result = cards.reissue(uow, _actor(), item.id, issuer_prefix=_prefix())
                    if result.refused:
                        raise UnionCardError(result.refused[0].message, code=result.refused[0].code)
                    message = _("A new card has been ordered")
                elif action == "hand_out_virtual":
                    # A virtual card is handed out as its private link: «Выдан», then the link to send.
                    if item.kind != CardKind.VIRTUAL.value:
                        abort(400)
                    cards.advance(uow, _actor(), [item.id], CardStatus.ISSUED)
                    link = url_for("cards.virtual", token=cards.new_private_link(uow, _actor(), item.id),
                                   _external=True)
                    message = _("The virtual card is handed out: send the member the link below")
                elif action == "link":
                    had_link = bool(item.link_token_hash)
                    link = url_for("cards.virtual", token=cards.new_private_link(uow, _actor(), item.id),
                                   _external=True)
                    message = (_("A new private link has been made; the old one no longer works") if had_link
                               else _("The private link is made: send it to the member"))
                elif action == "unlink":
                    cards.revoke_private_link(uow, _actor(), item.id)
                    message = _("The private link no longer works")
                else:
                    abort(400)
                uow.commit()
                flash(message, "success")
            except UnionCardError as exc:
                uow.rollback()
                flash(exc.render(), "error")
            if link is None:
                return redirect(url_for(".card", card_id=card_id))
            item = _card_or_404(uow.session, card_id)
        history = cards.card_history(uow.session, item.id)
        replacement = uow.session.scalar(select(Card).where(Card.replaces_card_id == item.id))
        # Buttons follow the state machine's table, not a copy of it.
        next_steps = {target.value for target in CardStatus
                      if cd.allowed(CardKind(item.kind), CardStatus(item.status), target)}
        return render_template("cards/card.html", card=item, history=history, link=link, replacement=replacement,
                               next_steps=next_steps, membership_id=item.membership_id,
                               format_number=cardnumber.format, can_hand_out=_actor().can(d.Permission.HAND_OUT_CARDS),
                               can_order=_actor().can(d.Permission.ORDER_CARDS))


@dataclass(frozen=True)
class _VirtualCard:
    number: str
    credential: str | None
    surname: str
    given_name: str
    patronymic: str | None


def _virtual_card_or_404(token: str) -> _VirtualCard:
    """The card behind a private link, with its credential made on first view if keys are set up."""
    rt = _rt()
    with rt.uow() as uow:
        item = cards.card_by_private_link(uow.session, token)
        if item is None:
            abort(404)
        credential = cards.credential_on_view(uow, item, rt.signer)
        item = cards.card_by_private_link(uow.session, token)
        person = item.person
        return _VirtualCard(item.number, credential, person.surname, person.given_name, person.patronymic)


@bp.route("/v/<token>")
def virtual(token: str):
    """A member's virtual card, reached by the private link (no login)."""
    item = _virtual_card_or_404(token)
    return render_template("cards/virtual.html", card=item, person=item, format_number=cardnumber.format,
                           qr_svg=Markup(qr_svg(item.credential)) if item.credential else None, token=token)


@bp.route("/v/<token>/card.svg")
def virtual_image(token: str):
    """The same virtual card as one image (to save on the phone or print)."""
    item = _virtual_card_or_404(token)
    if not item.credential:
        abort(404)
    body = render_template("cards/virtual.svg", card=item, person=item, number=cardnumber.format(item.number),
                           qr=qr_svg(item.credential))
    return Response(body, mimetype="image/svg+xml",
                    headers={"Content-Disposition": f'inline; filename="card-{item.number}.svg"',
                             "Cache-Control": "no-store"})
