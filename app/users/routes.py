"""The old address of a user's home page, kept so bookmarks still arrive."""

from __future__ import annotations

from flask import Blueprint, redirect, url_for
from flask_login import login_required
from werkzeug.wrappers import Response

bp = Blueprint("users", __name__)


@bp.route("/home")
@login_required
def home() -> Response:
    """Send the user to their workspace page, which is their home now."""
    return redirect(url_for("workspaces.home"), code=302)
