"""A user's own recent requests, described in words, for their security page."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from app.extensions import db
from app.models import RequestLog

TRAIL_ROWS = 25
# (method, route template) → what the person did; anything else reads as the page they opened.
ACTIONS: dict[tuple[str, str], str] = {
    ("POST", "/login"): "Signed in",
    ("POST", "/logout"): "Signed out",
    ("GET", "/workspaces/open/<app>"): "Opened a workspace app",
}


@dataclass
class TrailItem:
    """One line of the activity trail."""

    at: datetime
    what: str
    route: str
    status: int
    address: str


def recent_activity(user_id: int, limit: int = TRAIL_ROWS) -> list[TrailItem]:
    """The user's last `limit` recorded requests, newest first (raw rows: kept ANALYTICS_RAW_DAYS)."""
    rows = db.session.execute(
        select(RequestLog.at, RequestLog.method, RequestLog.route, RequestLog.status, RequestLog.client_addr)
        .where(RequestLog.user_id == user_id)
        .order_by(RequestLog.at.desc(), RequestLog.id.desc())
        .limit(limit)
    ).all()
    items = []
    for at, method, route, status, address in rows:
        what = ACTIONS.get((method, route)) or ("Opened a page" if method == "GET" else "Submitted a form")
        items.append(TrailItem(at, what, f"{method} {route}", status, address))
    return items
