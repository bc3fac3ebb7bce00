"""Finished tasks past the retention period, moved out of the hot tables with their events.

Rows keep their ids, so `/tasks/<id>` still finds an archived task; the task list shows them
under its "archived" tab. Only the archive job in the worker writes here.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db
from app.timeutil import utcnow

# The columns copied from `tasks` / `task_events` (the archive tables name them the same).
ARCHIVED_TASK_COLUMNS = (
    "id", "kind", "target", "requested_by", "payload", "result", "state", "message", "progress",
    "attempts", "max_attempts", "priority", "lock_key", "created_at", "started_at", "finished_at",
)
ARCHIVED_EVENT_COLUMNS = ("id", "task_id", "level", "message", "progress", "created_at")


class ArchivedTask(db.Model):
    """A finished task as it was when archived; read like a `Task` by the task pages."""

    __tablename__ = "tasks_archive"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    kind: Mapped[str] = mapped_column(String(32), index=True)
    target: Mapped[str | None] = mapped_column(String(128))
    requested_by: Mapped[str | None] = mapped_column(String(255), index=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(16), index=True)
    message: Mapped[str] = mapped_column(String(1000))
    progress: Mapped[int]
    attempts: Mapped[int]
    max_attempts: Mapped[int]
    priority: Mapped[int]
    lock_key: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    archived_at: Mapped[datetime] = mapped_column(default=utcnow)

    events: Mapped[list[ArchivedTaskEvent]] = relationship(
        back_populates="task", cascade="all, delete-orphan", order_by="ArchivedTaskEvent.id"
    )

    archived = True
    is_finished = True


class ArchivedTaskEvent(db.Model):
    """A log line of an archived task."""

    __tablename__ = "task_events_archive"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    task_id: Mapped[int] = mapped_column(ForeignKey("tasks_archive.id", ondelete="CASCADE"), index=True)
    level: Mapped[str] = mapped_column(String(16))
    message: Mapped[str] = mapped_column(Text)
    progress: Mapped[int | None]
    created_at: Mapped[datetime]

    task: Mapped[ArchivedTask] = relationship(back_populates="events")
