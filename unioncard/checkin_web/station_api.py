"""What desks (reader stations) talk to: hello (enrolment), the newest bundle, the journal upload.
A desk authenticates with its enrolment token (``Authorization: Bearer <token>``); errors are
JSON with stable codes. Formats: docs/formats.md §10–§11."""

from __future__ import annotations

import base64

from flask import Blueprint, Response, jsonify, request

from unioncard import clock
from unioncard.checkin import services as checkin
from unioncard.checkin.models import Event
from unioncard.checkin_web.scope import rt
from unioncard.errors import UnionCardError, ValidationError
from unioncard.hsm import ceremony
from unioncard.hsm.trust import timestamp
from unioncard.i18n import N_
from unioncard.registry.actor import Actor

bp = Blueprint("station_api", __name__, url_prefix="/station-api/v1")


@bp.errorhandler(UnionCardError)
def _error(exc: UnionCardError):
    return jsonify({"error": exc.as_dict()}), exc.http_status


def _token() -> str:
    header = request.headers.get("Authorization", "")
    return header[7:].strip() if header.startswith("Bearer ") else ""


def _server_time() -> str:
    return timestamp(clock.now())


# Versions and journal positions are database ids: positive and far below 2**53.
MAX_POSITION = 2 ** 53


def _bounded_int(value, name: str) -> int:
    """A version or position from a desk: a whole number from 0 to MAX_POSITION, or a 400."""
    text = str(value).strip() if isinstance(value, (int, str)) and not isinstance(value, bool) else ""
    if not text.isdigit() or len(text) > 16 or int(text) > MAX_POSITION:
        raise ValidationError(N_("«%(name)s» must be a whole number from 0 to %(limit)s"), code="bad_request",
                              name=name, limit=MAX_POSITION)
    return int(text)


@bp.get("/hello")
def hello():
    with rt().uow() as uow:
        station = checkin.authenticate_station(uow.session, _token())
        event = uow.session.get(Event, station.event_id)
        trust_record = ceremony.latest_bundle(uow.session)
        station.last_seen_at = clock.now()
        uow.commit()
        root = trust_record.root_public_key if trust_record is not None else None
        return jsonify({"station_id": station.id, "desk": station.desk, "event_id": event.id, "event": event.name,
                        "root_key_id": trust_record.root_key_id if trust_record else None,
                        "root_public_key": base64.b64encode(root).decode() if root else None,
                        "server_time": _server_time()})


@bp.get("/bundle")
def bundle():
    """The newest bundle if the desk's (``have``) is older; a new one is signed when the roster or
    the revocations changed, or the newest is half way to expiry."""
    have = _bounded_int(request.args.get("have", "0"), "have")
    with rt().uow() as uow:
        station = checkin.authenticate_station(uow.session, _token())
        event = uow.session.get(Event, station.event_id)
        record = checkin.latest_bundle(uow.session, event.id)
        if checkin.bundle_is_stale(uow.session, event, record, clock.now()):
            record = checkin.publish_bundle(uow, Actor.system(f"station-{station.id}"), event.id, rt().signer(),
                                            card_prefixes=rt().settings.card_prefixes)
        station.last_seen_at = clock.now()
        station.last_bundle_version = have
        uow.commit()
        if record.version <= have:
            return Response(status=204, headers={"X-Server-Time": _server_time()})
        return Response(record.content, mimetype="application/octet-stream",
                        headers={"X-Bundle-Version": str(record.version), "X-Server-Time": _server_time()})


@bp.post("/journal")
def journal():
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or not isinstance(body.get("entries"), list):
        raise ValidationError(N_("Send JSON with a list of entries"), code="bad_request")
    after = _bounded_int(body.get("after", 0), "after")
    with rt().uow() as uow:
        station = checkin.authenticate_station(uow.session, _token())
        result = checkin.take_journal(uow, station, body["entries"])
        if body.get("clock_offset") is not None:
            try:
                offset = float(body["clock_offset"])
            except (TypeError, ValueError):
                offset = None
            # A desk clock years off is wrong, not information: kept only within ten years.
            if offset is not None and abs(offset) <= checkin.MAX_CLOCK_OFFSET_SECONDS:
                station.clock_offset_seconds = int(offset)
        uow.commit()
        others, next_after = checkin.checkins_since(uow.session, station.event_id, after)
        undone = checkin.undone_nonces(uow.session, station.event_id)
        return jsonify({"accepted": result.accepted, "already_had": result.already_had,
                        "duplicates": result.duplicates, "others": others, "after": next_after,
                        "more": len(others) >= checkin.OTHERS_PAGE,
                        "undone": undone, "server_time": _server_time()})
