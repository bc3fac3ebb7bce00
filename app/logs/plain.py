"""Container events told in plain words for the workspace's owner (their workspace page).

`describe(entry)` turns one stored entry into a sentence a user understands; `workspace_events`
loads the last few container events of one workspace for `templates/logs/_workspace_events.html`
(which expects them as `workspace_events`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from app.extensions import db
from app.models import LogEntry

# What the owner is shown: kills are left out (each stop is a kill followed by the die it causes).
USER_CATEGORIES = ("container.oom", "container.die", "container.start", "container.restart",
                   "container.health_status")
SIGNAL_KILLED = 137


def _fields(entry: Any) -> dict[str, Any]:
    fields = getattr(entry, "fields", None)
    if fields is None and isinstance(entry, dict):
        fields = entry.get("fields")
    return fields if isinstance(fields, dict) else {}


def _get(entry: Any, name: str) -> Any:
    return entry.get(name) if isinstance(entry, dict) else getattr(entry, name, None)


def describe(entry: Any) -> str:
    """One sentence for the workspace's owner about a stored entry (a LogEntry or a dict)."""
    category = str(_get(entry, "category") or "")
    fields = _fields(entry)
    if category == "container.oom":
        limit = fields.get("memory_limit_mb")
        return ("Your workspace ran out of memory and the program using the most was stopped"
                + (f" (limit {limit} MB)." if limit else "."))
    if category == "container.die":
        code = fields.get("exit_code")
        if code in (0, None):
            return "Your workspace stopped."
        if code == SIGNAL_KILLED:
            return "Your workspace was stopped abruptly (killed, exit code 137)."
        return f"Your workspace stopped unexpectedly (exit code {code})."
    if category == "container.start":
        return "Your workspace started."
    if category == "container.restart":
        return "Your workspace restarted."
    if category == "container.kill":
        return "Your workspace was asked to stop."
    if category == "container.health_status":
        if fields.get("health") == "unhealthy":
            return "Your workspace stopped answering its health check."
        return "Your workspace answers its health check again." if fields.get("health") == "healthy" \
            else "Your workspace's health check is starting."
    return str(_get(entry, "message") or "")


@dataclass
class PlainEvent:
    """One line of the workspace page's event table."""

    ts: datetime
    level: str
    category: str
    text: str


def workspace_events(workspace_id: int, username: str, limit: int = 10) -> list[PlainEvent]:
    """The last `limit` container events of one workspace, newest first, in plain words.

    Both the workspace id and its owner's name must match, so a reused id never shows one
    user another's events; only the agents' own entries count (a shipper cannot post them).
    """
    rows = db.session.scalars(
        select(LogEntry)
        .where(LogEntry.workspace_id == workspace_id, LogEntry.username == username,
               LogEntry.source == "agent", LogEntry.category.in_(USER_CATEGORIES))
        .order_by(LogEntry.id.desc()).limit(limit)
    )
    return [PlainEvent(row.ts, row.level, row.category, describe(row)) for row in rows]
