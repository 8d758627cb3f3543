"""What every page needs: the runtime, the signed-in user's actor, and organisations looked up
through the user's scope (anything outside it answers 404, like something that does not exist)."""

from __future__ import annotations

from flask import abort, redirect, request, session, url_for
from flask_login import current_user

from unioncard.errors import NotFound
from unioncard.registry import services


def rt():
    from unioncard.checkin_web import runtime

    return runtime()


def actor():
    return current_user.actor


def user_can(*permissions) -> bool:
    """Whether the signed-in user (if any) holds any of ``permissions``: what the menu shows."""
    if not (current_user and current_user.is_authenticated):
        return False
    return any(current_user.actor.can(permission) for permission in permissions)


def organisation_or_404(session, organisation_id: int):
    try:
        return services.get_organisation(session, actor(), organisation_id)
    except NotFound:
        abort(404)


def search_text(where: str, field: str = "q"):
    """The surname typed into a list's search box. It travels in a POST and stays in the session,
    never in the address: addresses end up in server logs, browser history and Referer headers.
    Returns (text, None) for a GET, or (None, redirect) after a POST stored it (post/redirect/get)."""
    searches = session.get("searches") or {}
    if request.method == "POST":
        if field not in request.form:
            return searches.get(where, ""), None
        text = (request.form.get(field) or "").strip()[:100]
        if text:
            searches[where] = text
        else:
            searches.pop(where, None)
        # Only the last few lists are remembered: the session cookie stays small.
        session["searches"] = dict(list(searches.items())[-5:])
        # Back to the list's first page, keeping its other (non-personal) settings.
        kept = {k: v for k, v in request.args.items() if k != "page"}
        return None, redirect(url_for(request.endpoint, **request.view_args, **kept))
    return searches.get(where, ""), None
