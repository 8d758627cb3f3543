"""Logging in and out, the session's user, the interface language."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlsplit

from flask import Blueprint, abort, flash, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required, login_user, logout_user
from flask_wtf import FlaskForm
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired, Length

from unioncard.checkin_web.partner_api import client_address
from unioncard.registry import services, sessions
from unioncard.registry.actor import Actor
from unioncard.registry.models import UserAccount

bp = Blueprint("auth", __name__)


@dataclass
class SessionUser:
    """What a request knows of its user; loaded fresh on every request."""

    id: int
    login: str
    full_name: str
    role: str
    organisation_id: int
    organisation_name: str
    scope_path: str
    session_token: str = ""
    # The user's region's zone: every time a page shows is in it (the database keeps UTC).
    time_zone: str = "Europe/Moscow"

    is_authenticated = True
    is_active = True
    is_anonymous = False

    def get_id(self) -> str:
        # Flask-Login keeps this in the cookie: the user and the server-side session's token
        # (Flask-Login's "alternative tokens"), so ending the session on the server ends the cookie.
        return f"{self.id}.{self.session_token}"

    @property
    def actor(self) -> Actor:
        return Actor(self.id, self.login, self.role, self.scope_path, self.organisation_id)


def session_rules() -> sessions.SessionRules:
    from unioncard.checkin_web import runtime

    settings = runtime().settings
    return sessions.SessionRules(idle=timedelta(minutes=settings.session_timeout_minutes),
                                 absolute=timedelta(hours=settings.session_max_hours))


def load_user(cookie_id: str) -> SessionUser | None:
    from unioncard.checkin_web import runtime

    user_id, _, token = str(cookie_id).partition(".")
    if not user_id.isdigit() or not token:
        return None
    with runtime().session_factory() as db_session:
        user = db_session.get(UserAccount, int(user_id))
        # A login that was disabled or whose term of office ended stops working at once.
        if user is None or not services.user_is_active(user):
            return None
        if not sessions.resume(db_session, user.id, token, session_rules()):
            return None
        from unioncard.registry.timezones import zone_of_region

        zone = zone_of_region(services.region_code_of(db_session, user.organisation))
        return SessionUser(user.id, user.login, user.full_name, user.role, user.organisation_id,
                           user.organisation.name, user.organisation.path, token, zone)


class LoginForm(FlaskForm):
    login = StringField(validators=[DataRequired(), Length(max=64)])
    password = PasswordField(validators=[DataRequired(), Length(max=200)])


def _safe_next(target: str | None) -> str | None:
    if not target:
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return None
    return target


@bp.route("/login", methods=["GET", "POST"])
def login():
    from unioncard.checkin_web import runtime

    if current_user.is_authenticated:
        return redirect(url_for("home.index"))
    form = LoginForm()
    error = None
    if form.validate_on_submit():
        rt = runtime()
        try:
            with rt.uow() as uow:
                user = services.authenticate(
                    uow, form.login.data, form.password.data,
                    lockout_threshold=rt.settings.login_lockout_threshold,
                    lockout_minutes=rt.settings.login_lockout_minutes,
                    address=client_address(),
                )
                user_id = user.id
                token = sessions.start(uow, user.id, client_address())
                uow.commit()
        except services.LoginRefused as refused:
            error = refused.render()
        else:
            locale = session.get("locale")
            session.clear()  # no session fixation: a fresh session for the logged-in user
            if locale:
                session["locale"] = locale
            session.permanent = True
            login_user(load_user(f"{user_id}.{token}"))
            return redirect(_safe_next(request.args.get("next")) or url_for("home.index"))
    elif request.method == "POST":
        error = _("Enter the login and the password")
    return render_template("auth/login.html", form=form, error=error), (401 if error else 200)


@bp.route("/logout", methods=["POST"])
@login_required
def logout():
    from unioncard.checkin_web import runtime

    with runtime().uow() as uow:
        sessions.end(uow, current_user.session_token, "logout")
        uow.commit()
    logout_user()
    session.clear()
    flash(_("You have logged out"), "info")
    return redirect(url_for("auth.login"))


@bp.route("/language/<code>", methods=["POST"])
def language(code: str):
    from unioncard.checkin_web import LOCALES

    if code not in LOCALES:
        abort(404)
    session["locale"] = code
    return redirect(_safe_next(request.form.get("next")) or url_for("home.index"))
