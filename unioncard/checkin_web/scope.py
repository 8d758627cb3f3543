"""What every page needs: the runtime, the signed-in user's actor, and organisations looked up
through the user's scope (anything outside it answers 404, like something that does not exist)."""

from __future__ import annotations

from flask import abort
from flask_login import current_user

from unioncard.errors import NotFound
from unioncard.registry import services


def rt():
    from unioncard.checkin_web import runtime

    return runtime()


def actor():
    return current_user.actor


def organisation_or_404(session, organisation_id: int):
    try:
        return services.get_organisation(session, actor(), organisation_id)
    except NotFound:
        abort(404)
