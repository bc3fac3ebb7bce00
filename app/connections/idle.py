"""Idle stop: a running workspace without traffic through the edge for N minutes is stopped (never deleted).

Idle time counts from the newest of: its last activity (the connection log), when this check
first saw it running, and when its last start or provision task finished, so a workspace that
never had traffic is stopped N minutes after it started.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update

from app.extensions import db
from app.models import Task, Workspace
from app.services import workspaces as service

log = logging.getLogger(__name__)
START_KINDS = ("start", "provision")


def idle_limit(image: str, settings: Mapping[str, Any]) -> int:
    """Minutes of no activity after which a workspace of `image` is stopped (0 = never)."""
    override = settings["IDLE_STOP_IMAGE_MINUTES"].get(image)
    return settings["IDLE_STOP_MINUTES"] if override is None else override


def idle_stop_enabled(settings: Mapping[str, Any]) -> bool:
    """True when idle stop applies to at least some image."""
    return settings["IDLE_STOP_MINUTES"] > 0 or any(settings["IDLE_STOP_IMAGE_MINUTES"].values())


def idle_note(ws: Workspace, settings: Mapping[str, Any]) -> dict[str, Any]:
    """What the workspace pages say about idle stop for `ws`: its limit and whether it is exempt."""
    minutes = idle_limit(ws.image, settings)
    allowed = settings["IDLE_KEEP_RUNNING_ALLOWED"]
    return {"minutes": minutes, "allowed": allowed, "exempt": minutes <= 0 or (ws.keep_running and allowed)}


def _mark_running(now: datetime) -> None:
    since = Workspace.running_since
    db.session.execute(update(Workspace).where(Workspace.status == "running", since.is_(None))
                       .values(running_since=now).execution_options(synchronize_session=False))
    db.session.execute(update(Workspace).where(Workspace.status != "running", since.is_not(None))
                       .values(running_since=None).execution_options(synchronize_session=False))
    db.session.commit()


def _last_started(keys: list[str]) -> dict[str, datetime]:
    rows = db.session.execute(
        select(Task.lock_key, func.max(Task.finished_at))
        .where(Task.lock_key.in_(keys), Task.kind.in_(START_KINDS), Task.state == "succeeded")
        .group_by(Task.lock_key)
    )
    return {key: at for key, at in rows if at is not None}


def idle_since(ws: Workspace, started: datetime | None) -> datetime:
    """The moment `ws` was last known to be in use (or started)."""
    moments = [at for at in (ws.last_activity_at, ws.running_since, started) if at is not None]
    return max(moments) if moments else ws.updated_at


def check_idle(now: datetime, settings: Mapping[str, Any]) -> list[str]:
    """Queue the stop of every running workspace idle past its limit; returns their usernames."""
    if not idle_stop_enabled(settings):
        return []
    _mark_running(now)
    running = db.session.scalars(select(Workspace).where(Workspace.status == "running")).all()
    started = _last_started([ws.lock_key for ws in running]) if running else {}
    stopped: list[str] = []
    for ws in running:
        minutes = idle_limit(ws.image, settings)
        if minutes <= 0 or (ws.keep_running and settings["IDLE_KEEP_RUNNING_ALLOWED"]):
            continue
        since = idle_since(ws, started.get(ws.lock_key))
        if now - since < timedelta(minutes=minutes):
            continue
        try:
            service.stop_idle(ws, minutes, since)
        except service.WorkspaceError as exc:
            db.session.rollback()
            log.info("idle stop of %s skipped: %s", ws.username, exc)
            continue
        db.session.commit()
        stopped.append(ws.username)
        log.info("queued the stop of %s: idle since %s (limit %d min)", ws.username, since, minutes)
    return stopped
