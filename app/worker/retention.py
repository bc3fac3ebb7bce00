"""Task retention: finished tasks older than `TASK_KEEP_DAYS` move, with their events, to the archive.

The hot tables (`tasks`, `task_events`) then hold only recent history, so the claim query and
the task pages stay fast after a year of use. Each batch is one transaction: copy the rows into
`tasks_archive` / `task_events_archive`, then delete them from the hot tables. A crash leaves
either the whole batch moved or none of it; two workers racing on one batch collide on the
archive's primary key and the loser rolls back, so running the job again is always safe.
The same run deletes build contexts older than `TASK_KEEP_DAYS` (kept for a Retry of a build
whose agent stopped answering, and never retried).
"""

from __future__ import annotations

import logging
import random
import threading
from datetime import datetime, timedelta

from flask import Flask
from sqlalchemy import delete, func, insert, literal, select
from sqlalchemy.exc import IntegrityError

from app.extensions import db
from app.images.uploads import remove_stale_contexts
from app.models import ArchivedTask, ArchivedTaskEvent, Task, TaskEvent
from app.models.task import FINISHED_STATES
from app.models.task_archive import ARCHIVED_EVENT_COLUMNS, ARCHIVED_TASK_COLUMNS
from app.timeutil import utcnow

log = logging.getLogger(__name__)
ARCHIVE_BATCH = 500
ARCHIVE_EVERY_SECONDS = 3600
MAX_BATCHES_PER_RUN = 200  # bounds one run to 100,000 tasks; the next run continues


def archive_batch(now: datetime, keep_days: int, batch: int = ARCHIVE_BATCH) -> int:
    """Move up to `batch` finished tasks older than `keep_days` to the archive; returns how many.

    The newest task is never moved: SQLite would otherwise hand its id out again once the
    table's highest row is gone, and two tasks would share an id.
    """
    cutoff = now - timedelta(days=keep_days)
    newest = select(func.max(Task.id)).scalar_subquery()
    ids = db.session.scalars(
        select(Task.id)
        .where(Task.finished_at < cutoff, Task.state.in_(FINISHED_STATES), Task.id < newest)
        .order_by(Task.finished_at, Task.id)
        .limit(batch)
    ).all()
    if not ids:
        db.session.rollback()
        return 0
    task_columns = [getattr(Task, name) for name in ARCHIVED_TASK_COLUMNS]
    db.session.execute(
        insert(ArchivedTask).from_select(
            [*ARCHIVED_TASK_COLUMNS, "archived_at"],
            select(*task_columns, literal(now, type_=ArchivedTask.archived_at.type)).where(Task.id.in_(ids)),
        )
    )
    event_columns = [getattr(TaskEvent, name) for name in ARCHIVED_EVENT_COLUMNS]
    db.session.execute(
        insert(ArchivedTaskEvent).from_select(
            list(ARCHIVED_EVENT_COLUMNS), select(*event_columns).where(TaskEvent.task_id.in_(ids))
        )
    )
    db.session.execute(delete(TaskEvent).where(TaskEvent.task_id.in_(ids)))
    db.session.execute(delete(Task).where(Task.id.in_(ids), Task.state.in_(FINISHED_STATES)))
    db.session.commit()
    return len(ids)


def archive_finished(now: datetime, keep_days: int, batch: int = ARCHIVE_BATCH) -> int:
    """Archive in batches until nothing is left (or the per-run bound is hit); returns the total."""
    total = 0
    for _ in range(MAX_BATCHES_PER_RUN):
        try:
            moved = archive_batch(now, keep_days, batch)
        except IntegrityError:  # another worker archived this batch first
            db.session.rollback()
            log.info("task archive batch taken by another worker; stopping this run")
            break
        total += moved
        if moved < batch:
            break
    return total


def retention_loop(app: Flask, stop: threading.Event) -> None:
    """Archive old tasks shortly after start, then about every hour, until `stop` is set."""
    delay = random.uniform(5, 30)  # not at the very start, and not in step with other workers
    while not stop.wait(delay):
        try:
            with app.app_context():
                moved = archive_finished(utcnow(), app.config["TASK_KEEP_DAYS"])
                remove_stale_contexts(timedelta(days=app.config["TASK_KEEP_DAYS"]))
            if moved:
                log.info("archived %d finished tasks older than %d days", moved, app.config["TASK_KEEP_DAYS"])
        except Exception:  # boundary: a database outage must not end the loop
            log.exception("task archive run failed")
        delay = ARCHIVE_EVERY_SECONDS * random.uniform(0.9, 1.1)
