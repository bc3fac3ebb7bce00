"""The line chart that the `chart` macro (templates/servers/_macros.html) draws, as coordinates.

Server metrics (`app/servers/charts.py`) and request analytics (`app/analytics/charts.py`) each
turn their rows into one of these; the template only draws it.
"""

from __future__ import annotations

from dataclasses import dataclass

WIDTH, HEIGHT = 600, 140  # the chart box, in SVG units


@dataclass
class Chart:
    """What the chart macro draws: polylines (one per series), grid lines and labels."""

    title: str
    width: int
    height: int
    lines: list[tuple[str, str, str]]  # (label, css class, "x,y x,y ...")
    grid: list[tuple[float, str]]  # (y, label)
    start_label: str
    end_label: str
    samples: int
