"""Turn the edge's JSON access-log lines into connection sessions and each workspace's last activity.

One call of `ingest_round` reads what the tailer has, writes the sessions, the workspaces'
last activity and the new file position in ONE commit, under a row lock on the cursor so two
workers never ingest the same bytes.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import or_, select, update

from app.connections.tailer import Position, Tailer
from app.extensions import db
from app.models import ConnectionSession, ConnectionTail, Workspace
from app.models.connection import ADDRESS_LENGTH
from app.routing.nginx import RouteError, parse_workspace_host
from app.timeutil import utcnow
from app.validators import is_username_shape

CURSOR_NAME = "edge"
EDGE_PAGES = "/_slipway/"  # the web app's own pages on a workspace host: not use of the workspace
OWNER_CHUNK = 500  # owners per IN list when loading open sessions


class Garbled(ValueError):
    """An access-log line that is not the JSON object the edge writes."""


@dataclass(frozen=True, slots=True)
class Hit:
    """One request to a workspace app: who, from where, when it started and ended, what it moved."""

    owner: str
    app: str
    username: str
    client: str
    start: datetime
    end: datetime
    status: int
    sent: int
    received: int
    websocket: bool


def _time(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC).replace(tzinfo=None)


def _number(record: dict, name: str, kind: type) -> float:
    value = record.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise Garbled(f"{name} is not a number")
    return kind(value)


def _client(value: object) -> str:
    if not isinstance(value, str) or len(value) > ADDRESS_LENGTH:
        return ""
    try:
        return ipaddress.ip_address(value).compressed
    except ValueError:
        return ""


def parse_line(raw: bytes, workspace_domain: str) -> Hit | None:
    """The Hit of one line; None for a line that is not use of a workspace app; Garbled when unreadable."""
    try:
        record = json.loads(raw)
    except (UnicodeDecodeError, ValueError) as exc:
        raise Garbled("not JSON") from exc
    if not isinstance(record, dict) or not isinstance(record.get("host"), str):
        raise Garbled("not an access-log record")
    ts = _number(record, "ts", float)
    status = int(_number(record, "status", int))
    duration = _number(record, "request_time", float)
    sent, received = int(_number(record, "bytes", int)), int(_number(record, "received", int))
    uri = record.get("uri")
    if isinstance(uri, str) and uri.startswith(EDGE_PAGES):
        return None
    try:
        parsed = parse_workspace_host(record["host"][:300], workspace_domain)
        end = _time(ts)
    except (RouteError, OverflowError, OSError, ValueError):
        parsed = None
    if parsed is None:
        return None
    owner, app = parsed
    user = record.get("user")
    username = user if isinstance(user, str) and is_username_shape(user) else ""
    return Hit(owner, app, username, _client(record.get("client")), end - timedelta(seconds=duration), end,
               status, sent, received, status == 101)


def _open_sessions(hits: list[Hit], gap: timedelta) -> dict[tuple, ConnectionSession]:
    """The newest session of each (owner, app, user, client) that the earliest hit could continue."""
    since = min(hit.start for hit in hits) - gap
    owners = sorted({hit.owner for hit in hits})
    found: dict[tuple, ConnectionSession] = {}
    for first in range(0, len(owners), OWNER_CHUNK):
        rows = db.session.scalars(
            select(ConnectionSession)
            .where(ConnectionSession.owner.in_(owners[first:first + OWNER_CHUNK]),
                   ConnectionSession.last_at >= since)
            .order_by(ConnectionSession.last_at)
        )
        for row in rows:
            found[(row.owner, row.app, row.username, row.client_addr)] = row
    return found


def apply_hits(hits: Iterable[Hit], gap: timedelta) -> int:
    """Add `hits` to the sessions (a gap longer than `gap` starts a new one) and to last activity.

    Adds to the session (the caller commits); returns how many sessions were opened.
    """
    ordered = sorted(hits, key=lambda hit: hit.start)
    if not ordered:
        return 0
    open_rows = _open_sessions(ordered, gap)
    opened = 0
    last: dict[str, datetime] = {}
    for hit in ordered:
        key = (hit.owner, hit.app, hit.username, hit.client)
        row = open_rows.get(key)
        if row is None or hit.start > row.last_at + gap:
            row = ConnectionSession(owner=hit.owner, app=hit.app, username=hit.username,
                                    client_addr=hit.client, started_at=hit.start, last_at=hit.end,
                                    requests=0, websockets=0, errors=0, bytes_sent=0, bytes_received=0)
            db.session.add(row)
            open_rows[key] = row
            opened += 1
        row.started_at = min(row.started_at, hit.start)
        row.last_at = max(row.last_at, hit.end)
        row.requests += 1
        row.websockets += hit.websocket
        row.errors += hit.status >= 400
        row.bytes_sent += hit.sent
        row.bytes_received += hit.received
        last[hit.owner] = max(last.get(hit.owner, hit.end), hit.end)
    for owner, at in last.items():
        db.session.execute(
            update(Workspace)
            .where(Workspace.username == owner,
                   or_(Workspace.last_activity_at.is_(None), Workspace.last_activity_at < at))
            .values(last_activity_at=at)
            .execution_options(synchronize_session=False)
        )
    return opened


def _cursor() -> ConnectionTail:
    stmt = select(ConnectionTail).where(ConnectionTail.name == CURSOR_NAME).with_for_update()
    row = db.session.scalar(stmt)
    if row is None:
        row = ConnectionTail(name=CURSOR_NAME, inode=0, offset=0, lines=0, garbled=0)
        db.session.add(row)
    return row


@dataclass(frozen=True)
class RoundResult:
    """What one round read: lines, of them garbled ones, and whether the file has more right now."""

    lines: int
    garbled: int
    more: bool


def ingest_round(tailer: Tailer, workspace_domain: str, gap: timedelta) -> RoundResult:
    """Read one chunk from the tailer and commit its sessions, last activity and the new position."""
    cursor = _cursor()
    chunk = tailer.read(Position(cursor.inode, cursor.offset))
    hits: list[Hit] = []
    garbled = chunk.dropped
    for raw in chunk.lines:
        if not raw.strip():
            continue
        try:
            hit = parse_line(raw, workspace_domain)
        except Garbled:
            garbled += 1
            continue
        if hit is not None:
            hits.append(hit)
    apply_hits(hits, gap)
    moved = chunk.position != Position(cursor.inode, cursor.offset)
    cursor.inode, cursor.offset = chunk.position.inode, chunk.position.offset
    cursor.lines += len(chunk.lines)
    cursor.garbled += garbled
    if moved or garbled:
        cursor.updated_at = utcnow()
    db.session.commit()
    return RoundResult(len(chunk.lines), garbled, moved and bool(chunk.lines))


def ingest_available(tailer: Tailer, workspace_domain: str, gap: timedelta, max_rounds: int = 100) -> int:
    """Ingest until the file has nothing more (at most `max_rounds` chunks); returns lines read."""
    total = 0
    for _ in range(max_rounds):
        result = ingest_round(tailer, workspace_domain, gap)
        total += result.lines
        if not result.more:
            break
    return total
