"""The live log stream: a WebSocket that sends new entries matching the explorer's filters.

The client says where it is (`?after=<last id it saw>`), so a reconnect resumes with no gap and no
repeat. The sender never queues: each poll reads at most one batch after the last id sent; when
more are waiting (a burst, or a client too slow to keep up) it sends the newest batch with a
"N entries skipped" count, and the skipped ones stay in the explorer.
"""

from __future__ import annotations

import json
import time
from typing import Any

from flask import abort, current_app, request, url_for
from flask_login import current_user
from simple_websocket import ConnectionClosed
from sqlalchemy import Select, func, select

from app.extensions import db, sock
from app.logs.query import filtered, filters_or_400, parse_id
from app.logs.routes import bp
from app.models import LogEntry, Server, UserSession
from app.permissions import can
from app.timeutil import utcnow

BATCH = 500  # at the default poll that is 2,000 entries/s before anything is skipped
SKIP_COUNT_CAP = 1_000_000
POLL_BOUNDS = (0.05, 5.0)
SESSION_CHECK_SECONDS = 5.0
HEARTBEAT_SECONDS = 15.0


def _origin_allowed() -> bool:
    origin = request.headers.get("Origin")
    return origin is not None and origin.rstrip("/") == request.host_url.rstrip("/")


def _still_allowed(session_id: int | None, role: str) -> bool:
    """The login is live and its user still holds the role the stream's fence was built for."""
    row = db.session.get(UserSession, session_id) if session_id else None
    if row is None or not row.is_live(utcnow()):
        return False
    return row.user.role == role and can(row.user, "view_logs")


@bp.before_request
def guard_stream() -> None:
    """Refuse a stream handshake before it is upgraded: foreign Origin 403, bad filter 400."""
    if request.endpoint != "logs.stream":
        return
    if not _origin_allowed():
        abort(403, "This stream only answers pages of this site.")
    if not current_user.is_authenticated or not current_user.is_approved:
        abort(401)
    if not can(current_user, "view_logs"):
        abort(403)
    filters_or_400(request.args)
    if parse_id(request.args.get("after")) is None:
        abort(400, "after must be the id of the last entry seen (0 for none).")


def next_batch(base: Select, last_id: int, limit: int | None = None) -> tuple[list[LogEntry], int]:
    """Up to `limit` (default BATCH) entries of `base` after `last_id`, oldest first, and how many skipped."""
    limit = limit or BATCH
    after = base.where(LogEntry.id > last_id)
    rows = list(db.session.scalars(after.order_by(LogEntry.id).limit(limit + 1)))
    if len(rows) <= limit:
        return rows, 0
    rows = list(db.session.scalars(after.order_by(LogEntry.id.desc()).limit(limit)))[::-1]
    gap = after.where(LogEntry.id < rows[0].id).with_only_columns(LogEntry.id).limit(SKIP_COUNT_CAP)
    skipped = db.session.scalar(select(func.count()).select_from(gap.subquery())) or 0
    return rows, skipped


def entry_message(entry: LogEntry, server_names: dict[int, str]) -> dict[str, Any]:
    """What the page needs to show one entry (the browser inserts it as text)."""
    return {"id": entry.id, "ts": entry.ts.strftime("%Y-%m-%d %H:%M:%S"), "level": entry.level,
            "source": entry.source, "category": entry.category,
            "server": server_names.get(entry.server_id or 0, ""), "user": entry.username or "",
            "risk": entry.risk_score, "message": entry.message,
            "url": url_for("logs.entry", entry_id=entry.id)}


@sock.route("/live/stream", bp=bp)
def stream(ws: Any) -> None:
    """Send entries after `after` that match the filters, polling the table, until the session ends.

    A revoked or expired session, a suspended user or a changed role closes the stream (1008).
    """
    session_id = current_user.current_session.id if current_user.current_session else None
    role = current_user.role
    base = filtered(filters_or_400(request.args), current_user)  # built once: the fence is fixed here
    last_id = parse_id(request.args.get("after")) or 0
    config = current_app.config
    poll = min(max(float(config.get("LOG_STREAM_POLL_SECONDS", 0.25)), POLL_BOUNDS[0]), POLL_BOUNDS[1])
    deadline = time.monotonic() + float(config.get("LOG_STREAM_MAX_SECONDS", 3600))
    next_check = sent_at = 0.0
    server_names: dict[int, str] = {}
    while time.monotonic() < deadline:
        db.session.rollback()  # a fresh snapshot each poll (MariaDB REPEATABLE READ)
        now = time.monotonic()
        if now >= next_check:
            if not _still_allowed(session_id, role):
                ws.close(reason=1008, message="session ended")
                return
            server_names = dict(db.session.execute(select(Server.id, Server.name)).all())
            next_check = now + SESSION_CHECK_SECONDS
        entries, skipped = next_batch(base, last_id)
        if entries or skipped or now - sent_at >= HEARTBEAT_SECONDS:
            if entries:
                last_id = entries[-1].id
            message = {"entries": [entry_message(e, server_names) for e in entries], "skipped": skipped,
                       "last_id": last_id}
            try:
                ws.send(json.dumps(message))
            except ConnectionClosed:
                return
            sent_at = now
        time.sleep(poll)
    ws.close(reason=1000, message="reconnect")
