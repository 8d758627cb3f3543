"""The Flask web application: ``create_app(settings)`` builds everything; nothing at import time."""

from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

from flask import Flask, g, render_template, request, session
from flask_babel import Babel
from flask_login import LoginManager
from flask_wtf.csrf import CSRFError, CSRFProtect
from sqlalchemy.engine import Engine
from sqlalchemy.orm import sessionmaker

from unioncard import db
from unioncard.config import Settings, load_settings
from unioncard.i18n import TRANSLATIONS_DIR

LOCALES = ("ru", "en")


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    session_factory: sessionmaker
    subscribers: list
    # Where submitted jobs go (unioncard.jobs.queues): set by create_app.
    jobs: object = None

    def uow(self) -> db.UnitOfWork:
        return db.UnitOfWork(self.session_factory, self.subscribers)

    @contextmanager
    def partner_connection(self):
        """A connection for the partner API's read + log pair. On PostgreSQL it is autocommit
        (no BEGIN/COMMIT round trips) from a pool without pre-ping; a connection found dead is
        retried once by the caller (``retrying_dead_connections``)."""
        engine = getattr(self, "_partner_engine", None)
        if engine is None:
            if self.engine.dialect.name == "postgresql":
                engine = db.make_engine(self.settings.database_url, pool_pre_ping=False,
                                        isolation_level="AUTOCOMMIT", pool_size=2, max_overflow=4)
            else:
                engine = self.engine
            self._partner_engine = engine
        with engine.begin() as conn:
            yield conn

    def signer(self):
        """The operational key store, opened on first use and kept for the process (opening a
        software store costs a scrypt derivation). Raises a KeyStoreError if not configured."""
        store = getattr(self, "_signer", None)
        if store is None:
            from unioncard.hsm.ceremony import open_operational

            store = open_operational(self.settings)
            self._signer = store
        return store


def create_app(settings: Settings | None = None, **overrides) -> Flask:
    settings = settings or load_settings()
    if overrides:
        settings = settings.with_overrides(**overrides)
    app = Flask(__name__, instance_path=str(settings.instance_dir))
    app.config.update(
        SECRET_KEY=settings.secret_key,
        MAX_CONTENT_LENGTH=settings.max_upload_bytes,
        # Behind HTTPS the cookie gets the __Host- prefix: browsers then refuse it unless it is
        # Secure, for this host only and for the whole path, so a sibling subdomain cannot set it.
        SESSION_COOKIE_NAME="__Host-unioncard_session" if settings.secure_cookies else "unioncard_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.secure_cookies,
        REMEMBER_COOKIE_SECURE=settings.secure_cookies,
        # Idle timeout: the permanent session's lifetime is renewed by every request.
        PERMANENT_SESSION_LIFETIME=timedelta(minutes=settings.session_timeout_minutes),
        SESSION_REFRESH_EACH_REQUEST=True,
        WTF_CSRF_TIME_LIMIT=None,
        BABEL_DEFAULT_LOCALE=settings.default_locale,
        BABEL_TRANSLATION_DIRECTORIES=str(TRANSLATIONS_DIR),
    )
    # The server writes personal data (the SQLite database, uploads): for its own account only,
    # also when started by gunicorn rather than the `unioncard` command.
    os.umask(0o077)
    # Member lists left waiting by previews abandoned before a restart (or a crash) go now.
    from unioncard.files import PendingUploads

    PendingUploads(settings.instance_dir / "uploads", settings.upload_ttl_minutes * 60).sweep()
    engine = db.make_engine(settings.database_url)
    runtime = Runtime(settings, engine, db.make_session_factory(engine), [])
    from unioncard.jobs.queues import open_queue

    runtime.jobs = open_queue(settings, runtime.session_factory)
    runtime.subscribers.append(runtime.jobs.subscriber)
    app.extensions["unioncard"] = runtime

    if settings.proxy_hops:
        from werkzeug.middleware.proxy_fix import ProxyFix

        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=settings.proxy_hops, x_proto=settings.proxy_hops)
    from unioncard.checkin_web import input_guard

    # Before CSRF and every view: no NUL reaches a form, a service or the database; no id in an
    # address is larger than the database's ids.
    app.before_request(input_guard.refuse_nul_bytes)
    input_guard.install_id_converter(app)
    csrf = CSRFProtect(app)
    Babel(app, locale_selector=_select_locale)
    _init_login(app, runtime)

    from unioncard.checkin_web import (auth, bureau_views, cards_views, events_views, home, registry_views,
                                       reports_views, station_api, statistics_views)

    app.register_blueprint(home.bp)
    app.register_blueprint(auth.bp)
    app.register_blueprint(registry_views.bp)
    app.register_blueprint(cards_views.bp)
    app.register_blueprint(bureau_views.bp)
    app.register_blueprint(events_views.bp)
    app.register_blueprint(reports_views.bp)
    app.register_blueprint(statistics_views.bp)
    from unioncard.checkin_web import jobs_views

    app.register_blueprint(jobs_views.bp)
    # Desks authenticate with their token, not a browser session: no CSRF token to carry.
    app.extensions["csrf"].exempt(station_api.bp)
    app.register_blueprint(station_api.bp)

    from unioncard.checkin_web import member_views, partner_api, partners_views, users_views

    app.register_blueprint(users_views.bp)
    app.register_blueprint(member_views.bp)
    from unioncard.checkin_web import joining_views, mailings_views

    app.register_blueprint(joining_views.bp)

    app.register_blueprint(mailings_views.bp)
    # Mail programs post to the unsubscribe link by themselves (RFC 8058): no CSRF token to carry;
    # the link's own signature is what guards it.
    csrf.exempt(mailings_views.unsubscribe)

    limiter = partner_api.init_app(app, settings, csrf)
    app.register_blueprint(partners_views.bp)
    # Back-off for password guessing from one address, on top of the per-account lockout.
    app.view_functions["auth.login"] = limiter.limit(
        settings.login_failures_per_address, key_func=partner_api.client_address, methods=["POST"],
        scope="login-failures", deduct_when=lambda response: response.status_code == 401)(auth.login)
    # Members' codes: asking for one is limited per address here and per contact in the service;
    # guessing one is limited per address here and per code (five tries) in the service.
    app.view_functions["member.sign_in"] = limiter.limit(
        settings.member_codes_per_address, key_func=partner_api.client_address, methods=["POST"],
        scope="member-codes")(member_views.sign_in)
    app.view_functions["joining.form"] = limiter.limit(
        settings.member_codes_per_address, key_func=partner_api.client_address, methods=["POST"],
        scope="applications")(joining_views.form)
    app.view_functions["joining.confirm"] = limiter.limit(
        settings.login_failures_per_address, key_func=partner_api.client_address, methods=["POST"],
        scope="application-code-failures", deduct_when=lambda response: response.status_code == 401)(
        joining_views.confirm)
    app.view_functions["member.code"] = limiter.limit(
        settings.login_failures_per_address, key_func=partner_api.client_address, methods=["POST"],
        scope="member-code-failures", deduct_when=lambda response: response.status_code == 401)(member_views.code)

    from unioncard.checkin_web import formatting

    formatting.install(app)
    _install_error_pages(app)
    app.after_request(_security_headers)
    return app


def runtime() -> Runtime:
    from flask import current_app

    return current_app.extensions["unioncard"]


def _select_locale() -> str:
    chosen = session.get("locale")
    if chosen in LOCALES:
        return chosen
    return runtime().settings.default_locale


def _init_login(app: Flask, rt: Runtime) -> None:
    from unioncard.checkin_web.auth import load_user

    manager = LoginManager(app)
    manager.login_view = "auth.login"
    manager.login_message = None
    manager.session_protection = "strong"
    manager.user_loader(load_user)


def _security_headers(response):
    response.headers.setdefault(
        "Content-Security-Policy",
        "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; "
        "object-src 'none'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'",
    )
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    # The hand-out page may use the camera to read card codes; nothing needs more than that.
    response.headers.setdefault("Permissions-Policy", "camera=(self), microphone=(), geolocation=(), payment=(), usb=()")
    response.headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
    response.headers.setdefault("Cross-Origin-Resource-Policy", "same-origin")
    if runtime().settings.secure_cookies:
        response.headers.setdefault("Strict-Transport-Security", "max-age=31536000")
    if request.endpoint and request.endpoint != "static":
        response.headers.setdefault("Cache-Control", "no-store")
    return response


def _install_error_pages(app: Flask) -> None:
    """Pages get a page in plain Russian; API paths (/api/, /station-api/) get JSON with a code."""
    from flask_babel import gettext as _

    from unioncard.checkin_web.partner_api import http_error, is_api_request

    def page(status, title, text):
        return render_template("error.html", title=title, text=text), status

    def page_or_json(status, title, text):
        """A handler for ``status``: JSON with a code on API paths, the page otherwise. Title and
        text are callables so they are translated per request."""
        def handle(e):
            return http_error(e) if is_api_request() else page(status, title(), text())
        app.register_error_handler(status, handle)

    def bad_request(e):
        if is_api_request():
            return http_error(e)
        if getattr(e, "description", None) == "nul_in_input":
            return page(400, _("The text holds a forbidden character"), _(
                "A field holds an invisible zero character (often pasted from another program). "
                "Type the text again by hand and send it once more."))
        return page(400, _("The request is malformed"), _("Go back, reload the page and try again."))

    app.register_error_handler(400, bad_request)
    not_found = (lambda: _("Page not found"), lambda: _("There is no such page, or it is not available to you."))
    page_or_json(404, *not_found)
    page_or_json(405, *not_found)
    page_or_json(413, lambda: _("The file is too large"), lambda: _(
        "Files up to %(limit)s MB can be uploaded. Split the list into several files.",
        limit=runtime().settings.max_upload_bytes // (1024 * 1024)))
    def too_many(e):
        if is_api_request():
            return http_error(e)
        from unioncard.checkin_web.partner_api import retry_after

        body, status = page(429, _("Too many attempts"), _(
            "There were too many unsuccessful attempts from this computer. Wait a few minutes and try again."))
        return body, status, {"Retry-After": str(retry_after(e))}

    app.register_error_handler(429, too_many)
    page_or_json(500, lambda: _("Something went wrong"), lambda: _(
        "The server could not do this. Nothing was saved; try again, and if it repeats, tell the "
        "administrator the time it happened."))

    @app.errorhandler(CSRFError)
    def csrf_error(_e):
        return page(400, _("The form has expired"),
                    _("The page was open too long or was opened in another window. Go back, reload it and try again."))

    @app.teardown_appcontext
    def _drop_request_state(_exc):
        g.pop("actor", None)
