"""The logs area's blueprint (pages under /logs/)."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("logs", __name__, url_prefix="/logs")
