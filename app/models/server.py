"""Docker hosts (each runs an agent), their metric history, and the poller's lease row."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import JSON, BigInteger, Float, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.timeutil import utcnow

SERVER_STATUSES = ("unknown", "online", "degraded", "offline")
SERVER_BACKENDS = ("agent", "swarm")


class Server(db.Model):
    """A Docker host reached through its agent. The poller keeps its status and last figures.

    `token_encrypted` is the agent token sealed with AES-GCM (purpose "server.token"); it is
    decrypted only to sign requests and never shown again. The figures (`cpu_percent`, ...,
    `stats`) are the last successful poll, so pages never call an agent.
    """

    __tablename__ = "servers"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    agent_url: Mapped[str] = mapped_column(String(255))
    token_encrypted: Mapped[str] = mapped_column(String(512))
    publish_host: Mapped[str] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(16), default="unknown", index=True)
    consecutive_failures: Mapped[int] = mapped_column(default=0)
    consecutive_successes: Mapped[int] = mapped_column(default=0)
    last_outcome: Mapped[str] = mapped_column(String(16), default="")
    last_error: Mapped[str] = mapped_column(String(500), default="")
    last_seen_at: Mapped[datetime | None]
    last_polled_at: Mapped[datetime | None]
    cpu_percent: Mapped[float | None] = mapped_column(Float)
    memory_percent: Mapped[float | None] = mapped_column(Float)
    disk_percent: Mapped[float | None] = mapped_column(Float)
    containers_running: Mapped[int | None]
    containers_total: Mapped[int | None]
    cpu_cores: Mapped[float | None] = mapped_column(Float)
    memory_total: Mapped[int | None] = mapped_column(BigInteger)
    stats: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # The agent's event buffer: the last sequence number stored and which buffer it belongs to
    # (an agent restart starts a new epoch, and the poller records the gap).
    events_cursor: Mapped[int] = mapped_column(BigInteger, default=0)
    events_epoch: Mapped[str] = mapped_column(String(64), default="")
    # "agent" (one Docker host behind its agent) or "swarm": then `agent_url` is the manager's
    # Engine API URL, `tls_encrypted` its client certificate bundle (purpose "server.tls", None on a
    # socket), `token_encrypted` unused, and `swarm_placement` the admin's placement rules.
    backend: Mapped[str] = mapped_column(String(16), default="agent", server_default="agent")
    tls_encrypted: Mapped[str | None] = mapped_column(Text)
    swarm_placement: Mapped[str] = mapped_column(String(500), default="", server_default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    def stats_fresh(self, ttl_seconds: int, now: datetime | None = None) -> bool:
        """True when the cached figures are younger than `ttl_seconds`."""
        if self.last_seen_at is None:
            return False
        return (now or utcnow()) - self.last_seen_at <= timedelta(seconds=ttl_seconds)

    def __repr__(self) -> str:
        return f"<Server {self.name} {self.status}>"


class ServerMetric(db.Model):
    """One sample of a server's load: raw (`period_seconds` 0) or an hourly average (3600)."""

    __tablename__ = "server_metrics"
    __table_args__ = (Index("ix_server_metrics_server_at", "server_id", "period_seconds", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    server_id: Mapped[int] = mapped_column(ForeignKey("servers.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    period_seconds: Mapped[int] = mapped_column(default=0)
    samples: Mapped[int] = mapped_column(default=1)
    cpu_percent: Mapped[float | None] = mapped_column(Float)
    memory_percent: Mapped[float | None] = mapped_column(Float)
    disk_percent: Mapped[float | None] = mapped_column(Float)
    containers_running: Mapped[int | None]


class PollerLease(db.Model):
    """Who may poll: one row per lease name; a holder renews it each cycle, others wait for expiry."""

    __tablename__ = "poller_leases"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    holder: Mapped[str] = mapped_column(String(128))
    expires_at: Mapped[datetime]
