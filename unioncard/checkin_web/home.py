"""The start page: where each kind of user begins."""

from __future__ import annotations

from flask import Blueprint, redirect, url_for
from flask_login import current_user, login_required

bp = Blueprint("home", __name__)


@bp.route("/")
@login_required
def index():
    return redirect(url_for("registry.organisation", organisation_id=current_user.organisation_id))
