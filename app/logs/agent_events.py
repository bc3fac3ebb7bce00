"""Agent events into log entries: fetch after a server's cursor, then turn each event into an entry.

`fetch_events` only talks to the agent (it runs in a poller thread, no database); the poller then
calls `batch_entries` while it records the round and moves the server's cursor in the same commit,
so a crash in between makes the next round fetch the same events again (no loss, no duplicate).
A cursor the agent no longer holds (its buffer overflowed) or an agent that restarted (a new
epoch, numbering from 1 again) becomes an `agent.gap` entry saying what may be missing.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from app.agent_client import AgentClient, AgentError
from app.timeutil import utcnow

PAGE_LIMIT = 500
MAX_PAGES = 5  # at most 2,500 events per server per round; the rest follow next round
MIN_SECONDS_LEFT = 0.2
CONTAINER_ACTIONS = frozenset({"start", "die", "oom", "kill", "restart", "health_status"})
IMAGE_ACTIONS = frozenset({"build", "push", "pull", "delete", "tag", "untag", "import", "load"})
HOST_ACTIONS = frozenset({"disk", "memory", "disk_recovered", "memory_recovered"})
FIELD_KEYS = ("signal", "health", "memory_limit_mb", "percent", "threshold", "path", "success", "id",
              "pressure_some_avg10")


@dataclass
class EventBatch:
    """What one fetch read from one agent, and where the server's cursor goes if it is stored."""

    start_cursor: int
    start_epoch: str
    epoch: str = ""
    cursor: int = 0
    events: list[dict[str, Any]] = field(default_factory=list)
    gaps: list[dict[str, int]] = field(default_factory=list)
    restarted: bool = False
    error: str = ""

    @property
    def moved(self) -> bool:
        """True when storing this batch changes the server's cursor or epoch."""
        return not self.error and (self.cursor, self.epoch) != (self.start_cursor, self.start_epoch)


def fetch_events(
    client: AgentClient, cursor: int, epoch: str, *, seconds: float,
    page_limit: int = PAGE_LIMIT, max_pages: int = MAX_PAGES,
) -> EventBatch:
    """Read the events after `cursor` within `seconds`; never raises for an agent problem."""
    batch = EventBatch(start_cursor=cursor, start_epoch=epoch, epoch=epoch, cursor=cursor)
    deadline = time.monotonic() + seconds
    after = cursor
    try:
        for number in range(max_pages):
            left = deadline - time.monotonic()
            if left < MIN_SECONDS_LEFT:
                break
            client.timeout = (client.timeout[0], left)
            page = client.events(after=after, limit=page_limit)
            if number == 0 and epoch and page["epoch"] != epoch:
                # The agent restarted: our cursor counts in its old numbering. Read its new buffer
                # from the start; what happened between our last read and the restart is lost.
                batch.restarted = True
                after = 0
                page = client.events(after=0, limit=page_limit)
            if number and page["epoch"] != batch.epoch:
                break  # restarted again between two pages: the next round sees the new epoch
            batch.epoch = page["epoch"]
            if isinstance(page.get("gap"), dict):
                batch.gaps.append({"from": int(page["gap"]["from"]), "to": int(page["gap"]["to"])})
            batch.events += [e for e in page["events"] if isinstance(e, dict)]
            after = batch.cursor = int(page["next"])
            if not page.get("more"):
                break
    except (AgentError, KeyError, TypeError, ValueError) as exc:
        # Nothing of this fetch is stored: the cursor stays and the next round asks again.
        message = exc.message if isinstance(exc, AgentError) else "agent sent events in an unexpected shape"
        return EventBatch(start_cursor=cursor, start_epoch=epoch, epoch=epoch, cursor=cursor, error=message)
    return batch


def _when(value: object) -> datetime:
    """The event's time as naive UTC (now when missing or unreadable)."""
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return utcnow()
        return parsed.astimezone(UTC).replace(tzinfo=None) if parsed.tzinfo else parsed
    return utcnow()


def _level(event: dict[str, Any]) -> str:
    kind, action = event.get("type"), event.get("action")
    if kind == "container":
        if action == "oom":
            return "error"
        if action == "die" and event.get("exit_code") not in (0, None):
            return "warning"
        if action == "health_status" and (event.get("details") or {}).get("health") == "unhealthy":
            return "warning"
        return "info"
    if kind == "host":
        return "warning" if action in ("disk", "memory") else "info"
    if kind == "image" and action == "build" and not (event.get("details") or {}).get("success"):
        return "warning"
    return "info"


def _message(event: dict[str, Any], whose: str) -> str:
    kind, action = event.get("type"), event.get("action")
    details = event.get("details") or {}
    if kind == "container":
        if action == "oom":
            limit = details.get("memory_limit_mb")
            return f"{whose} ran out of memory and was killed" + (f" (limit {limit} MB)" if limit else "")
        if action == "die":
            code = event.get("exit_code")
            return f"{whose} stopped" + (f" with exit code {code}" if code is not None else "")
        if action == "start":
            return f"{whose} started"
        if action == "restart":
            return f"{whose} restarted"
        if action == "kill":
            return f"{whose} was sent signal {details.get('signal', '?')}"
        if action == "health_status":
            return f"{whose} health check: {details.get('health') or 'unknown'}"
    if kind == "host" and action in HOST_ACTIONS:
        what = "Disk" if action.startswith("disk") else "Memory"
        if action.endswith("_recovered"):
            return f"{what} use back to {details.get('percent')} % (below {details.get('threshold')} %)"
        return f"{what} use at {details.get('percent')} % (warning at {details.get('threshold')} %)"
    if kind == "image":
        image = event.get("image") or "?"
        if action == "build":
            return f"Image {image} " + ("built" if details.get("success") else "build failed")
        return f"Image {image}: {action}"
    return str(event.get("message") or f"{kind} {action}")


def _category(event: dict[str, Any]) -> str | None:
    kind, action = event.get("type"), event.get("action")
    known = {"container": CONTAINER_ACTIONS, "image": IMAGE_ACTIONS, "host": HOST_ACTIONS}.get(str(kind))
    return f"{kind}.{action}" if known and action in known else None


def event_entry(server: Any, event: dict[str, Any], workspaces: dict[str, tuple[int, str]],
                epoch: str) -> dict[str, Any] | None:
    """The log entry for one agent event (None for a kind this version does not know).

    The owner comes from the workspace whose container name matches on this server, never from
    the container's labels alone (an image can carry any label).
    """
    category = _category(event)
    if category is None:
        return None
    container = event.get("container") if isinstance(event.get("container"), str) else None
    workspace_id, username = workspaces.get(container or "", (None, None))
    whose = f"Workspace of {username}" if username else f"Container {container}"
    details = event.get("details") if isinstance(event.get("details"), dict) else {}
    fields: dict[str, Any] = {"seq": event.get("seq"), "epoch": epoch}
    for key in ("container", "image", "exit_code"):
        if event.get(key) is not None:
            fields[key] = event[key]
    if event.get("user") and event.get("user") != username:
        fields["label_user"] = str(event["user"])[:64]
    fields.update({key: details[key] for key in FIELD_KEYS if details.get(key) is not None})
    return {
        "ts": _when(event.get("ts")), "source": "agent", "category": category, "level": _level(event),
        "server_id": server.id, "host": server.name, "workspace_id": workspace_id, "username": username,
        "message": _message(event, whose), "fields": fields,
    }


def gap_entries(server: Any, batch: EventBatch) -> list[dict[str, Any]]:
    """`agent.gap` entries for an agent restart and for events dropped before they were read."""
    entries = []
    base = {"source": "agent", "category": "agent.gap", "level": "warning", "server_id": server.id,
            "host": server.name}
    if batch.restarted:
        entries.append({**base, "message": (
            f"The agent on {server.name} restarted: events after #{batch.start_cursor} of its previous run "
            "that were not read before the restart are missing (how many is unknown)."),
            "fields": {"reason": "epoch", "old_epoch": batch.start_epoch, "new_epoch": batch.epoch,
                       "old_cursor": batch.start_cursor}})
    for gap in batch.gaps:
        missing = gap["to"] - gap["from"] + 1
        entries.append({**base, "message": (
            f"{missing} events (#{gap['from']} to #{gap['to']}) from the agent on {server.name} were "
            "dropped from its buffer before they were read."),
            "fields": {"reason": "overflow", "from": gap["from"], "to": gap["to"], "missing": missing,
                       "epoch": batch.epoch}})
    return entries


def batch_entries(
    server: Any, batch: EventBatch, workspaces: dict[str, tuple[int, str]],
) -> list[dict[str, Any]]:
    """Every entry one batch stores: gaps first (they precede the events read after them)."""
    entries = gap_entries(server, batch)
    for event in batch.events:
        entry = event_entry(server, event, workspaces, batch.epoch)
        if entry is not None:
            entries.append(entry)
    return entries


def offline_entry(server: Any, error: str) -> dict[str, Any]:
    """The `server.offline` entry written when a server's status turns offline."""
    return {"source": "poller", "category": "server.offline", "level": "error", "server_id": server.id,
            "host": server.name, "message": f"Server {server.name} is offline: {error or 'no answer'}",
            "fields": {"server": server.name, "error": error[:500]}}
