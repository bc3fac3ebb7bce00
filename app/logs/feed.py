"""Slipway's own outcomes as log entries: one per finished task (audit rows feed themselves)."""

from __future__ import annotations

from app.logs.store import add_entries
from app.models import Task

LEVELS = {"failed": "error", "cancelled": "warning"}


def add_task_outcome(task: Task | None, state: str, message: str) -> None:
    """Add the `task.<state>` entry of a finished task to the caller's transaction."""
    if task is None:
        return
    add_entries([{
        "source": "task", "category": f"task.{state}", "level": LEVELS.get(state, "info"),
        "username": task.requested_by,
        "message": " ".join(filter(None, (task.kind, task.target, f"{state}: {message}")))[:4000],
        "fields": {"kind": task.kind, "target": task.target, "task_id": task.id},
    }])
