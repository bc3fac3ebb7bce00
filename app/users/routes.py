"""A user's own pages."""

from __future__ import annotations

from flask import Blueprint, render_template
from flask_login import current_user, login_required

bp = Blueprint("users", __name__)


@bp.route("/home")
@login_required
def home() -> str:
    """The signed-in user's home page."""
    return render_template("users/home.html", user=current_user)
