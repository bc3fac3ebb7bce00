"""The front door: `/` sends people where they belong, `/menu` lists the areas, `/health` the database."""

from __future__ import annotations

from flask import Blueprint, redirect, render_template, url_for
from flask_login import current_user, login_required
from werkzeug.wrappers import Response

from app.auth.routes import home_for
from app.dbcheck import database_problem
from app.errors import json_response

bp = Blueprint("main", __name__)


@bp.route("/")
def index() -> Response:
    """Logged-in users go to their home page, others to login."""
    if current_user.is_authenticated:
        return redirect(home_for(current_user))
    return redirect(url_for("auth.login"))


@bp.route("/menu")
@login_required
def menu() -> str:
    """Every area the signed-in user may open, grouped as in the navbar (its no-JavaScript form)."""
    return render_template("menu.html")


@bp.route("/health")
def health() -> Response:
    """200 when the database answers within a short timeout; 503 saying why when it does not."""
    problem = database_problem()
    if problem is not None:
        return json_response(False, problem, {"database": False}, status=503)
    return json_response(True, "ok", {"database": True})
