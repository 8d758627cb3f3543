"""Administrator pages for logins: the list, a new login, a login's page (role and organisation,
a new password, disable or enable, its history), and appointing a primary organisation's
chairperson with the login that lives as long as the term. Every change goes through the
registry services, which check the administrator's scope and write the audit trail."""

from __future__ import annotations

from datetime import date, timedelta

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required

from unioncard import clock
from unioncard.checkin_web.input_guard import page_number
from unioncard.checkin_web.scope import actor as _actor
from unioncard.checkin_web.scope import rt as _rt
from unioncard.checkin_web.scope import user_can
from unioncard.checkin_web.scope import search_text
from unioncard.errors import NotFound, UnionCardError, ValidationError
from unioncard.i18n import N_
from unioncard.registry import domain as d
from unioncard.registry import services
from unioncard.registry.models import ChairpersonTerm, Organisation

bp = Blueprint("users", __name__, url_prefix="/users")

PER_PAGE = 50
# A trade union's elected officers serve five years; the form suggests it, the person may change it.
TERM_YEARS = 5


@bp.app_context_processor
def _user_links():
    return {"can_manage_users": user_can(d.Permission.MANAGE_USERS)}


def _allowed() -> None:
    if not _actor().can(d.Permission.MANAGE_USERS):
        abort(404)


def _roles():
    return [(role.value, _(text)) for role, text in d.ROLE_LABELS.items()]


def _organisation(session, text: str) -> Organisation:
    """The organisation typed as a code or a part of its name: exactly one must match."""
    found = services.find_organisations(session, _actor(), (text or "").strip()[:100], limit=2)
    if not found:
        raise NotFound(N_("No organisation with the code or name “%(text)s”"), code="organisation_not_found",
                       field="organisation", text=text)
    if len(found) > 1:
        raise ValidationError(N_("Several organisations match “%(text)s”: type its code"),
                              code="organisation_ambiguous", field="organisation", text=text)
    return found[0]


def _date(text: str | None) -> date | None:
    try:
        return date.fromisoformat(text) if text else None
    except ValueError:
        raise ValidationError(N_("Enter a correct date"), code="date_invalid") from None


@bp.route("/", methods=["GET", "POST"])
@login_required
def index():
    _allowed()
    page = page_number()
    query, stored = search_text("users")
    if stored:
        return stored
    with _rt().session_factory() as session:
        rows, total = services.list_users(session, _actor(), query=query, page=page, per_page=PER_PAGE)
        return render_template("users/index.html", rows=rows, total=total, query=query, page=page,
                               pages=max(1, -(-total // PER_PAGE)), today=clock.today(),
                               valid_until=services.login_valid_until)


@bp.route("/new", methods=["GET", "POST"])
@login_required
def new():
    _allowed()
    form = {"login": "", "full_name": "", "role": d.Role.REGISTRAR.value, "organisation": "", "valid_until": "",
            "term": ""}
    term = None
    with _rt().uow() as uow:
        if request.method == "GET" and request.args.get("term", "").isdigit():
            # From appointing a chairperson: the login for that term, prefilled.
            term = uow.session.get(ChairpersonTerm, int(request.args["term"][:12]))
            org = uow.session.get(Organisation, term.organisation_id) if term is not None else None
            if org is not None and _actor().sees(org.path):
                p = term.person
                form.update(full_name=" ".join(x for x in (p.surname, p.given_name, p.patronymic) if x),
                            role=d.Role.CHAIRPERSON.value, organisation=org.code, term=str(term.id))
        if request.method == "POST":
            form.update({k: (request.form.get(k) or "").strip()[:300] for k in form})
            try:
                org = _organisation(uow.session, form["organisation"])
                password = services.new_password()
                user = services.create_user(
                    uow, _actor(), login=form["login"], password=password, full_name=form["full_name"],
                    role=form["role"] if form["role"] in set(d.Role) else "", organisation_id=org.id,
                    valid_until=_date(form["valid_until"]),
                    chairperson_term_id=int(form["term"]) if form["term"].isdigit() else None)
                uow.commit()
            except (UnionCardError, ValueError) as exc:
                uow.rollback()
                flash(exc.render() if isinstance(exc, UnionCardError) else _("Choose a role"), "error")
            else:
                return render_template("users/password.html", user=user, password=password, created=True)
        return render_template("users/new.html", form=form, roles=_roles())


@bp.route("/<int:user_id>")
@login_required
def user(user_id: int):
    _allowed()
    with _rt().session_factory() as session:
        try:
            account = services.get_user(session, _actor(), user_id)
        except NotFound:
            abort(404)
        history = services.user_history(session, _actor(), user_id)
        return render_template("users/user.html", user=account, history=history, roles=_roles(),
                               valid_until=services.login_valid_until(account),
                               active=services.user_is_active(account), itself=account.id == current_user.id)


def _change(user_id: int, action) -> object:
    _allowed()
    with _rt().uow() as uow:
        try:
            result = action(uow)
            uow.commit()
        except NotFound as exc:
            if exc.code == "user_not_found":
                abort(404)
            flash(exc.render(), "error")
        except UnionCardError as exc:
            uow.rollback()
            flash(exc.render(), "error")
        else:
            return result
    return redirect(url_for(".user", user_id=user_id))


@bp.route("/<int:user_id>/role", methods=["POST"])
@login_required
def role(user_id: int):
    def action(uow):
        org = _organisation(uow.session, request.form.get("organisation", ""))
        chosen = request.form.get("role", "")
        if chosen not in set(d.Role):
            raise ValidationError(N_("Choose a role"), code="role_required")
        services.change_role(uow, _actor(), user_id, chosen, org.id)
        flash(_("The role and the organisation are changed"), "success")
        return redirect(url_for(".user", user_id=user_id))
    return _change(user_id, action)


@bp.route("/<int:user_id>/password", methods=["POST"])
@login_required
def password(user_id: int):
    if user_id == current_user.id:
        # The administrator's own password is not reset from here (it would end their own sessions
        # and show the new one on this screen): another administrator does it.
        _allowed()
        flash(_("This is your own login: another administrator changes its role or disables it."), "error")
        return redirect(url_for(".user", user_id=user_id))

    def action(uow):
        text = services.new_password()
        account = services.set_password(uow, _actor(), user_id, text)
        return render_template("users/password.html", user=account, password=text, created=False)
    return _change(user_id, action)


@bp.route("/<int:user_id>/enabled", methods=["POST"])
@login_required
def enabled(user_id: int):
    def action(uow):
        on = request.form.get("enabled") == "1"
        services.set_enabled(uow, _actor(), user_id, on)
        flash(_("The login works again") if on else _("The login is disabled; its open sessions have ended"),
              "success")
        return redirect(url_for(".user", user_id=user_id))
    return _change(user_id, action)


# --- chairpersons --------------------------------------------------------------------------------

@bp.route("/chairperson/<int:organisation_id>", methods=["GET", "POST"])
@login_required
def chairperson(organisation_id: int):
    """Find a member of the organisation by surname and appoint them for a term; then the login."""
    _allowed()
    query, stored = search_text(f"chair:{organisation_id}")
    if stored:
        return stored
    with _rt().session_factory() as session:
        try:
            org = services.get_organisation(session, _actor(), organisation_id)
        except NotFound:
            abort(404)
        if d.Level(org.level) not in services.MEMBER_LEVELS:
            abort(404)
        rows = []
        if query:
            rows, _total = services.list_members(session, _actor(), org.id, query=query, per_page=20)
        today = clock.today()
        return render_template("users/chairperson.html", org=org, query=query, rows=rows,
                               current=services.current_chairperson(session, org.id), starts_on=today,
                               ends_on=_years_later(today, TERM_YEARS) - timedelta(days=1))


def _years_later(day: date, years: int) -> date:
    # 29 February has no twin in most years: the term then ends on the last day of February.
    try:
        return day.replace(year=day.year + years)
    except ValueError:
        return day.replace(year=day.year + years, day=28)


@bp.route("/chairperson/<int:organisation_id>/appoint", methods=["POST"])
@login_required
def appoint(organisation_id: int):
    _allowed()
    with _rt().uow() as uow:
        try:
            person_id = int(request.form.get("person_id", "")[:12])
            term = services.appoint_chairperson(uow, _actor(), organisation_id, person_id,
                                                _date(request.form.get("starts_on")) or clock.today(),
                                                _date(request.form.get("ends_on")) or clock.today())
            uow.commit()
        except ValueError:
            abort(404)
        except NotFound as exc:
            if exc.code in ("organisation_not_found",):
                abort(404)
            flash(exc.render(), "error")
            return redirect(url_for(".chairperson", organisation_id=organisation_id))
        except UnionCardError as exc:
            uow.rollback()
            flash(exc.render(), "error")
            return redirect(url_for(".chairperson", organisation_id=organisation_id))
        flash(_("The chairperson is appointed. Now create their login: it works until the term ends."), "success")
        return redirect(url_for(".new", term=term.id))
