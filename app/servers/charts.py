"""Server-side SVG charts: metric rows in, coordinates out (the template draws the SVG)."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select

from app.chart import HEIGHT, WIDTH, Chart
from app.extensions import db
from app.models import ServerMetric

BUCKETS = 120
SERIES = (("cpu_percent", "CPU", "chart-cpu"), ("memory_percent", "Memory", "chart-memory"),
          ("disk_percent", "Disk", "chart-disk"))


def build_chart(server_id: int, title: str, span: timedelta, now: datetime) -> Chart:
    """Average the samples of the last `span` into buckets and scale them to the chart box."""
    start = now - span
    rows = db.session.execute(
        select(ServerMetric.at, ServerMetric.cpu_percent, ServerMetric.memory_percent,
               ServerMetric.disk_percent)
        .where(ServerMetric.server_id == server_id, ServerMetric.at >= start)
        .order_by(ServerMetric.at)
    ).all()
    step = span / BUCKETS
    sums: list[list[float]] = [[0.0, 0.0, 0.0] for _ in range(BUCKETS)]
    counts: list[list[int]] = [[0, 0, 0] for _ in range(BUCKETS)]
    for at, *values in rows:
        index = min(int((at - start) / step), BUCKETS - 1)
        for n, value in enumerate(values):
            if value is not None:
                sums[index][n] += value
                counts[index][n] += 1
    lines = []
    for n, (_, label, css) in enumerate(SERIES):
        points = []
        for index in range(BUCKETS):
            if counts[index][n]:
                x = (index + 0.5) * WIDTH / BUCKETS
                y = HEIGHT - min(max(sums[index][n] / counts[index][n], 0.0), 100.0) * HEIGHT / 100
                points.append(f"{x:.1f},{y:.1f}")
        lines.append((label, css, " ".join(points)))
    grid = [(HEIGHT - pct * HEIGHT / 100, f"{pct}%") for pct in (0, 50, 100)]
    fmt = "%H:%M" if span <= timedelta(hours=1) else "%d %b %H:%M"
    return Chart(title, WIDTH, HEIGHT, lines, grid, start.strftime(fmt), now.strftime(fmt), len(rows))
