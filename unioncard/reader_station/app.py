"""The desk's local page (127.0.0.1 only): a large verdict screen worked from the keyboard.
Keyboard-wedge scanners and people type into it; serial scanners and chip readers feed the same
station core from their threads, and the page learns their verdicts by long polling ``/feed``.

Requests that change something carry the page's token in ``X-Station-Token``: another web site
open in the same browser cannot send that header to 127.0.0.1 without a CORS preflight we never
answer, so it cannot check people in."""

from __future__ import annotations

import secrets

from flask import Flask, abort, jsonify, render_template, request

from unioncard.errors import UnionCardError
from unioncard.i18n import N_, translate
from unioncard.reader_station import bundle as eb
from unioncard.reader_station.domain import Source
from unioncard.reader_station.inputs import keyboard_scan

# Problems the page itself may report (it saw the keystrokes, the server did not).
PAGE_PROBLEMS = {"partial_scan"}
LOCAL_HOSTS = {"127.0.0.1", "localhost", "[::1]"}
MAX_SCAN = 2048


def create_station_app(station, *, kiosk: bool = False) -> Flask:
    """The desk page; with ``kiosk`` the self check-in page only (no search, no undo, no reprint:
    a member at a kiosk cannot reach the staff's tools)."""
    app = Flask(__name__)
    app.config.update(MAX_CONTENT_LENGTH=8 * 1024 * 1024, SECRET_KEY=secrets.token_hex(16))
    page_token = secrets.token_urlsafe(16)
    app.extensions["station"] = station
    app.jinja_env.globals["_"] = lambda message, **params: translate(message, **params)

    def check_token() -> None:
        if not secrets.compare_digest(request.headers.get("X-Station-Token", ""), page_token):
            abort(403)

    @app.after_request
    def headers(response):
        response.headers.setdefault("Content-Security-Policy",
                                    "default-src 'self'; style-src 'self'; script-src 'self'; object-src 'none'; "
                                    "frame-ancestors 'none'; base-uri 'self'; form-action 'self'")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Cache-Control", "no-store")
        return response

    @app.errorhandler(UnionCardError)
    def error(exc: UnionCardError):
        return jsonify({"error": exc.as_dict()}), exc.http_status

    def body() -> dict:
        value = request.get_json(silent=True)
        return value if isinstance(value, dict) else {}

    def text(sent: dict, key: str, limit: int = MAX_SCAN) -> str:
        """A text field of the request's JSON; anything else (null, a list, a number) is empty."""
        value = sent.get(key)
        return value[:limit] if isinstance(value, str) else ""

    @app.before_request
    def only_this_computer():
        # The page (and its token) only for the addresses the desk listens on: a web site that
        # points its own name at 127.0.0.1 (DNS rebinding) gets nothing.
        host = (request.host or "").rsplit(":", 1)[0] if not (request.host or "").startswith("[") \
            else request.host.split("]")[0] + "]"
        if host not in LOCAL_HOSTS:
            abort(403)

    @app.get("/")
    def page():
        template = "kiosk.html" if kiosk else "station.html"
        return render_template(template, token=page_token, status=station.status())

    @app.post("/scan")
    def scan():
        check_token()
        sent = body()
        problem = sent.get("problem")
        source = Source.WEDGE if sent.get("source") == "wedge" else Source.TYPED
        if problem is not None and problem not in PAGE_PROBLEMS:
            abort(400)
        return jsonify(station.scan(keyboard_scan(source, text(sent, "text"), problem), kiosk=kiosk))

    @app.get("/feed")
    def feed():
        after = request.args.get("after", 0, type=int)
        wait = min(request.args.get("wait", 20.0, type=float), 25.0)
        return jsonify({"items": station.wait_feed(after, wait), "seq": station.seq})

    @app.get("/status")
    def status():
        info = station.status()
        info["recent"] = [] if kiosk else station.journal.recent(8)
        return jsonify(info)

    if kiosk:
        return app

    @app.post("/find")
    def find():
        check_token()
        return jsonify(station.find(text(body(), "text")))

    @app.post("/document")
    def by_document():
        check_token()
        return jsonify(station.check_in_by_document(text(body(), "person", 64)))

    @app.post("/operator")
    def operator():
        check_token()
        return jsonify({"operator": station.set_operator(text(body(), "name"))})

    @app.post("/print")
    def print_badge():
        check_token()
        sent = body()
        return jsonify(station.print_for(text(sent, "nonce", 64), text(sent, "reason")))

    @app.post("/mode")
    def mode():
        check_token()
        sent = body()
        session = sent.get("session")
        session = str(session)[:12] if isinstance(session, (str, int)) and not isinstance(session, bool) else ""
        return jsonify({"mode": station.set_mode(session or None, text(sent, "direction", 3) or "in")})

    @app.get("/prints")
    def prints():
        return jsonify({"prints": station.journal.prints(limit=20), **station.journal.print_counts()})

    @app.post("/undo")
    def undo():
        check_token()
        nonce = text(body(), "nonce", 64)
        if not nonce:
            recent = [r for r in station.journal.recent(1) if not r["undone"]]
            if not recent:
                return jsonify({"error": {"code": "nothing_to_undo",
                                          "message": translate(N_("There is no check-in to undo"))}}), 409
            nonce = recent[0]["nonce"]
        return jsonify(station.undo(nonce))

    @app.post("/bundle")
    def load_bundle():
        """A bundle file brought on a USB stick."""
        check_token()
        data = request.get_data()
        try:
            accepted = station.accept_bundle(data)
        except eb.REFUSALS as exc:
            return jsonify({"error": exc.as_dict()}), 400
        return jsonify({"version": accepted.version, "event": accepted.event.name})

    @app.post("/sync")
    def sync_now():
        check_token()
        syncer = app.extensions.get("syncer")
        if syncer is not None:
            syncer.wake.set()
        return jsonify({"asked": syncer is not None})

    return app
