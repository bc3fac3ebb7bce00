"""Servers: probe an agent, apply a poll outcome (status hysteresis, audit, metrics), retention.

A poll has one of four outcomes: "ok" (stats read), "degraded" (the agent answered but
could not serve stats, e.g. Docker down or a refused signature), "timeout" and
"unreachable". Status moves to offline only after `POLL_FAILURES_OFFLINE` failures in a
row and back to online only after `POLL_SUCCESSES_ONLINE` answers in a row, so one lost
packet does not flap it; every change is audited.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select

from app.agent_client import AgentClient, AgentError, AgentUnavailable
from app.extensions import db
from app.models import Server, ServerMetric
from app.services import audit

FAILURE_OUTCOMES = frozenset({"timeout", "unreachable"})
HOURLY = 3600
MAX_CONTAINERS = 200


@dataclass
class Outcome:
    """What one probe of one agent found."""

    kind: str  # ok | degraded | timeout | unreachable
    stats: dict[str, Any] = field(default_factory=dict)
    error: str = ""
    seconds: float = 0.0


def probe(client: AgentClient) -> Outcome:
    """Ask one agent for its stats; never raises for an agent problem (bounded by the client's timeouts)."""
    started = time.monotonic()
    try:
        stats = client.system_stats()
    except AgentUnavailable as exc:
        if exc.status is not None:
            kind = "degraded"
        else:
            kind = "timeout" if exc.timed_out else "unreachable"
        # the server's own row and log entries name it already: the reason alone reads best there
        return Outcome(kind, error=exc.reason, seconds=time.monotonic() - started)
    except AgentError as exc:
        message = "the agent refused our signature (check the token)" if exc.status == 401 else exc.message
        return Outcome("degraded", error=message, seconds=time.monotonic() - started)
    if not isinstance(stats, dict):
        return Outcome("degraded", error="agent sent stats in an unexpected shape")
    remaining = client.timeout[1] - (time.monotonic() - started)
    if remaining > 0.2:  # the container list shares the same time budget as the stats call
        client.timeout = (client.timeout[0], remaining)
        try:
            containers = client.list_containers()
        except AgentError as exc:
            stats["managed_containers_error"] = exc.message
        else:
            stats["managed_containers"] = [
                {key: item.get(key) for key in ("id", "name", "image", "status", "ports", "created")}
                for item in containers[:MAX_CONTAINERS] if isinstance(item, dict)
            ]
    return Outcome("ok", stats=stats, seconds=time.monotonic() - started)


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _store_figures(server: Server, stats: dict[str, Any], now: datetime) -> ServerMetric:
    memory = stats.get("memory") if isinstance(stats.get("memory"), dict) else {}
    disk = stats.get("disk") if isinstance(stats.get("disk"), dict) else {}
    containers = stats.get("containers") if isinstance(stats.get("containers"), dict) else {}
    server.cpu_percent = _number(stats.get("cpu_percent"))
    server.memory_percent = _number(memory.get("percent"))
    server.disk_percent = _number(disk.get("percent"))
    running = _number(containers.get("running"))
    total = _number(containers.get("total"))
    server.containers_running = int(running) if running is not None else None
    server.containers_total = int(total) if total is not None else None
    cores = _number(stats.get("cpu_count"))
    server.cpu_cores = cores if cores is not None else server.cpu_cores
    mem_total = _number(memory.get("total"))
    server.memory_total = int(mem_total) if mem_total is not None else server.memory_total
    server.stats = stats
    server.last_seen_at = now
    return ServerMetric(
        server_id=server.id, at=now, cpu_percent=server.cpu_percent, memory_percent=server.memory_percent,
        disk_percent=server.disk_percent, containers_running=server.containers_running,
    )


def apply_outcome(
    server: Server, outcome: Outcome, now: datetime, *, failures_offline: int, successes_online: int,
    actor: str | None = None, sample: bool = True,
) -> str | None:
    """Record one poll on `server` (added to the session); returns the new status when it changed.

    With `sample` false the figures are updated but no server_metrics row is written (the poller
    samples history less often than it polls).
    """
    server.last_polled_at = now
    server.last_outcome = outcome.kind
    server.last_error = outcome.error[:500]
    if outcome.kind in FAILURE_OUTCOMES:
        server.consecutive_failures += 1
        server.consecutive_successes = 0
        wanted = "offline" if server.consecutive_failures >= failures_offline else server.status
    else:
        server.consecutive_successes += 1
        server.consecutive_failures = 0
        answered = "online" if outcome.kind == "ok" else "degraded"
        recovering = server.status in ("offline",) and server.consecutive_successes < successes_online
        wanted = server.status if recovering else answered
        if outcome.kind == "ok":
            metric = _store_figures(server, outcome.stats, now)
            if sample:
                db.session.add(metric)
        else:
            server.last_seen_at = now  # it answered, even if it could not serve stats
    if wanted == server.status:
        return None
    previous, server.status = server.status, wanted
    audit.record(
        "server_status_changed", actor,
        {"server": server.name, "from": previous, "to": wanted, "outcome": outcome.kind,
         "error": server.last_error},
        level="info" if wanted == "online" else "warning", source="poller", server_id=server.id,
    )
    return wanted


def downsample(now: datetime, *, raw_hours: int, keep_days: int, batch: int = 5000) -> int:
    """Fold raw samples older than `raw_hours` into hourly averages; drop hourly ones past `keep_days`.

    Returns how many raw rows were folded. Hourly rows carry their sample count, so a bucket
    split across two runs merges into one weighted average.
    """
    cutoff = (now - timedelta(hours=raw_hours)).replace(minute=0, second=0, microsecond=0)
    rows = db.session.scalars(
        select(ServerMetric).where(ServerMetric.period_seconds == 0, ServerMetric.at < cutoff)
        .order_by(ServerMetric.id).limit(batch)
    ).all()
    buckets: dict[tuple[int, datetime], list[ServerMetric]] = defaultdict(list)
    for row in rows:
        buckets[(row.server_id, row.at.replace(minute=0, second=0, microsecond=0))].append(row)
    for (server_id, hour), samples in buckets.items():
        hourly = db.session.scalar(select(ServerMetric).where(
            ServerMetric.server_id == server_id, ServerMetric.period_seconds == HOURLY,
            ServerMetric.at == hour))
        if hourly is None:
            hourly = ServerMetric(server_id=server_id, at=hour, period_seconds=HOURLY, samples=0)
            db.session.add(hourly)
        for name in ("cpu_percent", "memory_percent", "disk_percent", "containers_running"):
            values = [getattr(s, name) for s in samples if getattr(s, name) is not None]
            if not values:
                continue
            old = getattr(hourly, name)
            weight = hourly.samples if old is not None else 0
            mean = (sum(values) + (old or 0) * weight) / (len(values) + weight)
            setattr(hourly, name, round(mean) if name == "containers_running" else mean)
        hourly.samples = (hourly.samples or 0) + len(samples)
    if rows:
        db.session.execute(delete(ServerMetric).where(ServerMetric.id.in_([row.id for row in rows])))
    db.session.execute(delete(ServerMetric).where(
        ServerMetric.period_seconds == HOURLY, ServerMetric.at < now - timedelta(days=keep_days)))
    return len(rows)
