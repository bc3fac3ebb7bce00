"""Writing entries to `log_entries`: one bulk insert for any number of rows, in the caller's transaction.

Every input (agent events pulled by the poller, audit rows, task outcomes, the ingestion API) goes
through `add_entries`, so the rows look the same whoever wrote them. Nothing here commits.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import insert

from app.extensions import db
from app.models import ENTRY_LEVELS, LogEntry
from app.timeutil import utcnow

MESSAGE_MAX = 4000
SHORT_MAX = {"source": 64, "category": 64, "username": 64, "host": 255}


def entry_row(entry: Mapping[str, Any], now: datetime | None = None) -> dict[str, Any]:
    """A complete `log_entries` row from a partial mapping: defaults filled, text cut to its column."""
    now = now or utcnow()
    level = str(entry.get("level") or "info").lower()
    row: dict[str, Any] = {
        "ts": entry.get("ts") or now,
        "received_at": now,
        "source": str(entry.get("source") or "slipway"),
        "category": str(entry.get("category") or ""),
        "level": level if level in ENTRY_LEVELS else "info",
        "server_id": entry.get("server_id"),
        "workspace_id": entry.get("workspace_id"),
        "username": entry.get("username"),
        "host": entry.get("host"),
        "message": str(entry.get("message") or "")[:MESSAGE_MAX],
        "fields": dict(entry.get("fields") or {}),
        "risk_score": 0,
        "rule_ids": [],
    }
    for key, limit in SHORT_MAX.items():
        if row[key] is not None:
            row[key] = str(row[key])[:limit]
    return row


def add_entries(entries: Iterable[Mapping[str, Any]]) -> int:
    """Insert `entries` (see `entry_row`) in one executemany; returns how many. The caller commits."""
    now = utcnow()
    rows = [entry_row(entry, now) for entry in entries]
    if rows:
        db.session.execute(insert(LogEntry), rows)
    return len(rows)
