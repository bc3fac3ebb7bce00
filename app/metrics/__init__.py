"""Prometheus metrics: request counting hooks, `/metrics`, and `/health/ready`."""

from __future__ import annotations

import time

from flask import Flask, g, request
from werkzeug.wrappers import Response

UNMATCHED = "unmatched"


def _start_timer() -> None:
    g.metrics_started = time.perf_counter()


def _count_request(response: Response) -> Response:
    from app.metrics.registry import HTTP_DURATION, HTTP_REQUESTS

    # the rule's template, never the raw path: a label per URL ever requested would have no bound
    route = request.url_rule.rule if request.url_rule is not None else UNMATCHED
    method = request.method if request.method in _METHODS else "other"
    HTTP_REQUESTS.labels(route, method, str(response.status_code)).inc()
    started = g.get("metrics_started")
    if started is not None:
        HTTP_DURATION.labels(route, method).observe(time.perf_counter() - started)
    return response


_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def init_metrics(app: Flask) -> None:
    """Count every request and add `/metrics` and `/health/ready` (one call from the factory)."""
    from app.metrics.routes import bp

    # first of all before-request hooks, so a hook that answers early (a ban, a rate limit) is timed too
    app.before_request_funcs.setdefault(None, []).insert(0, _start_timer)
    app.after_request(_count_request)
    app.register_blueprint(bp)
