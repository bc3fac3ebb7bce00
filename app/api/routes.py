"""JSON API: `{"success", "message", "data"}` answers; authenticated endpoints come with API keys."""

from __future__ import annotations

from flask import Blueprint
from werkzeug.wrappers import Response

from app.errors import json_response
from app.extensions import csrf

bp = Blueprint("api", __name__, url_prefix="/api/v1")
# The API authenticates with bearer keys, never session cookies, so CSRF does not apply.
csrf.exempt(bp)


@bp.route("/")
def index() -> Response:
    """Name and version of the API."""
    return json_response(True, "Slipway API", {"version": 1})
