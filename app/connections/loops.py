"""The worker's connection-log threads: tail the edge's access log, check for idle workspaces."""

from __future__ import annotations

import logging
import random
import threading
import time
from datetime import timedelta

from flask import Flask
from sqlalchemy import delete, select

from app.connections.idle import check_idle, idle_stop_enabled
from app.connections.ingest import ingest_available
from app.connections.tailer import Tailer
from app.extensions import db
from app.models import ConnectionSession
from app.routing.edge_server import access_log_path
from app.timeutil import utcnow

log = logging.getLogger(__name__)
PRUNE_EVERY_SECONDS = 3600
PRUNE_BATCH = 5000


def prune_sessions(keep_days: int) -> int:
    """Delete one batch of sessions that ended more than `keep_days` ago; returns how many."""
    cutoff = utcnow() - timedelta(days=keep_days)
    ids = db.session.scalars(
        select(ConnectionSession.id).where(ConnectionSession.last_at < cutoff).limit(PRUNE_BATCH)
    ).all()
    if ids:
        db.session.execute(delete(ConnectionSession).where(ConnectionSession.id.in_(ids)))
    db.session.commit()
    return len(ids)


def tail_loop(app: Flask, stop: threading.Event) -> None:
    """Ingest the edge's access log every CONNECTION_TAIL_SECONDS until `stop` is set."""
    cfg = app.config
    tailer = Tailer(access_log_path(cfg))
    gap = timedelta(minutes=cfg["CONNECTION_SESSION_GAP_MINUTES"])
    pruned_at = time.monotonic()
    try:
        while not stop.wait(cfg["CONNECTION_TAIL_SECONDS"]):
            try:
                with app.app_context():
                    ingest_available(tailer, cfg["WORKSPACE_DOMAIN"], gap,
                                     cursor_name=cfg["CONNECTION_TAIL_NAME"])
                    if time.monotonic() - pruned_at > PRUNE_EVERY_SECONDS:
                        pruned_at = time.monotonic()
                        prune_sessions(cfg["CONNECTION_KEEP_DAYS"])
            except Exception:  # boundary: a database outage or an unreadable file must not end the loop
                log.exception("connection log round failed")
    finally:
        tailer.close()


def idle_loop(app: Flask, stop: threading.Event) -> None:
    """Stop idle workspaces every IDLE_CHECK_SECONDS (jittered) while idle stop is on."""
    every = app.config["IDLE_CHECK_SECONDS"]
    while not stop.wait(every * random.uniform(0.9, 1.1)):
        if not idle_stop_enabled(app.config):
            continue
        try:
            with app.app_context():
                check_idle(utcnow(), app.config)
        except Exception:  # boundary: one failed round must not end the loop
            log.exception("idle check failed")
