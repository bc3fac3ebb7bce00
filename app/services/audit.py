"""The one way to write audit rows. Adds to the session; the caller's unit of work commits."""

from __future__ import annotations

from typing import Any

from flask import has_request_context, request

from app.extensions import db
from app.models import AuditLog


def client_ip() -> str | None:
    """The client address as seen after the trusted-proxy fix, or None outside a request."""
    return request.remote_addr if has_request_context() else None


def record(
    action_type: str,
    username: str | None,
    details: dict[str, Any] | None = None,
    *,
    level: str = "info",
    source: str = "web",
    server_id: int | None = None,
) -> AuditLog:
    """Add an audit row for `action_type` by `username` to the current transaction."""
    entry = AuditLog(
        username=username,
        action_type=action_type,
        details=details or {},
        ip_address=client_ip(),
        log_level=level,
        source=source,
        server_id=server_id,
    )
    db.session.add(entry)
    _log_entry(entry)
    return entry


def _log_entry(row: AuditLog) -> None:
    """Feed the audit row into the logs pipeline (category `audit.<action>`), same transaction."""
    from app.logs.store import entry_row
    from app.models import LogEntry

    fields = dict(row.details)
    if row.ip_address:
        fields.setdefault("ip", row.ip_address)
    # Added like the audit row, not inserted at once: it is written at the caller's flush, so
    # recording an audit row takes no database lock earlier than it did (SQLite's write lock).
    db.session.add(LogEntry(**entry_row({
        "source": "audit", "category": f"audit.{row.action_type}", "level": row.log_level,
        "username": row.username, "server_id": row.server_id, "fields": fields,
        "message": f"{row.action_type} by {row.username or row.source}"})))
