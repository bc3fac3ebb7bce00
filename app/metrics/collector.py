"""Figures read from the database at scrape time: a fixed handful of small GROUP BY queries.

The number of queries does not grow with the data: one per table, each answered from an
index (`ix_tasks_claim`, the status indexes, the primary key of `log_entries`).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.models import (
    ALERT_SEVERITIES,
    SERVER_STATUSES,
    TASK_STATES,
    WORKSPACE_STATUSES,
    Alert,
    LogEntry,
    Server,
    Task,
    WorkerHeartbeat,
    Workspace,
)
from app.timeutil import utcnow


def _counts(session: Session, *columns: object, where: object = None) -> dict[tuple, int]:
    query = select(*columns, func.count()).group_by(*columns)
    if where is not None:
        query = query.where(where)
    return {tuple(row[:-1]): int(row[-1]) for row in session.execute(query)}


class DatabaseCollector:
    """A custom collector: every scrape reads the current counts (nothing is cached)."""

    def __init__(self, session: Session, now: datetime | None = None) -> None:
        self.session = session
        self.now = now

    def collect(self) -> Iterator[Metric]:
        """Yield the database-derived gauges and the worker's figures."""
        now = self.now or utcnow()
        yield from self._tasks(now)
        yield from self._by_status("slipway_workspaces", "Workspaces by status.", Workspace.status,
                                   WORKSPACE_STATUSES)
        yield from self._by_status("slipway_servers", "Servers by status (as the poller last saw them).",
                                   Server.status, SERVER_STATUSES)
        yield from self._logs()
        yield from self._worker(now)

    def _tasks(self, now: datetime) -> Iterator[Metric]:
        from app.worker.kinds import HANDLERS

        tasks = GaugeMetricFamily("slipway_tasks", "Tasks by kind and state.", labels=["kind", "state"])
        counts = {(kind, state): 0 for kind in HANDLERS for state in TASK_STATES}
        counts.update(_counts(self.session, Task.kind, Task.state))
        for (kind, state), count in sorted(counts.items()):
            tasks.add_metric([kind, state], count)
        yield tasks
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

    def _by_status(self, name: str, documentation: str, column: object,
                   known: tuple[str, ...]) -> Iterator[Metric]:
        family = GaugeMetricFamily(name, documentation, labels=["status"])
        counts = dict.fromkeys(known, 0)
        counts.update({key[0]: count for key, count in _counts(self.session, column).items()})
        for status, count in sorted(counts.items()):
            family.add_metric([status], count)
        yield family

    def _logs(self) -> Iterator[Metric]:
        # ids only grow, so the highest id counts every entry ever stored (retention does not lower it)
        last_id = self.session.scalar(select(func.max(LogEntry.id))) or 0
        yield CounterMetricFamily("slipway_log_entries_ingested", "Log entries stored since installation.",
                                  value=int(last_id))
        alerts = GaugeMetricFamily("slipway_alerts_open", "Open alerts by severity.", labels=["severity"])
        counts = dict.fromkeys(ALERT_SEVERITIES, 0)
        open_counts = _counts(self.session, Alert.severity, where=Alert.state == "open")
        counts.update({key[0]: n for key, n in open_counts.items()})
        for severity, count in sorted(counts.items()):
            alerts.add_metric([severity], count)
        yield alerts

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
