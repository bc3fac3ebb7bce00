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
    return entry
