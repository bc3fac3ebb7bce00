"""Waiting for a bench's queued tasks (inside an app context): done, or a failed one raised."""

from __future__ import annotations

import time

from sqlalchemy import select

from app.extensions import db
from app.models import Task


def wait_tasks(timeout: float, ids: list[int] | None = None, poll: float = 0.5) -> None:
    """Wait until the given (or all) tasks finished, re-reading every `poll` s; fail on a failed one."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        db.session.rollback()  # end the read transaction: each round sees the worker's latest commits
        stmt = select(Task)
        if ids:
            stmt = stmt.where(Task.id.in_(ids))
        tasks = db.session.scalars(stmt).all()
        failed = [t for t in tasks if t.state == "failed"]
        if failed:
            raise RuntimeError(f"task {failed[0].kind} {failed[0].target} failed: {failed[0].message}")
        if all(t.is_finished for t in tasks):
            return
        time.sleep(poll)
    raise RuntimeError(f"tasks did not finish within {timeout:.0f} s")
