"""Writing entries to `log_entries`: one bulk insert for any number of rows, in the caller's transaction.

Every input (agent events pulled by the poller, audit rows, task outcomes, the ingestion API) goes
through `add_entries`, so the rows look the same whoever wrote them. Nothing here commits.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import insert

from app.extensions import db
from app.models import ENTRY_LEVELS, LogEntry
from app.timeutil import utcnow

MESSAGE_MAX = 4000
COLUMNS = ("ts", "received_at", "source", "category", "level", "server_id", "workspace_id", "username",
           "host", "message", "fields", "risk_score", "rule_ids")
# Positional parameters straight to the driver's executemany (one multi-row INSERT per ~1 MB):
# SQLAlchemy's per-row bind processing cost about as much as the insert itself at ingestion rates.
_MYSQL_INSERT = (f"INSERT INTO log_entries ({', '.join(COLUMNS)}) "  # noqa: S608 - fixed column names
                 f"VALUES ({', '.join(['%s'] * len(COLUMNS))})")
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
    if not rows:
        return 0
    if db.session.get_bind().dialect.name == "mysql":
        received = _datetime_text(now)
        params = [
            (_datetime_text(r["ts"]), received, r["source"], r["category"], r["level"], r["server_id"],
             r["workspace_id"], r["username"], r["host"], r["message"], _json(r["fields"]), r["risk_score"],
             _json(r["rule_ids"]))
            for r in rows
        ]
        db.session.connection().exec_driver_sql(_MYSQL_INSERT, params)
    else:
        db.session.execute(insert(LogEntry), rows)
    return len(rows)


def _datetime_text(value: Any) -> Any:
    # The driver's own datetime escaping was the largest single cost when profiling ingestion.
    if not isinstance(value, datetime):
        return value
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value.isoformat(" ")


def _json(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()
