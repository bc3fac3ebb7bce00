"""The recording hooks: time each request and queue one row with its route template, never its path."""

from __future__ import annotations

import time

from flask import Flask, g, request
from werkzeug.wrappers import Response

from app.analytics.buffer import RequestBuffer
from app.models.analytics import ADDRESS_LENGTH, METHOD_LENGTH, ROUTE_LENGTH, UNMATCHED_ROUTE
from app.timeutil import utcnow

EXTENSION_KEY = "slipway_analytics"


def buffer_for(app: Flask) -> RequestBuffer | None:
    """The app's request buffer (None when analytics are off)."""
    return app.extensions.get(EXTENSION_KEY)


def _start_timer() -> None:
    g.analytics_started = time.perf_counter()


def _user_id() -> int | None:
    # Read what the request already loaded; never trigger a session lookup just for analytics.
    user = g.get("_login_user")
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    return getattr(user, "id", None)


def register(app: Flask) -> None:
    """Attach the buffer and the before/after hooks to `app`."""
    buffer = RequestBuffer(app)
    app.extensions[EXTENSION_KEY] = buffer
    excluded = frozenset(item.strip() for item in app.config["ANALYTICS_EXCLUDE"].split(",") if item.strip())

    def record(response: Response) -> Response:
        started = g.pop("analytics_started", None)
        if started is None:
            return response
        rule = request.url_rule
        route = rule.rule if rule is not None else UNMATCHED_ROUTE
        if route in excluded:
            return response
        buffer.add({
            "at": utcnow(),
            "method": request.method[:METHOD_LENGTH],
            "route": route[:ROUTE_LENGTH],
            "status": response.status_code,
            "duration_ms": (time.perf_counter() - started) * 1000,
            "user_id": _user_id(),
            "client_addr": (request.remote_addr or "")[:ADDRESS_LENGTH],
            "response_bytes": response.content_length or 0,
        })
        return response

    # First of the before-request hooks, so the time includes the session check and the rest.
    app.before_request_funcs.setdefault(None, []).insert(0, _start_timer)
    app.after_request(record)
