"""The partner API under /api/v1: OpenAPI 3 generated from these schemas (flask-smorest), served
at /api/v1/openapi.json with browsable docs at /api/v1/docs. Rules: docs/partner-api.md.

A partner authenticates with its key (``Authorization: Bearer ucp_…``). Each key has its own
rate limit; wrong keys count against the calling address and, past a threshold, that address
waits. Every answer is JSON; errors are ``{"error": {"code", "message", "fields"?}}`` with a
stable ``code``.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from datetime import timezone

import swagger_ui_bundle
from flask import Blueprint as FlaskBlueprint
from flask import Flask, current_app, g, jsonify, render_template, request, send_from_directory
from flask_babel import gettext as _
from flask_limiter import Limiter
from flask_smorest import Api, Blueprint
from marshmallow import Schema, fields, validate
from sqlalchemy.exc import DBAPIError
from werkzeug.exceptions import HTTPException

from unioncard import clock
from unioncard.checkin_web.scope import rt
from unioncard.hsm import ceremony
from unioncard.issuer import cardnumber
from unioncard.issuer import credential as credentials
from unioncard.partner import services as partners
from unioncard.partner.domain import NameQuery

PREFIX = "/api/v1"
MAX_BODY_BYTES = 16 * 1024
# A key's partner is remembered this long per server process: a revoked key stops working in
# this process at once, in other processes within this time.
KEY_CACHE_SECONDS = 10.0
TRUST_CACHE_SECONDS = 60.0
# Exact over the last minute (no double burst at a window's edge), and the cheapest on Redis
# here: one Lua call per limit (bench: 3.4 ms a request against 3.9 fixed, 4.3 sliding counter).
RATE_LIMIT_STRATEGY = "moving-window"

log = logging.getLogger("unioncard.partner")

bp = Blueprint("partner_api", __name__, url_prefix=PREFIX + "/partner",
               description="Checking that a card is a valid union card of the person presenting it.")
docs_bp = FlaskBlueprint("api_docs", __name__, url_prefix=PREFIX + "/docs")


# --- schemas ------------------------------------------------------------------------------------

class ErrorDetail(Schema):
    code = fields.String(required=True, metadata={"description": "Stable machine code of the error.",
                                                  "example": "card_number_checksum"})
    message = fields.String(required=True, metadata={"description": "What went wrong, in Russian."})
    fields = fields.Dict(metadata={"description": "Per field messages, for a request that did not pass validation."})


class ErrorOut(Schema):
    error = fields.Nested(ErrorDetail, required=True)


_NAME = validate.Length(min=1, max=100)
# No text field may hold NUL (every request with one is refused with 400 `nul_in_input`).
_NO_NUL = "^[^\\u0000]*$"


CARD_NUMBER_RULE = ("16 digits starting with an issuer prefix (%s; the first is the union's own, followed by the "
                    "region's two digits and a 7-digit serial; any others are the earlier registry's cards) and "
                    "ending with a Luhn check digit (ISO/IEC 7812) over all 16; spaces, hyphens, dots and no-break spaces between digits are "
                    "ignored. A schema-valid number whose check digit does not match is refused with 422 "
                    "`card_number_checksum`.")


class VerifyNumberIn(Schema):
    card_number = fields.String(required=True, validate=validate.Length(min=1, max=40), metadata={
        "format": "card-number",
        "pattern": cardnumber.pattern(cardnumber.DEFAULT_ISSUER_PREFIX),
        "x-check-digit": "luhn",
        "description": CARD_NUMBER_RULE % cardnumber.DEFAULT_ISSUER_PREFIX,
        "example": "9643 0177 0000 0019"})
    surname = fields.String(required=True, validate=_NAME, metadata={
        "description": "The holder's surname. Case, «ё»/«е», surrounding spaces and the kind of hyphen are ignored.",
        "pattern": _NO_NUL, "example": "Иванова"})
    given_name = fields.String(validate=_NAME, metadata={"description": "Optional: checked too when given.",
                                                         "pattern": _NO_NUL})
    patronymic = fields.String(validate=_NAME, metadata={"description": "Optional: checked too when given.",
                                                         "pattern": _NO_NUL})


class VerifyCredentialIn(Schema):
    credential = fields.String(required=True, validate=validate.Length(min=5, max=1000), metadata={
        "format": "card-credential",
        # «UC1:» then base45 (RFC 9285: digits, capital letters, space and $%*+-./:); surrounding
        # blanks are ignored. The record inside must be signed by a current card_credential key.
        "pattern": "^\\s*[Uu][Cc]1:[0-9A-Za-z $%*+\\-./:]+\\s*$",
        "x-signature": "docs/formats.md §6",
        "description": "The text of the card's QR code: «UC1:» and the base45 signed record (docs/formats.md §6). "
                       "Text that is not such a record is refused with 422."})


# One instance each, made once: a schema class given to webargs is instantiated per request.
VERIFY_NUMBER_IN = VerifyNumberIn()
VERIFY_CREDENTIAL_IN = VerifyCredentialIn()


class VerifyOut(Schema):
    valid = fields.Boolean(required=True, metadata={
        "description": "True only for a valid current card of this person (and, for a bonus-programme partner, "
                       "a member who agreed to the transfer to that partner). False for everything else, "
                       "whatever the cause."})
    checked_at = fields.DateTime(required=True, metadata={"description": "When the answer was given (UTC)."})
    reference = fields.String(required=True, metadata={
        "description": "The query's reference in the union's log, to quote in a dispute."})


# --- errors -------------------------------------------------------------------------------------

HTTP_CODES = {
    400: "bad_request", 401: "api_key_invalid", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
    413: "payload_too_large", 415: "unsupported_media_type", 422: "validation_failed", 429: "rate_limited",
    500: "internal_error", 503: "unavailable",
}


def is_api_request() -> bool:
    return request.path.startswith((PREFIX + "/", "/station-api/"))


def error_response(status: int, code: str, message: str, fields_=None, headers=None):
    body = {"code": code, "message": message}
    if fields_:
        body["fields"] = fields_
    response = jsonify({"error": body})
    response.status_code = status
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def _http_message(status: int) -> str:
    messages = {
        400: _("The request is malformed"),
        401: _("The API key is missing, wrong or revoked"),
        404: _("There is no such address in the API"),
        405: _("This address does not take this method"),
        413: _("The request is too large"),
        422: _("The request did not pass validation"),
        429: _("Too many requests: wait and try again"),
        500: _("Internal error; the query was not answered"),
        503: _("The service cannot answer now"),
    }
    return messages.get(status, _("The request cannot be answered"))


def http_error(error: HTTPException):
    """Any HTTP error on an API path, as JSON with a stable code."""
    status = error.code or 500
    headers = {}
    data = getattr(error, "data", None) or {}
    fields_ = data.get("messages") or data.get("errors")
    if status == 405 and getattr(error, "valid_methods", None):
        headers["Allow"] = ", ".join(error.valid_methods)
    if status == 429:
        headers["Retry-After"] = str(retry_after(error))
    code = HTTP_CODES.get(status, "error")
    message = _http_message(status)
    if status == 400 and fields_:
        code = "malformed_json"
    if status == 400 and getattr(error, "description", None) == "nul_in_input":
        code, message = "nul_in_input", _("The request contains a NUL character, which no field may hold")
    if status == 400 and getattr(error, "description", None) == "malformed_json":
        code = "malformed_json"
    return error_response(status, code, message, fields_, headers)


def retry_after(error) -> int:
    limit = getattr(error, "limit", None)
    try:
        return max(1, int(limit.limit.get_expiry()))
    except Exception:  # noqa: BLE001 - a missing hint must not turn a 429 into a 500
        return 60


class UnionCardApi(Api):
    """flask-smorest registers one handler for every HTTPException of the app; pages keep their
    own, only API paths get JSON."""

    ERROR_SCHEMA = ErrorOut

    def handle_http_exception(self, error):
        if is_api_request():
            return http_error(error)
        return error


# --- partner lookup, cached per process -----------------------------------------------------------

class KeyCache:
    def __init__(self):
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[float, partners.Partner]] = {}

    def get(self, key_hash: str):
        entry = self._entries.get(key_hash)
        if entry and entry[0] > time.monotonic():
            return entry[1]
        return None

    def put(self, key_hash: str, partner: partners.Partner) -> None:
        with self._lock:
            self._entries[key_hash] = (time.monotonic() + KEY_CACHE_SECONDS, partner)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


def _presented_key() -> str:
    header = request.headers.get("Authorization", "")
    return header[7:].strip() if header[:7].lower() == "bearer " else ""


def _presented_hash() -> str:
    if "partner_key_hash" not in g:
        g.partner_key_hash = hashlib.sha256(_presented_key().encode("utf-8", "replace")).hexdigest()
    return g.partner_key_hash


def current_partner() -> partners.Partner | None:
    if "partner" not in g:
        cache: KeyCache = current_app.extensions["unioncard_partner_keys"]
        found = cache.get(_presented_hash())
        if found is None:
            with rt().session_factory() as session:
                found = partners.authenticate(session, _presented_key())
            if found is not None:
                cache.put(_presented_hash(), found)
        g.partner = found
    return g.partner


def client_address() -> str:
    return request.remote_addr or "unknown"


def _key_limit() -> str:
    partner = current_partner()
    # No partner: the request is refused with 401 anyway; the failures limit below counts it.
    return f"{partner.per_minute if partner else partners.MAX_PER_MINUTE} per minute"


def _key_scope() -> str:
    return "partner-key:" + _presented_hash()


@bp.before_request
def _authenticate():
    request.max_content_length = MAX_BODY_BYTES
    if current_partner() is None:
        log.info("partner API: refused key from %s", client_address())
        return error_response(401, "api_key_invalid", _http_message(401), headers={"WWW-Authenticate": "Bearer"})
    return None


# --- trust bundle for QR credentials ---------------------------------------------------------------

class TrustCache:
    def __init__(self):
        self._lock = threading.Lock()
        self._checked_at = 0.0
        self._version = None
        self._bundle = None

    def bundle(self, session, now):
        with self._lock:
            if self._bundle is None or time.monotonic() - self._checked_at > TRUST_CACHE_SECONDS \
                    or self._bundle.is_expired(now):
                record = ceremony.latest_bundle(session)
                if record is None:
                    self._bundle = None
                elif record.version != self._version or self._bundle is None or self._bundle.is_expired(now):
                    self._bundle = ceremony.checked(record, now)
                    self._version = record.version if self._bundle is not None else None
                self._checked_at = time.monotonic()
            return self._bundle


# --- operations -----------------------------------------------------------------------------------

_COMMON_ERRORS = {
    401: "The API key is missing, wrong or revoked (`api_key_invalid`).",
    413: "The body is larger than 16 KiB (`payload_too_large`).",
    422: "The body did not pass validation (`validation_failed`, per-field messages in `fields`), or the card "
         "number is not one (`card_number_format`, `card_number_length`, `card_number_checksum`, "
         "`card_number_issuer`); such numbers are answered without looking them up.",
    429: "Too many queries with this key, or too many wrong keys from this address (`rate_limited`); "
         "`Retry-After` says how many seconds to wait.",
}


def _document_errors(extra=None):
    def wrap(view):
        for status, description in {**_COMMON_ERRORS, **(extra or {})}.items():
            view = bp.alt_response(status, schema=ErrorOut, description=description)(view)
        return view
    return wrap


def _with_connection(work):
    """Run ``work(conn)`` on a partner connection. The pool does not ping connections first (a
    round trip per query); a connection the database dropped fails once and is retried on a new
    one. Nothing is committed twice: the log row is the last statement."""
    try:
        with rt().partner_connection() as conn:
            return work(conn)
    except DBAPIError as exc:
        if not exc.connection_invalidated:
            raise
    with rt().partner_connection() as conn:
        return work(conn)


def _answer(answer: partners.Answer) -> dict:
    return {"valid": answer.valid, "checked_at": answer.checked_at.replace(tzinfo=timezone.utc),
            "reference": answer.reference}


@bp.route("/verify", methods=["POST"])
@bp.arguments(VERIFY_NUMBER_IN, location="json")
@bp.response(200, VerifyOut, description="The answer: valid or not, nothing else.")
@_document_errors({400: "The body is not JSON (`malformed_json`)."})
@bp.doc(security=[{"partnerKey": []}], operationId="verifyCardNumber")
def verify(args):
    """Is this number a valid current card of this person?

    An unknown number and a known number with another surname get the same answer, so the
    API cannot be used to find out which numbers exist."""
    partner = current_partner()
    try:
        number = cardnumber.validate(args["card_number"], rt().settings.card_prefixes)
    except cardnumber.ValidationError as exc:
        log.info("partner API: key %s sent a malformed card number (%s)", partner.key_id, exc.code)
        return error_response(422, exc.code, exc.render())
    name = NameQuery(args["surname"], args.get("given_name"), args.get("patronymic"))

    def ask(conn):
        return partners.verify_number(conn, partner, number, name, client_ip=client_address())

    return _answer(_with_connection(ask))


@bp.route("/verify-credential", methods=["POST"])
@bp.arguments(VERIFY_CREDENTIAL_IN, location="json")
@bp.response(200, VerifyOut, description="The answer: valid or not, nothing else.")
@_document_errors({400: "The body is not JSON (`malformed_json`).",
                   503: "The union's trust bundle is not available, so no signature can be checked "
                        "(`trust_bundle_missing`)."})
@bp.doc(security=[{"partnerKey": []}], operationId="verifyCardCredential")
def verify_credential(args):
    """Is the card whose QR code this is valid now?

    The signature is checked against the union's keys, then the card's current state (a card
    may have been lost or blocked after it was printed). A code that is not a card code at all
    is `credential_invalid` (422); a well-formed code with a wrong signature is `valid: false`."""
    partner = current_partner()
    try:
        parsed = credentials.parse(args["credential"])
    except credentials.CredentialError as exc:
        log.info("partner API: key %s sent something that is not a card code", partner.key_id)
        return error_response(422, exc.code, exc.render())
    with rt().session_factory() as session:
        bundle = current_app.extensions["unioncard_partner_trust"].bundle(session, clock.now())
    if bundle is None:
        return error_response(503, "trust_bundle_missing", _http_message(503))

    def ask(conn):
        return partners.verify_credential(conn, partner, parsed, bundle, client_ip=client_address())

    return _answer(_with_connection(ask))


# --- docs -----------------------------------------------------------------------------------------

@docs_bp.get("/")
def docs():
    return render_template("api/docs.html", spec_url=PREFIX + "/openapi.json")


@docs_bp.get("/ui/<path:filename>")
def docs_asset(filename: str):
    if filename not in ("swagger-ui.css", "swagger-ui-bundle.js"):
        return error_response(404, "not_found", _http_message(404))
    return send_from_directory(swagger_ui_bundle.swagger_ui_path, filename, max_age=86400)


# --- wiring -----------------------------------------------------------------------------------------

def init_app(app: Flask, settings, csrf) -> Limiter:
    app.config.update(
        API_TITLE="UnionCard partner API",
        API_VERSION="1.0.0",
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX=PREFIX,
        OPENAPI_JSON_PATH="openapi.json",
        API_SPEC_OPTIONS={
            "info": {"description": "Checking union membership cards for partners. Rules: docs/partner-api.md."},
            "servers": [{"url": "/"}],
        },
        # Only a refused request says when to come back (Retry-After), not every answer.
        RATELIMIT_HEADERS_ENABLED=False,
    )
    api = UnionCardApi(app)
    api.spec.components.security_scheme("partnerKey", {
        "type": "http", "scheme": "bearer",
        "description": "The key the union's administrator gave the partner (it starts with «ucp_»)."})
    # If Redis is away the counts fall back to this process's memory instead of failing requests.
    limiter = Limiter(client_address, app=app, storage_uri=settings.rate_limit_storage,
                      strategy=RATE_LIMIT_STRATEGY, key_prefix="unioncard", in_memory_fallback_enabled=True,
                      swallow_errors=True)
    limiter.limit(_key_limit, key_func=_key_scope, scope="partner-key")(bp)
    # Wrong keys count per address, and only requests without a good key are held back: one bad
    # client behind a NAT must not lock out the other partners at that address.
    limiter.limit(settings.api_key_failures_per_address, key_func=client_address, scope="partner-key-failures",
                  deduct_when=lambda response: response.status_code == 401,
                  exempt_when=lambda: current_partner() is not None)(bp)
    # The pattern states this installation's issuer prefix, and the earlier registry's prefixes
    # whose cards stay valid (docs/migration.md).
    for number_field in (VerifyNumberIn._declared_fields["card_number"], VERIFY_NUMBER_IN.fields["card_number"]):
        number_field.metadata["pattern"] = cardnumber.pattern(settings.card_prefixes)
        number_field.metadata["description"] = CARD_NUMBER_RULE % ", ".join(settings.card_prefixes)
    csrf.exempt(bp)
    api.register_blueprint(bp)
    app.register_blueprint(docs_bp)
    app.extensions["unioncard_partner_keys"] = KeyCache()
    app.extensions["unioncard_partner_trust"] = TrustCache()
    return limiter
