"""The event buffer over HTTP: `GET /api/events?after=SEQ&limit=N` (signed like every route).

Answers `{"epoch", "events", "next", "gap", "latest", "more"}` in `data`: the events with a
sequence number above `after` (at most `limit`, capped at 1000), the cursor to send next, and
`gap` = `{"from": a, "to": b}` when events a..b were dropped from the ring before the caller
read them. A changed `epoch` means the agent restarted: numbering began again at 1.
"""

from __future__ import annotations

from flask import Blueprint, Response, current_app, request

from agent.errors import answer, bad_input
from agent.events import EventBuffer

bp = Blueprint("events", __name__, url_prefix="/api/events")

LIMIT_MAX = 1000
LIMIT_DEFAULT = 500


def _integer(name: str, default: int, low: int, high: int) -> int:
    raw = request.args.get(name)
    if raw is None:
        return default
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 18 or not low <= int(raw) <= high:
        raise bad_input(name, f"must be an integer between {low} and {high}")
    return int(raw)


@bp.get("")
def events() -> tuple[Response, int]:
    """The events after the caller's cursor, with the epoch and any gap."""
    after = _integer("after", 0, 0, 10**18)
    limit = min(_integer("limit", LIMIT_DEFAULT, 1, 10**9), LIMIT_MAX)
    buffer: EventBuffer = current_app.extensions["agent_events"]
    data = buffer.read(after, limit)
    return answer(data, f"{len(data['events'])} events")
