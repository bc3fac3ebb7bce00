"""Durable tasks: every side effect on another system is a row that a worker claims and runs."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db
from app.timeutil import utcnow

TASK_STATES = ("queued", "running", "succeeded", "failed", "cancelled")
FINISHED_STATES = frozenset({"succeeded", "failed", "cancelled"})

# Claim order is priority (lowest number first), then due time, then id.
PRIORITY_INTERACTIVE = 10  # someone is waiting for it: workspace provision/start/stop, a connection test
PRIORITY_NORMAL = 50
PRIORITY_BACKGROUND = 90  # nobody waits: reconcile passes, image pulls and pushes, the first-run image build


class Task(db.Model):
    """One unit of background work: `queued → running → succeeded | failed | cancelled`.

    `active_lock` holds `lock_key` while the task is queued or running and NULL after;
    its unique index lets only one in-flight task per lock (e.g. per workspace) exist,
    on SQLite and MariaDB alike (both allow many NULLs in a unique index).
    """

    __tablename__ = "tasks"
    __table_args__ = (
        Index("ix_tasks_claim", "state", "priority", "run_after", "id"),
        Index("ix_tasks_finished_at", "finished_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(32), index=True)
    target: Mapped[str | None] = mapped_column(String(128), index=True)
    requested_by: Mapped[str | None] = mapped_column(String(255), index=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(16), default="queued")
    message: Mapped[str] = mapped_column(String(1000), default="")
    progress: Mapped[int] = mapped_column(default=0)
    attempts: Mapped[int] = mapped_column(default=0)
    max_attempts: Mapped[int] = mapped_column(default=3)
    priority: Mapped[int] = mapped_column(default=PRIORITY_NORMAL)
    lock_key: Mapped[str | None] = mapped_column(String(128))
    active_lock: Mapped[str | None] = mapped_column(String(128), unique=True)
    cancel_requested: Mapped[bool] = mapped_column(default=False)
    run_after: Mapped[datetime] = mapped_column(default=utcnow)
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    lease_expires_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]

    events: Mapped[list[TaskEvent]] = relationship(
        back_populates="task", cascade="all, delete-orphan", order_by="TaskEvent.id"
    )

    archived = False

    @property
    def is_finished(self) -> bool:
        """True once the task reached a final state."""
        return self.state in FINISHED_STATES


class TaskEvent(db.Model):
    """An append-only log line of a task, read by its page and its WebSocket stream."""

    __tablename__ = "task_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"), index=True)
    level: Mapped[str] = mapped_column(String(16), default="info")
    message: Mapped[str] = mapped_column(Text)
    progress: Mapped[int | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    task: Mapped[Task] = relationship(back_populates="events")

    def as_dict(self) -> dict[str, Any]:
        """The event as the stream sends it."""
        return {
            "id": self.id,
            "level": self.level,
            "message": self.message,
            "progress": self.progress,
            "at": self.created_at.strftime("%H:%M:%S"),
        }
