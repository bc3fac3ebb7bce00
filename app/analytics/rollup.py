"""Per-minute and per-hour rollups from raw request rows, and the retention of both; run by the worker.

A minute is rolled up only once it is over (plus a short settle time for buffers still in
flight), and always recomputed whole: its rollup rows are deleted and written again in one
transaction, so running the job twice, or on two workers, gives the same rows. Each run also
recomputes the last few minutes already rolled up, which picks up rows that arrived late.
The hour rows of the hours touched (from their minute rows) and the day rows of the days
touched (from their hour rows) are recomputed in the same transaction, so pages over a day
or a week read a few thousand rows, not a week of minutes.
"""

from __future__ import annotations

import logging
import math
import random
import threading
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from flask import Flask
from sqlalchemy import delete, func, insert, literal, select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from app.extensions import db
from app.models import RequestLog, RequestRollup, RequestUserRollup
from app.models.analytics import ALL
from app.timeutil import utcnow

log = logging.getLogger(__name__)
SETTLE_SECONDS = 10  # a row reaches the table within about two flush intervals of its request
OVERLAP_MINUTES = 2
CHUNK_MINUTES = 10
MAX_CHUNKS_PER_RUN = 6 * 24  # one day of backlog per run; the next run continues
PURGE_BATCH = 5000
HOUR, DAY = 60, 24 * 60  # the longer spans, in minutes
MAX_PURGE_BATCHES = 100


def floor_minute(at: datetime) -> datetime:
    """`at` with seconds and microseconds cut off."""
    return at.replace(second=0, microsecond=0)


def percentile(ordered: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile of an ascending, non-empty sequence."""
    rank = max(math.ceil(fraction * len(ordered)), 1)
    return ordered[rank - 1]


class _Group:
    __slots__ = ("durations", "errors_4xx", "errors_5xx", "bytes")

    def __init__(self) -> None:
        self.durations: list[float] = []
        self.errors_4xx = 0
        self.errors_5xx = 0
        self.bytes = 0

    def add(self, status: int, duration: float, size: int) -> None:
        self.durations.append(duration)
        self.errors_4xx += 400 <= status < 500
        self.errors_5xx += status >= 500
        self.bytes += size

    def route_row(self, minute: datetime, method: str, route: str) -> dict[str, Any]:
        ordered = sorted(self.durations)
        return {"span_minutes": 1, "minute": minute, "method": method, "route": route, "count": len(ordered),
                "errors_4xx": self.errors_4xx, "errors_5xx": self.errors_5xx, "bytes": self.bytes,
                "duration_sum_ms": sum(ordered), "p50_ms": percentile(ordered, 0.50),
                "p95_ms": percentile(ordered, 0.95), "p99_ms": percentile(ordered, 0.99),
                "max_ms": ordered[-1]}

    def user_row(self, minute: datetime, user_id: int) -> dict[str, Any]:
        return {"span_minutes": 1, "minute": minute, "user_id": user_id, "count": len(self.durations),
                "errors_4xx": self.errors_4xx, "errors_5xx": self.errors_5xx, "bytes": self.bytes}


def summarise(rows: Iterable[tuple[datetime, str, str, int, float, int, int | None]]) -> tuple[list, list]:
    """Group raw (at, method, route, status, ms, bytes, user id) tuples into route and user rollup rows."""
    routes: dict[tuple[datetime, str, str], _Group] = defaultdict(_Group)
    users: dict[tuple[datetime, int], _Group] = defaultdict(_Group)
    for at, method, route, status, duration, size, user_id in rows:
        minute = floor_minute(at)
        routes[(minute, method, route)].add(status, duration, size)
        routes[(minute, ALL, ALL)].add(status, duration, size)
        if user_id is not None:
            users[(minute, user_id)].add(status, duration, size)
    return ([group.route_row(*key) for key, group in routes.items()],
            [group.user_row(*key) for key, group in users.items()])


def _rollup_period(start: datetime, span_minutes: int, source_span: int) -> None:
    """Recompute the `span_minutes` rows starting at `start` from the shorter `source_span` rows inside it.

    Counts, errors and bytes are summed, the maximum kept, and percentiles become the
    request-weighted mean of the source rows' percentiles.
    """
    end = start + timedelta(minutes=span_minutes)
    r, u = RequestRollup, RequestUserRollup
    for model in (r, u):
        db.session.execute(delete(model).where(model.span_minutes == span_minutes, model.minute == start))
    n = func.sum(r.count)
    at = literal(start, type_=r.minute.type)
    db.session.execute(insert(r).from_select(
        ["span_minutes", "minute", "method", "route", "count", "errors_4xx", "errors_5xx", "bytes",
         "duration_sum_ms", "p50_ms", "p95_ms", "p99_ms", "max_ms"],
        select(literal(span_minutes), at, r.method, r.route, n, func.sum(r.errors_4xx),
               func.sum(r.errors_5xx), func.sum(r.bytes), func.sum(r.duration_sum_ms),
               func.sum(r.p50_ms * r.count) / n, func.sum(r.p95_ms * r.count) / n,
               func.sum(r.p99_ms * r.count) / n, func.max(r.max_ms))
        .where(r.span_minutes == source_span, r.minute >= start, r.minute < end)
        .group_by(r.method, r.route)))
    db.session.execute(insert(u).from_select(
        ["span_minutes", "minute", "user_id", "count", "errors_4xx", "errors_5xx", "bytes"],
        select(literal(span_minutes), at, u.user_id, func.sum(u.count), func.sum(u.errors_4xx),
               func.sum(u.errors_5xx), func.sum(u.bytes))
        .where(u.span_minutes == source_span, u.minute >= start, u.minute < end)
        .group_by(u.user_id)))


def rollup_range(start: datetime, end: datetime) -> int:
    """Recompute the rollups of every minute in [start, end) from the raw rows; returns route rows written."""
    raw = db.session.execute(
        select(RequestLog.at, RequestLog.method, RequestLog.route, RequestLog.status, RequestLog.duration_ms,
               RequestLog.response_bytes, RequestLog.user_id)
        .where(RequestLog.at >= start, RequestLog.at < end)
    ).all()
    route_rows, user_rows = summarise(raw)
    for model in (RequestRollup, RequestUserRollup):
        db.session.execute(
            delete(model).where(model.span_minutes == 1, model.minute >= start, model.minute < end))
    if route_rows:
        db.session.execute(insert(RequestRollup), route_rows)
    if user_rows:
        db.session.execute(insert(RequestUserRollup), user_rows)
    hour = start.replace(minute=0, second=0, microsecond=0)
    while hour < end:
        _rollup_period(hour, HOUR, 1)
        hour += timedelta(hours=1)
    day = start.replace(hour=0, minute=0, second=0, microsecond=0)
    while day < end:
        _rollup_period(day, DAY, HOUR)
        day += timedelta(days=1)
    db.session.commit()
    return len(route_rows)


def rollup_pending(now: datetime) -> int:
    """Roll up the finished minutes not yet rolled up (and re-do the last few); returns minutes touched."""
    end = floor_minute(now - timedelta(seconds=SETTLE_SECONDS))
    last = db.session.scalar(select(func.max(RequestRollup.minute)).where(RequestRollup.span_minutes == 1))
    cursor = last - timedelta(minutes=OVERLAP_MINUTES) if last else None
    touched = 0
    for _ in range(MAX_CHUNKS_PER_RUN):
        query = select(func.min(RequestLog.at)).where(RequestLog.at < end)
        if cursor is not None:
            query = query.where(RequestLog.at >= cursor)
        first = db.session.scalar(query)
        if first is None:
            break
        start = floor_minute(first)
        stop = min(start + timedelta(minutes=CHUNK_MINUTES), end)
        rollup_range(start, stop)
        touched += int((stop - start).total_seconds() // 60)
        cursor = stop
    db.session.rollback()
    return touched


def _purge(model: Any, column: Any, cutoff: datetime) -> int:
    total = 0
    for _ in range(MAX_PURGE_BATCHES):
        ids = db.session.scalars(select(model.id).where(column < cutoff).limit(PURGE_BATCH)).all()
        if not ids:
            break
        db.session.execute(delete(model).where(model.id.in_(ids)))
        db.session.commit()
        total += len(ids)
    db.session.rollback()
    return total


def purge_old(now: datetime, raw_days: int, rollup_days: int) -> int:
    """Delete raw rows older than `raw_days` and rollups older than `rollup_days`; returns rows deleted."""
    total = _purge(RequestLog, RequestLog.at, now - timedelta(days=raw_days))
    for model in (RequestRollup, RequestUserRollup):
        total += _purge(model, model.minute, now - timedelta(days=rollup_days))
    return total


def run_once(app: Flask, now: datetime | None = None) -> int:
    """One round of the job inside its own app context: roll up, then purge."""
    with app.app_context():
        now = now or utcnow()
        try:
            touched = rollup_pending(now)
        except IntegrityError:  # another worker wrote the same minute first; the next round re-does it
            db.session.rollback()
            touched = 0
        purge_old(now, app.config["ANALYTICS_RAW_DAYS"], app.config["ANALYTICS_ROLLUP_DAYS"])
        return touched


def rollup_loop(app: Flask, stop: threading.Event) -> None:
    """Run the job about every ANALYTICS_ROLLUP_SECONDS until `stop` is set."""
    delay = random.uniform(1, 5)
    while not stop.wait(delay):
        try:
            run_once(app)
        except SQLAlchemyError:  # boundary: a database outage must not end the loop
            log.exception("request analytics rollup failed")
        delay = app.config["ANALYTICS_ROLLUP_SECONDS"] * random.uniform(0.9, 1.1)
