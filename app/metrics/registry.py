"""The process's own Prometheus metrics, and how `/metrics` gathers them.

Under gunicorn each worker process counts on its own; with `PROMETHEUS_MULTIPROC_DIR` set
(gunicorn.conf.py sets and cleans it before any worker starts) prometheus_client writes the
values to files there and a scrape adds up every process's files, so any worker answers
for all of them. Without it (the dev server, tests) the values live in this process.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector

from app.metrics.multiproc import multiproc_dir

REGISTRY = CollectorRegistry(auto_describe=True)

HTTP_REQUESTS = Counter(
    "slipway_http_requests",
    "HTTP requests answered, by route template (\"unmatched\" when no route matched), method and status.",
    ["route", "method", "status"],
    registry=REGISTRY,
)
HTTP_DURATION = Histogram(
    "slipway_http_request_duration_seconds",
    "Time from the first request hook to the response, by route template and method.",
    ["route", "method"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
    registry=REGISTRY,
)
# The request analytics increment this when their in-memory buffer is full and a row is dropped.
ANALYTICS_OVERFLOWS = Counter(
    "slipway_analytics_buffer_overflows",
    "Request analytics rows dropped because the in-memory buffer was full.",
    registry=REGISTRY,
)


class Gathered:
    """A read-only collection of collectors, the shape `generate_latest` expects."""

    def __init__(self, collectors: Iterable[object]) -> None:
        self.collectors = list(collectors)

    def collect(self) -> Iterator[Metric]:
        """Every metric of every collector, in order."""
        for collector in self.collectors:
            yield from collector.collect()  # type: ignore[attr-defined]


def process_collector() -> object:
    """What this process (or, in multiprocess mode, every process) counted."""
    directory = multiproc_dir()
    if directory:
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=directory)
        return registry
    return REGISTRY
