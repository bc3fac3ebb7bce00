"""The logs pipeline's store: entries from every source, the rules that score them, alerts.

One table (`log_entries`) holds events pulled from the agents, Slipway's own audit rows and task
outcomes, and batches posted to the ingestion API. Rules (`alert_rules`) are evaluated by the
worker after a cursor (`log_cursors`); matches fold into one open alert per rule and group
(`alerts`, with `open_key` unique while the alert is not resolved).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.timeutil import utcnow

# A 64-bit id on MariaDB; SQLite only auto-increments INTEGER PRIMARY KEY.
BigId = BigInteger().with_variant(Integer(), "sqlite")

ENTRY_LEVELS = ("debug", "info", "warning", "error", "critical")
ALERT_SEVERITIES = ("low", "medium", "high", "critical")
ALERT_STATES = ("open", "acknowledged", "resolved")
RULE_GROUP_FIELDS = ("ip", "username", "workspace", "server")


class LogEntry(db.Model):
    """One event: when, from where, how bad, and what the rules made of it.

    `source` says which input it came from (`agent`, `audit`, `task`, or the shipper's own name for
    ingested batches); `category` is a dotted kind such as `container.oom` or `auth.login_failed`.
    `risk_score` and `rule_ids` are filled by the rule engine in the worker, never by a request.
    """

    __tablename__ = "log_entries"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    ts: Mapped[datetime] = mapped_column(default=utcnow)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    source: Mapped[str] = mapped_column(String(64))
    category: Mapped[str] = mapped_column(String(64), default="")
    level: Mapped[str] = mapped_column(String(16), default="info")
    server_id: Mapped[int | None] = mapped_column(Integer)
    workspace_id: Mapped[int | None] = mapped_column(Integer)
    username: Mapped[str | None] = mapped_column(String(64))
    host: Mapped[str | None] = mapped_column(String(255))
    message: Mapped[str] = mapped_column(Text, default="")
    fields: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    risk_score: Mapped[int] = mapped_column(default=0)
    rule_ids: Mapped[list[int]] = mapped_column(JSON, default=list)

    __table_args__ = (
        Index("ix_log_entries_ts", "ts"),
        Index("ix_log_entries_source_id", "source", "id"),
        Index("ix_log_entries_level_id", "level", "id"),
        Index("ix_log_entries_server_id", "server_id", "id"),
        Index("ix_log_entries_username_id", "username", "id"),
        Index("ix_log_entries_workspace_id", "workspace_id", "id"),
        Index("ix_log_entries_risk_id", "risk_score", "id"),
        # The rule engine's threshold look-back: one category within a time window.
        Index("ix_log_entries_category_ts", "category", "ts"),
    )

    def __repr__(self) -> str:
        return f"<LogEntry {self.id} {self.source}/{self.category} {self.level}>"


class AlertRule(db.Model):
    """A rule: what it matches, an optional threshold within a window per group, what it scores.

    Every condition that is set must hold: `source`, `category` and `level` by equality (`level` is
    a minimum), `field_equals` key by key on the entry's fields, `message_regex` searched in the
    message (compiled by a linear-time engine). With `threshold_count` > 1 the rule fires when that
    many matches of one group value fall within `window_seconds`.
    """

    __tablename__ = "alert_rules"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    description: Mapped[str] = mapped_column(String(500), default="")
    enabled: Mapped[bool] = mapped_column(default=True)
    builtin: Mapped[bool] = mapped_column(default=False)
    source: Mapped[str | None] = mapped_column(String(64))
    category: Mapped[str | None] = mapped_column(String(64))
    level: Mapped[str | None] = mapped_column(String(16))
    field_equals: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    message_regex: Mapped[str | None] = mapped_column(String(500))
    threshold_count: Mapped[int] = mapped_column(default=1)
    window_seconds: Mapped[int] = mapped_column(default=0)
    group_by: Mapped[str | None] = mapped_column(String(32))
    risk_score: Mapped[int] = mapped_column(default=50)
    severity: Mapped[str] = mapped_column(String(16), default="medium")
    webhook_url: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    def __repr__(self) -> str:
        return f"<AlertRule {self.name}>"


class Alert(db.Model):
    """Matches of one rule and group folded together: open -> acknowledged -> resolved.

    `open_key` is `"{rule_id}:{group_value}"` while the alert is open or acknowledged and NULL once
    resolved, so a unique index admits one unresolved alert per rule and group on every database.
    """

    __tablename__ = "alerts"

    id: Mapped[int] = mapped_column(primary_key=True)
    rule_id: Mapped[int | None] = mapped_column(ForeignKey("alert_rules.id", ondelete="SET NULL"), index=True)
    rule_name: Mapped[str] = mapped_column(String(100))
    group_value: Mapped[str] = mapped_column(String(255), default="")
    open_key: Mapped[str | None] = mapped_column(String(300), unique=True)
    state: Mapped[str] = mapped_column(String(16), default="open")
    severity: Mapped[str] = mapped_column(String(16), default="medium")
    risk_score: Mapped[int] = mapped_column(default=0)
    count: Mapped[int] = mapped_column(default=1)
    message: Mapped[str] = mapped_column(String(500), default="")
    server_id: Mapped[int | None] = mapped_column(Integer)
    username: Mapped[str | None] = mapped_column(String(64))
    first_seen: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen: Mapped[datetime] = mapped_column(default=utcnow)
    acknowledged_by: Mapped[str | None] = mapped_column(String(64))
    acknowledged_at: Mapped[datetime | None]
    resolved_by: Mapped[str | None] = mapped_column(String(64))
    resolved_at: Mapped[datetime | None]
    note: Mapped[str] = mapped_column(Text, default="")
    webhook_status: Mapped[str] = mapped_column(String(16), default="")
    webhook_attempts: Mapped[int] = mapped_column(default=0)
    webhook_last_error: Mapped[str] = mapped_column(String(500), default="")

    __table_args__ = (Index("ix_alerts_state_severity", "state", "severity"),)

    def __repr__(self) -> str:
        return f"<Alert {self.id} {self.rule_name} {self.state}>"


class AlertEntry(db.Model):
    """Links an alert to the entries that raised it (the first few hundred per alert)."""

    __tablename__ = "alert_entries"

    alert_id: Mapped[int] = mapped_column(ForeignKey("alerts.id", ondelete="CASCADE"), primary_key=True)
    entry_id: Mapped[int] = mapped_column(BigId, primary_key=True)


class LogCursor(db.Model):
    """A named position in `log_entries` (e.g. how far the rule engine has evaluated)."""

    __tablename__ = "log_cursors"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
