"""Queue, inspect and cancel tasks. The worker's runner executes them."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app.extensions import db
from app.models import Task, TaskEvent
from app.timeutil import utcnow
from app.worker.kinds import HANDLERS


class TaskConflict(RuntimeError):
    """Another task holding the same lock is still queued or running."""


def in_flight(lock_key: str) -> Task | None:
    """The queued or running task holding `lock_key`, if any."""
    return db.session.scalar(select(Task).where(Task.active_lock == lock_key))


def enqueue(
    kind: str,
    *,
    target: str | None = None,
    requested_by: str | None = None,
    payload: dict[str, Any] | None = None,
    lock_key: str | None = None,
    priority: int | None = None,
) -> Task:
    """Add a queued task to the session (the caller commits with its other changes).

    With `lock_key`, refuses with `TaskConflict` while another task holds that lock.
    `priority` overrides the kind's registered priority (lower is claimed first).
    """
    if kind not in HANDLERS:
        raise KeyError(f"unknown task kind {kind!r}")
    if lock_key and (holder := in_flight(lock_key)) is not None:
        raise TaskConflict(f"task #{holder.id} ({holder.kind}) is still {holder.state}")
    task = Task(
        kind=kind,
        target=target,
        requested_by=requested_by,
        payload=payload or {},
        max_attempts=HANDLERS[kind].max_attempts,
        priority=HANDLERS[kind].priority if priority is None else priority,
        lock_key=lock_key,
        active_lock=lock_key,
        state="queued",
    )
    db.session.add(task)
    db.session.add(TaskEvent(task=task, message=f"queued by {requested_by or 'system'}"))
    if lock_key:
        try:
            db.session.flush()
        except IntegrityError as exc:
            db.session.rollback()
            raise TaskConflict("another task for the same object was queued just now") from exc
    return task


def cancel(task: Task, username: str) -> bool:
    """Cancel a queued task at once, or ask a running one to stop. False if already finished."""
    if task.is_finished:
        return False
    if task.state == "queued":
        task.state = "cancelled"
        task.finished_at = utcnow()
        task.active_lock = None
        task.message = f"cancelled by {username}"
    else:
        task.cancel_requested = True
    db.session.add(TaskEvent(task_id=task.id, level="warning", message=f"cancel requested by {username}"))
    return True


def retry(task: Task, username: str) -> Task:
    """Queue a fresh copy of a failed or cancelled task."""
    if task.state not in ("failed", "cancelled"):
        raise TaskConflict("only failed or cancelled tasks can be retried")
    return enqueue(
        task.kind,
        target=task.target,
        requested_by=username,
        payload=task.payload,
        lock_key=task.lock_key,
        priority=task.priority,
    )
