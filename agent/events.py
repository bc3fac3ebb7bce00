"""The agent's event buffer: a bounded ring of what happened to Slipway's containers, images and host.

Each event gets the next sequence number of this agent process; the process has an `epoch` (a random
id chosen when the serving worker starts), so a caller that stored a cursor can tell a restarted
agent (new epoch, numbering from 1 again) from one that merely moved on. When more events arrive
than the ring holds, the oldest are dropped and a reader whose cursor is older than the oldest kept
event is told so (`gap`), never silently skipped.
"""

from __future__ import annotations

import datetime as dt
import secrets
import threading
from collections import OrderedDict, deque
from typing import Any

EVENT_TYPES = ("container", "image", "host")
LEVELS = ("info", "warning", "error")
MESSAGE_MAX = 500
KNOWN_IMAGES_MAX = 5000


def iso(when: dt.datetime | None = None) -> str:
    """UTC time as ISO 8601 with a Z (now when `when` is None)."""
    when = when or dt.datetime.now(dt.UTC)
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class EventBuffer:
    """Thread-safe ring of at most `maxlen` events, numbered 1, 2, 3, ... within one epoch."""

    def __init__(self, maxlen: int) -> None:
        if maxlen < 1:
            raise ValueError("the event buffer needs room for at least one event")
        self.maxlen = maxlen
        self._lock = threading.Lock()
        self._events: deque[dict[str, Any]] = deque(maxlen=maxlen)
        self._seq = 0
        self.epoch = secrets.token_hex(8)

    def renew(self) -> None:
        """Start a new epoch with an empty buffer (a new serving process: old numbers mean nothing)."""
        with self._lock:
            self._events.clear()
            self._seq = 0
            self.epoch = secrets.token_hex(8)

    @property
    def last_seq(self) -> int:
        """The sequence number of the newest event (0 before the first)."""
        return self._seq

    def add(
        self, type_: str, action: str, *, message: str = "", level: str = "info", ts: str | None = None,
        container: str | None = None, user: str | None = None, workspace_id: str | None = None,
        image: str | None = None, exit_code: int | None = None, details: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Append one event and return it (with its sequence number)."""
        if type_ not in EVENT_TYPES:
            raise ValueError(f"unknown event type {type_!r}")
        event = {
            "ts": ts or iso(), "type": type_, "action": action[:64],
            "level": level if level in LEVELS else "info", "container": container, "user": user,
            "workspace_id": workspace_id, "image": image, "exit_code": exit_code,
            "message": message[:MESSAGE_MAX], "details": dict(details or {}),
        }
        with self._lock:
            self._seq += 1
            event["seq"] = self._seq
            self._events.append(event)
        return event

    def read(self, after: int, limit: int) -> dict[str, Any]:
        """Up to `limit` events with seq > `after`, the cursor to ask with next, and any gap.

        `gap` is `{"from": a, "to": b}` when events a..b (just after the caller's cursor) were
        dropped from the ring before being read; `more` says whether events remain past `next`.
        """
        with self._lock:
            oldest = self._events[0]["seq"] if self._events else self._seq + 1
            gap = {"from": after + 1, "to": oldest - 1} if after < oldest - 1 else None
            start = max(after + 1, oldest) - oldest  # index of the first event to return
            events = [dict(self._events[i]) for i in range(start, min(start + limit, len(self._events)))] \
                if start < len(self._events) else []
            latest = self._seq
            epoch = self.epoch
        following = events[-1]["seq"] if events else latest
        return {"epoch": epoch, "events": events, "next": following, "gap": gap,
                "latest": latest, "more": following < latest}


class KnownImages:
    """Names and ids of images this agent built, tagged, pushed or imported (their events are kept)."""

    def __init__(self, maxlen: int = KNOWN_IMAGES_MAX) -> None:
        self.maxlen = maxlen
        self._items: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()

    def remember(self, *refs: str | None) -> None:
        """Note image references (the oldest are forgotten beyond `maxlen`)."""
        with self._lock:
            for ref in refs:
                if not ref:
                    continue
                self._items[ref] = None
                self._items.move_to_end(ref)
                while len(self._items) > self.maxlen:
                    self._items.popitem(last=False)

    def __contains__(self, ref: object) -> bool:
        with self._lock:
            return ref in self._items
