"""Figures read from the database at scrape time: a fixed handful of small GROUP BY queries.

The number of queries does not grow with the data, and each part is answered from an index:
the status indexes of `workspaces` and `servers`, the claim index's `state` prefix for tasks in
flight, `finished_at` for recently finished tasks, the primary key of `log_entries`. The counts
travel in one UNION ALL round trip, so a scrape waits on the database three times in all.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from datetime import datetime, timedelta

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from sqlalchemy import String, func, literal, select, union_all
from sqlalchemy.orm import Session

from app.models import (
    ALERT_SEVERITIES,
    FINISHED_STATES,
    SERVER_STATUSES,
    WORKSPACE_STATUSES,
    Alert,
    LogEntry,
    Server,
    Task,
    WorkerHeartbeat,
    Workspace,
)
from app.timeutil import utcnow

LIVE_STATES = ("queued", "running")


def _part(name: str, first: object, second: object, where: object = None):  # noqa: ANN202 - a Select
    """One GROUP BY of the combined query: (part name, first key, second key, count)."""
    keys = [key for key in (first, second) if key is not None]
    query = select(literal(name, String).label("part"),
                   (first if first is not None else literal("", String)).label("a"),
                   (second if second is not None else literal("", String)).label("b"),
                   func.count().label("n"))
    if keys:
        query = query.group_by(*keys)
    return query.where(where) if where is not None else query


class DatabaseCollector:
    """A custom collector: every scrape reads the current counts (nothing is cached)."""

    def __init__(self, session: Session, now: datetime | None = None) -> None:
        self.session = session
        self.now = now

    def collect(self) -> Iterator[Metric]:
        """Yield the database-derived gauges and the worker's figures."""
        from app.worker.kinds import HANDLERS

        now = self.now or utcnow()
        counts = self._counts(now)
        kinds = sorted(set(HANDLERS) | {key[0] for key in [*counts["live"], *counts["finished"]]})
        yield self._family("slipway_tasks", "Tasks queued or running, by kind and state.", ["kind", "state"],
                           {(kind, state): 0 for kind in kinds for state in LIVE_STATES}, counts["live"])
        # finished tasks pile up for SLIPWAY_TASK_KEEP_DAYS: counted over the last hour only,
        # so a scrape costs the same after a month as on the first day
        yield self._family("slipway_tasks_finished_last_hour",
                           "Tasks that finished in the last hour, by kind and final state.",
                           ["kind", "state"],
                           {(kind, state): 0 for kind in kinds for state in sorted(FINISHED_STATES)},
                           counts["finished"])
        yield from self._queue(now)
        yield self._family("slipway_workspaces", "Workspaces by status.", ["status"],
                           {(status,): 0 for status in WORKSPACE_STATUSES}, counts["workspaces"])
        yield self._family("slipway_servers", "Servers by status (as the poller last saw them).", ["status"],
                           {(status,): 0 for status in SERVER_STATUSES}, counts["servers"])
        yield self._family("slipway_alerts_open", "Open alerts by severity.", ["severity"],
                           {(severity,): 0 for severity in ALERT_SEVERITIES}, counts["alerts"])
        # ids only grow, so the highest id counts every entry ever stored (retention does not lower it)
        last_id = sum(counts["log"].values())
        yield CounterMetricFamily("slipway_log_entries_ingested", "Log entries stored since installation.",
                                  value=last_id)
        yield from self._worker(now)

    def _counts(self, now: datetime) -> dict[str, dict[tuple, int]]:
        query = union_all(
            _part("live", Task.kind, Task.state, Task.state.in_(LIVE_STATES)),
            _part("finished", Task.kind, Task.state, Task.finished_at >= now - timedelta(hours=1)),
            _part("workspaces", Workspace.status, None),
            _part("servers", Server.status, None),
            _part("alerts", Alert.severity, None, Alert.state == "open"),
            select(literal("log", String), literal("", String), literal("", String),
                   func.coalesce(func.max(LogEntry.id), 0)),
        )
        found: dict[str, dict[tuple, int]] = defaultdict(dict)
        for part, first, second, count in self.session.execute(query):
            key = (first, second) if part in ("live", "finished") else (first,)
            found[part][key] = int(count or 0)
        return found

    @staticmethod
    def _family(name: str, documentation: str, labels: list[str], zeros: dict[tuple, int],
                counts: dict[tuple, int]) -> GaugeMetricFamily:
        family = GaugeMetricFamily(name, documentation, labels=labels)
        for key, count in sorted({**zeros, **counts}.items()):
            family.add_metric(list(key), count)
        return family

    def _queue(self, now: datetime) -> Iterator[Metric]:
        depth, oldest = self.session.execute(
            select(func.count(), func.min(Task.run_after))
            .where(Task.state == "queued", Task.run_after <= now)
        ).one()
        yield GaugeMetricFamily("slipway_task_queue_depth", "Queued tasks that are due to run now.",
                                value=int(depth))
        age = max((now - oldest).total_seconds(), 0.0) if oldest is not None else 0.0
        yield GaugeMetricFamily("slipway_task_queue_oldest_age_seconds",
                                "How long the oldest due queued task has been waiting (0 when none).",
                                value=age)

    def _worker(self, now: datetime) -> Iterator[Metric]:
        beats = {row.name: row for row in self.session.scalars(select(WorkerHeartbeat))}
        age = GaugeMetricFamily("slipway_worker_heartbeat_age_seconds",
                                "Seconds since each worker role last beat.", labels=["role"])
        for name, row in sorted(beats.items()):
            age.add_metric([name], max((now - row.beat_at).total_seconds(), 0.0))
        yield age
        poller = beats.get("poller")
        if poller is not None and poller.round_seconds is not None:
            yield GaugeMetricFamily("slipway_poll_round_duration_seconds",
                                    "Wall time of the poller's last round over every server.",
                                    value=poller.round_seconds)
        errors = CounterMetricFamily("slipway_agent_call_errors",
                                     "Failed agent probes per server since the polling worker started.",
                                     labels=["server"])
        per_server = ((poller.stats or {}).get("agent_errors") or {}) if poller is not None else {}
        for server, count in sorted(per_server.items()):
            errors.add_metric([str(server)], int(count))
        yield errors
