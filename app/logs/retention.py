"""Log retention: entries older than their level's days (`SLIPWAY_LOG_RETENTION`) are deleted.

Deletion goes in small batches, each its own transaction, so no long lock blocks ingestion or
the explorer. The rows of a batch are picked by the `(level, id)` index and deleted by id;
their alert links go with them. The newest entry is never deleted, so SQLite cannot hand
its id out again and the rule engine's cursor stays meaningful.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Mapping
from datetime import datetime, timedelta

from flask import Flask
from sqlalchemy import delete, func, select

from app.extensions import db
from app.models import AlertEntry, LogEntry
from app.timeutil import utcnow

log = logging.getLogger(__name__)
DELETE_BATCH = 2000
MAX_BATCHES_PER_RUN = 500  # one run deletes at most a million rows; the next run continues
RUN_EVERY_SECONDS = 3600


def delete_batch(level: str, cutoff: datetime, batch: int = DELETE_BATCH) -> int:
    """Delete up to `batch` entries of `level` older than `cutoff` and commit; returns how many."""
    newest = db.session.scalar(select(func.max(LogEntry.id))) or 0
    ids = db.session.scalars(
        select(LogEntry.id).where(LogEntry.level == level, LogEntry.ts < cutoff, LogEntry.id < newest)
        .order_by(LogEntry.id).limit(batch)
    ).all()
    if not ids:
        db.session.rollback()
        return 0
    db.session.execute(delete(AlertEntry).where(AlertEntry.entry_id.in_(ids)))
    db.session.execute(delete(LogEntry).where(LogEntry.id.in_(ids)))
    db.session.commit()
    return len(ids)


def purge(now: datetime, keep_days: Mapping[str, int], batch: int = DELETE_BATCH,
          max_batches: int = MAX_BATCHES_PER_RUN) -> dict[str, int]:
    """Delete expired entries of every level in batches; returns how many per level."""
    deleted: dict[str, int] = {}
    budget = max_batches
    for level, days in keep_days.items():
        cutoff = now - timedelta(days=days)
        total = 0
        while budget > 0:
            budget -= 1
            done = delete_batch(level, cutoff, batch)
            total += done
            if done < batch:
                break
        deleted[level] = total
    return deleted


def retention_loop(app: Flask, stop: threading.Event) -> None:
    """Purge expired entries shortly after start, then about every hour, until `stop` is set."""
    delay = random.uniform(10, 60)
    while not stop.wait(delay):
        try:
            with app.app_context():
                deleted = purge(utcnow(), app.config["LOG_RETENTION_DAYS"])
            if any(deleted.values()):
                log.info("log retention deleted %s", ", ".join(f"{n} {lv}" for lv, n in deleted.items() if n))
        except Exception:  # boundary: a database outage must not end the loop
            log.exception("log retention run failed")
        delay = RUN_EVERY_SECONDS * random.uniform(0.9, 1.1)
