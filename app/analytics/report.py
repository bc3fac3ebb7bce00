"""What the traffic page shows, read from the rollups only: chart series and the route and user tables."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from app.analytics.charts import Chart, build_chart
from app.extensions import db
from app.models import RequestRollup, RequestUserRollup, User
from app.models.analytics import ALL

# range key → (label, span, chart bucket in minutes, and the rollup span, in minutes, that the
# chart, the route tables and the user table read: the longest that keeps the edges honest)
RANGES: dict[str, tuple[str, timedelta, int, int, int, int]] = {
    "1h": ("the last hour", timedelta(hours=1), 1, 1, 1, 1),
    "24h": ("the last 24 hours", timedelta(hours=24), 10, 1, 60, 60),
    "7d": ("the last 7 days", timedelta(days=7), 60, 60, 60, 24 * 60),
}
DEFAULT_RANGE = "1h"
TOP_ROWS = 10


@dataclass
class Traffic:
    """Everything the page renders for one range.

    The route tables cover [table_start, end) and the users [users_start, end): whole hours or
    days from the longer rollups, so they may start a little before `start`.
    """

    range_key: str
    label: str
    start: datetime
    end: datetime
    table_start: datetime
    users_start: datetime
    users_unit: str
    total: int
    errors_4xx: int
    errors_5xx: int
    charts: list[Chart]
    slowest: list[dict[str, Any]]
    errors: list[dict[str, Any]]
    users: list[dict[str, Any]]


def _floor(at: datetime, span_minutes: int) -> datetime:
    if span_minutes >= 24 * 60:
        return at.replace(hour=0, minute=0)
    return at.replace(minute=0) if span_minutes >= 60 else at


def _weighted(column: Any) -> Any:
    return func.sum(column * RequestRollup.count)


def _series(start: datetime, end: datetime, bucket_minutes: int, rollup_span: int) -> list[Chart]:
    start = _floor(start, rollup_span)
    span = end - start
    rows = db.session.execute(
        select(RequestRollup.minute, RequestRollup.count, RequestRollup.errors_4xx, RequestRollup.errors_5xx,
               RequestRollup.p50_ms, RequestRollup.p95_ms, RequestRollup.p99_ms)
        .where(RequestRollup.span_minutes == rollup_span, RequestRollup.route == ALL,
               RequestRollup.method == ALL, RequestRollup.minute >= start, RequestRollup.minute < end)
    ).all()
    buckets = -(-int(span.total_seconds() // 60) // bucket_minutes)
    # per bucket: requests, 4xx, 5xx, and count-weighted sums of p50, p95, p99
    sums = [[0.0] * 6 for _ in range(buckets)]
    for minute, count, e4, e5, p50, p95, p99 in rows:
        index = min(int((minute - start).total_seconds() // 60) // bucket_minutes, buckets - 1)
        bucket = sums[index]
        bucket[0] += count
        bucket[1] += e4
        bucket[2] += e5
        bucket[3] += p50 * count
        bucket[4] += p95 * count
        bucket[5] += p99 * count

    def per_request(n: int, scale: float = 1.0) -> list[float | None]:
        return [b[n] * scale / b[0] if b[0] else None for b in sums]

    fmt = "%H:%M" if span <= timedelta(hours=1) else "%d %b %H:%M"
    labels = (start.strftime(fmt), end.strftime(fmt))
    unit = "per minute" if bucket_minutes == 1 else f"per minute, averaged over {bucket_minutes} min"
    return [
        build_chart(f"Requests {unit}", [("Requests", "chart-cpu", [b[0] / bucket_minutes if b[0] else 0.0
                                                                   for b in sums])], "", *labels),
        build_chart("Error rate", [("5xx", "chart-disk", per_request(2, 100.0)),
                                   ("4xx", "chart-memory", per_request(1, 100.0))], "%", *labels),
        build_chart("Latency percentiles", [("p50", "chart-memory", per_request(3)),
                                            ("p95", "chart-cpu", per_request(4)),
                                            ("p99", "chart-disk", per_request(5))], " ms", *labels),
    ]


def _route_table(start: datetime, end: datetime, rollup_span: int) -> list[dict[str, Any]]:
    count = func.sum(RequestRollup.count)
    rows = db.session.execute(
        select(RequestRollup.method, RequestRollup.route, count, func.sum(RequestRollup.errors_4xx),
               func.sum(RequestRollup.errors_5xx), func.sum(RequestRollup.duration_sum_ms),
               _weighted(RequestRollup.p50_ms), _weighted(RequestRollup.p95_ms),
               _weighted(RequestRollup.p99_ms),
               func.max(RequestRollup.max_ms), func.sum(RequestRollup.bytes))
        .where(RequestRollup.span_minutes == rollup_span, RequestRollup.minute >= start,
               RequestRollup.minute < end, RequestRollup.route != ALL)
        .group_by(RequestRollup.method, RequestRollup.route)
    ).all()
    table = []
    for method, route, n, e4, e5, total_ms, w50, w95, w99, worst, size in rows:
        n = int(n)
        table.append({"method": method, "route": route, "count": n,
                      "errors_4xx": int(e4), "errors_5xx": int(e5),
                      "mean_ms": total_ms / n, "p50_ms": w50 / n, "p95_ms": w95 / n, "p99_ms": w99 / n,
                      "max_ms": worst, "bytes": int(size)})
    return table


def _user_table(start: datetime, end: datetime, rollup_span: int) -> list[dict[str, Any]]:
    u = RequestUserRollup
    in_range = (u.span_minutes == rollup_span, u.minute >= start, u.minute < end)
    # Rank on the count alone (read from the covering index), then sum the rest for the top few only.
    count = func.sum(u.count).label("n")
    top = db.session.execute(
        select(u.user_id, count).where(*in_range).group_by(u.user_id)
        .order_by(count.desc(), u.user_id).limit(TOP_ROWS)
    ).all()
    if not top:
        return []
    ids = [user_id for user_id, _ in top]
    details = {user_id: (e4, e5, size) for user_id, e4, e5, size in db.session.execute(
        select(u.user_id, func.sum(u.errors_4xx), func.sum(u.errors_5xx), func.sum(u.bytes))
        .where(*in_range, u.user_id.in_(ids)).group_by(u.user_id)
    ).all()}
    names = dict(db.session.execute(select(User.id, User.username).where(User.id.in_(ids))).all())
    return [{"user_id": user_id, "username": names.get(user_id), "count": int(n),
             "errors_4xx": int(details[user_id][0]), "errors_5xx": int(details[user_id][1]),
             "bytes": int(details[user_id][2])} for user_id, n in top]


def traffic(range_key: str, now: datetime) -> Traffic:
    """The page's figures for `range_key` (one of RANGES), ending at the last finished minute."""
    label, span, bucket_minutes, chart_span, table_span, user_span = RANGES[range_key]
    end = now.replace(second=0, microsecond=0)
    start = end - span
    table_start = _floor(start, table_span)
    users_start = _floor(start, user_span)
    routes = _route_table(table_start, end, table_span)
    slowest = sorted(routes, key=lambda r: (-r["p95_ms"], r["route"]))[:TOP_ROWS]
    errors = sorted((r for r in routes if r["errors_4xx"] or r["errors_5xx"]),
                    key=lambda r: (-r["errors_5xx"], -r["errors_4xx"], r["route"]))[:TOP_ROWS * 2]
    return Traffic(
        range_key, label, start, end, table_start, users_start,
        users_unit="days" if user_span >= 24 * 60 else "hours",
        total=sum(r["count"] for r in routes),
        errors_4xx=sum(r["errors_4xx"] for r in routes),
        errors_5xx=sum(r["errors_5xx"] for r in routes),
        charts=_series(start, end, bucket_minutes, chart_span),
        slowest=slowest, errors=errors, users=_user_table(users_start, end, user_span),
    )
