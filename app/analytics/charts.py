"""Line charts as coordinates for the SVG macro, in the style of the server charts (auto-scaled y axis)."""

from __future__ import annotations

import math

from app.chart import HEIGHT, WIDTH, Chart


def nice_ceiling(value: float) -> float:
    """The smallest 1, 2 or 5 × 10^n at or above `value` (1 for nothing to show)."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if value <= step * power:
            return float(step * power)
    return 10.0 * power


def _fmt(value: float, unit: str) -> str:
    text = f"{value:.0f}" if value >= 10 or value == int(value) else f"{value:.1f}"
    return f"{text}{unit}"


def build_chart(title: str, series: list[tuple[str, str, list[float | None]]], unit: str,
                start_label: str, end_label: str) -> Chart:
    """Scale each series (one value per bucket, None for no data) into the chart box."""
    values = [v for _, _, points in series for v in points if v is not None]
    top = nice_ceiling(max(values, default=0.0))
    lines = []
    for label, css, points in series:
        n = len(points)
        coords = [f"{(i + 0.5) * WIDTH / n:.1f},{HEIGHT - min(v, top) * HEIGHT / top:.1f}"
                  for i, v in enumerate(points) if v is not None]
        lines.append((label, css, " ".join(coords)))
    grid = [(HEIGHT - f * HEIGHT, _fmt(top * f, unit)) for f in (0, 0.5, 1)]
    samples = sum(1 for _, _, points in series[:1] for v in points if v)
    return Chart(title, WIDTH, HEIGHT, lines, grid, start_label, end_label, samples)
