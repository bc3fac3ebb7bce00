"""The traffic page: the web app's own requests per minute, errors and latency, from the rollups."""

from __future__ import annotations

from flask import Blueprint, current_app, render_template, request

from app.analytics import buffer as analytics_buffer
from app.analytics.middleware import buffer_for
from app.analytics.report import DEFAULT_RANGE, RANGES, traffic
from app.permissions import permission_required
from app.timeutil import utcnow

# Its own blueprint under /logs: the `logs` blueprint belongs to the log explorer.
bp = Blueprint("traffic", __name__, url_prefix="/logs")


@bp.route("/traffic")
@permission_required("view_traffic")
def index() -> str:
    """Requests, error rate and latency over 1 h, 24 h or 7 d; slowest routes, busiest users, errors."""
    asked = request.args.get("range", DEFAULT_RANGE)
    problem = None
    if asked not in RANGES:
        problem = f"Unknown range {asked[:20]!r}: choose 1h, 24h or 7d. Showing {RANGES[DEFAULT_RANGE][0]}."
        asked = DEFAULT_RANGE
    buffer = buffer_for(current_app)
    return render_template(
        "traffic/index.html",
        t=traffic(asked, utcnow()),
        ranges=RANGES,
        problem=problem,
        enabled=buffer is not None,
        overflowed=analytics_buffer.overflowed,
        failed=analytics_buffer.failed,
    )
