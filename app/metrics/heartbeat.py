"""Worker heartbeats: the runner and the poller touch their row; readiness reads it back."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from app.extensions import db
from app.models import WorkerHeartbeat
from app.timeutil import utcnow


def beat(name: str, holder: str, *, round_seconds: float | None = None,
         stats: dict[str, Any] | None = None) -> None:
    """Record that worker role `name` is alive now (and its latest figures); commits."""
    values: dict[str, Any] = {"holder": holder[:128], "beat_at": utcnow()}
    if round_seconds is not None:
        values["round_seconds"] = round_seconds
    if stats is not None:
        values["stats"] = stats
    updated = db.session.execute(
        update(WorkerHeartbeat).where(WorkerHeartbeat.name == name).values(**values)
    ).rowcount
    if not updated:
        db.session.add(WorkerHeartbeat(name=name, **values))
    try:
        db.session.commit()
    except IntegrityError:  # another worker created the row in the same instant: its beat counts
        db.session.rollback()


def last_beat(name: str) -> datetime | None:
    """When role `name` last beat, or None if it never did."""
    return db.session.scalar(select(WorkerHeartbeat.beat_at).where(WorkerHeartbeat.name == name))
