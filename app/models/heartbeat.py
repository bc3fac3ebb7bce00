"""Worker heartbeats: each worker role touches its row so readiness checks and metrics can see it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Float, String
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.timeutil import utcnow


class WorkerHeartbeat(db.Model):
    """One row per role (`runner`, `poller`): who beat last and when, plus the poller's figures.

    `stats` holds what the web app's `/metrics` shows for the worker: the poller's agent call
    errors per server name, counted since that worker process started.
    """

    __tablename__ = "worker_heartbeats"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    holder: Mapped[str] = mapped_column(String(128))
    beat_at: Mapped[datetime] = mapped_column(default=utcnow)
    round_seconds: Mapped[float | None] = mapped_column(Float)
    stats: Mapped[dict[str, Any] | None] = mapped_column(JSON)
