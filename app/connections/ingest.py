"""Turn the edge's JSON access-log lines into connection sessions and each workspace's last activity.

One call of `ingest_round` reads what the tailer has, writes the sessions, the workspaces'
last activity and the new file position in ONE commit, under a row lock on the cursor so two
workers never ingest the same bytes.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from operator import attrgetter
from typing import NamedTuple

from sqlalchemy import or_, select, update

from app.connections.tailer import Position, Tailer
from app.extensions import db
from app.models import ConnectionSession, ConnectionTail, Workspace
from app.models.connection import ADDRESS_LENGTH
from app.routing.nginx import RouteError, parse_workspace_host
from app.timeutil import utcnow
from app.validators import is_username_shape

CURSOR_NAME = "edge"  # the default; each edge's log tailed into one database needs its own (config)
EDGE_PAGES = "/_slipway/"  # the web app's own pages on a workspace host: not use of the workspace
OWNER_CHUNK = 500  # owners per IN list when loading open sessions
_decode = json.JSONDecoder().decode
MAX_TIMESTAMP = 4_102_444_800  # 2100-01-01: a later `ts` is garbage, not a date to store


class Garbled(ValueError):
    """An access-log line that is not the JSON object the edge writes."""


class Hit(NamedTuple):
    """One request to a workspace app: who, from where, when it started and ended (epoch s), what it moved."""

    owner: str
    app: str
    username: str
    client: str
    start: float
    end: float
    status: int
    sent: int
    received: int
    websocket: bool


def _time(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC).replace(tzinfo=None)


# A handful of distinct hosts, users and addresses cover thousands of lines: validate each once.
@lru_cache(maxsize=4096)
def _client(value: str) -> str:
    if len(value) > ADDRESS_LENGTH:
        return ""
    try:
        return ipaddress.ip_address(value).compressed
    except ValueError:
        return ""


@lru_cache(maxsize=4096)
def _username(value: str) -> str:
    return value if is_username_shape(value) else ""


@lru_cache(maxsize=4096)
def _workspace(host: str, workspace_domain: str) -> tuple[str, str] | None:
    try:
        return parse_workspace_host(host, workspace_domain)
    except RouteError:
        return None


def _number(value: object, name: str) -> float:
    if value.__class__ not in (int, float) or value < 0:  # type: ignore[operator]  # bool is refused too
        raise Garbled(f"{name} is not a number")
    return value  # type: ignore[return-value]


def _status(value: object) -> int:
    """The HTTP status: a quoted three-digit string as the edge writes it (000: the client left first)."""
    if value.__class__ is str and len(value) == 3 and value.isdigit():  # type: ignore[attr-defined]
        return int(value)  # type: ignore[arg-type]
    if value.__class__ is int and 0 <= value < 1000:  # type: ignore[operator]
        return value  # type: ignore[return-value]
    raise Garbled("status is not an HTTP status")


def parse_line(raw: bytes, workspace_domain: str) -> Hit | None:
    """The Hit of one line; None for a line that is not use of a workspace app; Garbled when unreadable."""
    try:
        record = _decode(raw.decode())
    except (UnicodeDecodeError, ValueError) as exc:
        raise Garbled("not JSON") from exc
    if record.__class__ is not dict or record.get("host").__class__ is not str:
        raise Garbled("not an access-log record")
    get = record.get
    ts = _number(get("ts"), "ts")
    status = _status(get("status"))
    duration = _number(get("request_time"), "request_time")
    sent, received = _number(get("bytes"), "bytes"), _number(get("received"), "received")
    if ts > MAX_TIMESTAMP:
        raise Garbled("time out of range")
    uri = get("uri")
    if uri.__class__ is str and uri.startswith(EDGE_PAGES):
        return None
    parsed = _workspace(record["host"][:300], workspace_domain)
    if parsed is None:
        return None
    user, client = get("user"), get("client")
    return Hit(parsed[0], parsed[1], _username(user) if user.__class__ is str else "",
               _client(client) if client.__class__ is str else "", ts - duration, ts,
               status, int(sent), int(received), status == 101)


def _open_sessions(hits: list[Hit], gap: timedelta) -> dict[tuple, ConnectionSession]:
    """The newest session of each (owner, app, user, client) that the earliest hit could continue."""
    since = _time(min(hit.start for hit in hits)) - gap
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


class _Segment:
    """Hits of one key with no gap longer than the session gap, summed in plain Python first."""

    __slots__ = ("start", "end", "requests", "websockets", "errors", "sent", "received")

    def __init__(self, start: float, end: float) -> None:
        self.start, self.end = start, end
        self.requests = self.websockets = self.errors = self.sent = self.received = 0


def _segments(hits: list[Hit], gap_seconds: float) -> dict[tuple, list[_Segment]]:
    by_key: dict[tuple, list[_Segment]] = {}
    for hit in sorted(hits, key=attrgetter("start")):
        key = (hit.owner, hit.app, hit.username, hit.client)
        runs = by_key.get(key)
        if runs is None:
            runs = by_key[key] = []
        if not runs or hit.start > runs[-1].end + gap_seconds:
            runs.append(_Segment(hit.start, hit.end))
        run = runs[-1]
        if hit.end > run.end:
            run.end = hit.end
        run.requests += 1
        run.websockets += hit.websocket
        run.errors += hit.status >= 400 or hit.status == 0
        run.sent += hit.sent
        run.received += hit.received
    return by_key


def apply_hits(hits: list[Hit], gap: timedelta) -> int:
    """Add `hits` to the sessions (a gap longer than `gap` starts a new one) and to last activity.

    Adds to the session (the caller commits); returns how many sessions were opened.
    """
    if not hits:
        return 0
    open_rows = _open_sessions(hits, gap)
    opened = 0
    last: dict[str, float] = {}
    for key, runs in _segments(hits, gap.total_seconds()).items():
        row = open_rows.get(key)
        for run in runs:
            start, end = _time(run.start), _time(run.end)
            if row is None or start > row.last_at + gap:
                row = ConnectionSession(owner=key[0], app=key[1], username=key[2], client_addr=key[3],
                                        started_at=start, last_at=end, requests=0, websockets=0, errors=0,
                                        bytes_sent=0, bytes_received=0)
                db.session.add(row)
                opened += 1
            row.started_at = min(row.started_at, start)
            row.last_at = max(row.last_at, end)
            row.requests += run.requests
            row.websockets += run.websockets
            row.errors += run.errors
            row.bytes_sent += run.sent
            row.bytes_received += run.received
            last[key[0]] = max(last.get(key[0], run.end), run.end)
    for owner, seconds in last.items():
        at = _time(seconds)
        db.session.execute(
            update(Workspace)
            .where(Workspace.username == owner,
                   or_(Workspace.last_activity_at.is_(None), Workspace.last_activity_at < at))
            .values(last_activity_at=at)
            .execution_options(synchronize_session=False)
        )
    return opened


def _cursor(name: str) -> ConnectionTail:
    stmt = select(ConnectionTail).where(ConnectionTail.name == name).with_for_update()
    row = db.session.scalar(stmt)
    if row is None:
        row = ConnectionTail(name=name, inode=0, offset=0, lines=0, garbled=0)
        db.session.add(row)
    return row


@dataclass(frozen=True)
class RoundResult:
    """What one round read: lines, of them garbled ones, and whether the file has more right now."""

    lines: int
    garbled: int
    more: bool


def ingest_round(tailer: Tailer, workspace_domain: str, gap: timedelta,
                 cursor_name: str = CURSOR_NAME) -> RoundResult:
    """Read one chunk from the tailer and commit its sessions, last activity and its log's new position."""
    cursor = _cursor(cursor_name)
    chunk = tailer.read(Position(cursor.inode, cursor.offset))
    if not chunk.lines and not chunk.dropped and chunk.position == Position(cursor.inode, cursor.offset):
        db.session.rollback()  # nothing new: no write every second on an idle edge
        return RoundResult(0, 0, False)
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


def ingest_available(tailer: Tailer, workspace_domain: str, gap: timedelta, max_rounds: int = 100,
                     cursor_name: str = CURSOR_NAME) -> int:
    """Ingest until the file has nothing more (at most `max_rounds` chunks); returns lines read."""
    total = 0
    for _ in range(max_rounds):
        result = ingest_round(tailer, workspace_domain, gap, cursor_name)
        total += result.lines
        if not result.more:
            break
    return total
