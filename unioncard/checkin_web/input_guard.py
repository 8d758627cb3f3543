"""One layer for input every view shares: text that PostgreSQL cannot store (NUL) and numbers
and dates that would overflow downstream are refused here, before any view or service runs,
with a 400 page in Russian or a JSON error with a stable code on API paths."""

from __future__ import annotations

from datetime import date

from flask import abort, request

from unioncard.db import MAX_ID

# The largest page number a list accepts: far beyond any real list (50 rows a page, 4 M rows),
# far below what would overflow an SQL OFFSET.
MAX_PAGE = 1_000_000
# Dates people can mean in this system (membership since 1990, cards valid for decades).
EARLIEST_DATE = date(1900, 1, 1)
LATEST_DATE = date(2199, 12, 31)


def _has_nul(*texts: str) -> bool:
    return any("\x00" in text for text in texts)


def refuse_nul_bytes():
    """``before_request``: a NUL anywhere in the address, the form, the uploaded file names or a
    JSON body ends the request with 400. (File contents are checked by their own parsers.)"""
    if "\x00" in request.path or "%00" in request.query_string.decode("latin-1").lower():
        abort(400, description="nul_in_input")
    for key, value in request.args.items(multi=True):
        if _has_nul(key, value):
            abort(400, description="nul_in_input")
    if request.method in ("POST", "PUT", "PATCH", "DELETE"):
        if request.mimetype in ("application/x-www-form-urlencoded", "multipart/form-data"):
            for key, value in request.form.items(multi=True):
                if _has_nul(key, value):
                    abort(400, description="nul_in_input")
            for key, storage in request.files.items(multi=True):
                if _has_nul(key, storage.filename or ""):
                    abort(400, description="nul_in_input")
        elif request.is_json:
            # A body over the partner API's own limit is left to its 413; nothing else reads it.
            from unioncard.checkin_web.partner_api import MAX_BODY_BYTES, PREFIX

            limit = MAX_BODY_BYTES if request.path.startswith(PREFIX + "/") else None
            if limit is not None and (request.content_length is None or request.content_length > limit):
                return None
            _check_json(request.get_data(cache=True))
    return None


# No API takes JSON nested deeper than this; a deeper body is refused before anything walks it.
MAX_JSON_DEPTH = 32


def _check_json(body: bytes) -> None:
    """A JSON body is parsed once here: unparseable, too deep, or with a number too long to
    convert is a 400 ``malformed_json``; NUL in any key or string is a 400 ``nul_in_input``."""
    import json

    try:
        value = json.loads(body)
    except (ValueError, RecursionError, UnicodeDecodeError):
        abort(400, description="malformed_json")
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            abort(400, description="malformed_json")
        if isinstance(item, str):
            if _has_nul(item):
                abort(400, description="nul_in_input")
        elif isinstance(item, dict):
            for key, inner in item.items():
                if _has_nul(key):
                    abort(400, description="nul_in_input")
                stack.append((inner, depth + 1))
        elif isinstance(item, list):
            stack.extend((inner, depth + 1) for inner in item)


def page_number(name: str = "page") -> int:
    """The page of a list asked for in the address: 1 for anything missing or unreadable, at most MAX_PAGE."""
    raw = request.args.get(name, "")
    if not raw.isdigit():
        return 1
    # A number longer than MAX_PAGE's is past the end anyway (and never converted: Python refuses
    # to turn strings of thousands of digits into an int).
    return MAX_PAGE if len(raw) > len(str(MAX_PAGE)) else min(max(1, int(raw)), MAX_PAGE)


def page_cursor() -> dict[str, int | None]:
    """The keyset cursor of a list paged by its sort key: ``after`` / ``before`` a row's id (see
    the pager), anything unreadable as no cursor."""
    return {"after": bounded_id(request.args.get("after")), "before": bounded_id(request.args.get("before"))}


def bounded_date(value: date) -> date:
    """``ValueError`` for a date outside what the system can mean (and compute with)."""
    if not EARLIEST_DATE <= value <= LATEST_DATE:
        raise ValueError(value)
    return value


def bounded_id(text) -> int | None:
    """An id from a form field: None unless it is a whole number from 1 to MAX_ID."""
    text = str(text or "").strip()
    if not text.isdigit() or not text.isascii() or len(text) > 10 or not 0 < int(text) <= MAX_ID:
        return None
    return int(text)


def form_ids(name: str, most: int) -> list[int]:
    """The ids posted under ``name`` (at most ``most``); anything that cannot be an id is left out."""
    found = (bounded_id(v) for v in request.form.getlist(name)[:most])
    return [i for i in found if i is not None]


def install_id_converter(app) -> None:
    """``<int:…>`` in every route takes ids from 1 to MAX_ID; a larger number matches no route (404).
    Must run before any blueprint registers its rules."""
    from werkzeug.routing import IntegerConverter

    class IdConverter(IntegerConverter):
        def __init__(self, url_map, *args, **kwargs):
            kwargs.setdefault("max", MAX_ID)
            super().__init__(url_map, *args, **kwargs)

    app.url_map.converters["int"] = IdConverter
