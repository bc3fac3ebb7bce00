"""`GET /metrics` (Prometheus text, token or allow-list, else 404) and `GET /health/ready`."""

from __future__ import annotations

import socket
from datetime import timedelta
from pathlib import Path

from flask import Blueprint, abort, current_app, request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.wrappers import Response

from app.dbcheck import database_problem
from app.errors import json_response
from app.extensions import db
from app.metrics.access import may_scrape
from app.metrics.collector import DatabaseCollector
from app.metrics.heartbeat import last_beat
from app.metrics.registry import Gathered, process_collector
from app.timeutil import utcnow

bp = Blueprint("metrics", __name__)


@bp.route("/metrics")
def metrics() -> Response:
    """Prometheus exposition; 404 (as if there were no such page) without a token or allowed address."""
    if not may_scrape(current_app.config, request.headers.get("Authorization"), request.remote_addr):
        abort(404)
    try:
        body = generate_latest(Gathered([process_collector(), DatabaseCollector(db.session)]))  # type: ignore[arg-type]
    finally:
        db.session.rollback()  # read-only: end the snapshot
    response = Response(body, mimetype=None)
    response.headers["Content-Type"] = CONTENT_TYPE_LATEST
    response.headers["Cache-Control"] = "no-store"
    return response


def _database_ok() -> bool:
    return database_problem() is None  # bounded: a hung database must not hang the probe


def _worker_ok() -> bool:
    try:
        beat_at = last_beat("runner")
    except SQLAlchemyError:
        db.session.rollback()
        return False
    stale = timedelta(seconds=current_app.config["WORKER_HEARTBEAT_STALE_SECONDS"])
    return beat_at is not None and utcnow() - beat_at <= stale


def _edge_ok() -> bool:
    from app.routing.nginx import EdgePaths, master_pid

    config = current_app.config
    if master_pid(EdgePaths(Path(config["EDGE_DIR"]).resolve())) is not None:
        return True
    # the edge may run elsewhere (another container): then its port must answer
    host = config["EDGE_BIND"]
    host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)  # noqa: S104 - a wildcard bind is reached locally
    try:
        with socket.create_connection((host, config["EDGE_PORT"]), timeout=0.5):
            return True
    except OSError:
        return False


@bp.route("/health/ready")
def ready() -> Response:
    """200 when the database, the worker's heartbeat and the edge nginx are all fine; else 503 naming them."""
    checks = {"database": _database_ok()}
    checks["worker"] = checks["database"] and _worker_ok()
    if current_app.config["READY_CHECK_EDGE"]:
        checks["edge"] = _edge_ok()
    db.session.rollback()
    failed = [name for name, ok in checks.items() if not ok]
    if failed:
        return json_response(False, "not ready: " + ", ".join(failed), checks, status=503)
    return json_response(True, "ready", checks)
