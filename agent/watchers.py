"""Background threads that fill the event buffer: Docker Engine events and host warnings.

`DockerWatcher` follows the daemon's event stream (its own client: the stream is a long-lived
connection) and keeps only what concerns Slipway: containers labelled `slipway.managed=true`
and images this agent built, tagged, pushed or imported (or that carry a `slipway.image`
label). When the stream breaks it reconnects with backoff, asking Docker for the events since
the last one it saw, so a daemon restart loses nothing Docker still remembers.

`HostSampler` reads disk usage of the workspace root and memory use every few seconds and adds
a warning when one crosses its threshold (repeated while it stays above, at most once per
`repeat_seconds`) and an info event when it is back below.
"""

from __future__ import annotations

import datetime as dt
import logging
import shutil
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

import docker
from agent.docker_ops import MANAGED_LABEL
from agent.events import EventBuffer, KnownImages, iso

log = logging.getLogger("agent.events")

CONTAINER_ACTIONS = frozenset({"start", "die", "oom", "kill", "restart", "health_status"})
IMAGE_ACTIONS = frozenset({"push", "pull", "delete", "tag", "untag", "import", "load"})
IMAGE_LABEL = "slipway.image"
USER_LABEL = "slipway.user"
WORKSPACE_ID_LABEL = "slipway.workspace_id"
BACKOFF_MAX_SECONDS = 30.0
# A reconnect replays from the second of the last event seen: far fewer events than this per second.
RECENT_KEYS = 4096


def _ts(raw: dict[str, Any]) -> str:
    nanos = raw.get("timeNano")
    seconds = nanos / 1e9 if isinstance(nanos, int) else raw.get("time")
    if not isinstance(seconds, int | float):
        return iso()
    return iso(dt.datetime.fromtimestamp(seconds, dt.UTC))


def _exit_code(value: object) -> int | None:
    try:
        return int(str(value))
    except ValueError:
        return None


def _container_message(
    action: str, attrs: dict[str, str], exit_code: int | None, status: str,
) -> tuple[str, str]:
    """(level, message) for a container event."""
    name = attrs.get("name", "?")
    if action == "oom":
        return "error", f"container {name} ran out of memory (killed by its memory limit)"
    if action == "die":
        if exit_code:
            return "warning", f"container {name} exited with code {exit_code}"
        return "info", f"container {name} stopped (exit code 0)"
    if action == "kill":
        return "info", f"container {name} was sent signal {attrs.get('signal', '?')}"
    if action == "health_status":
        return ("warning" if status == "unhealthy" else "info"), f"container {name} is {status or 'unknown'}"
    return "info", f"container {name}: {action}"


class DockerWatcher:
    """Follows Docker's event stream and adds the events that concern Slipway to the buffer."""

    def __init__(self, buffer: EventBuffer, known: KnownImages, timeout: int = 30) -> None:
        self.buffer = buffer
        self.known = known
        self.timeout = timeout
        self._last_nano = 0
        self._recent: OrderedDict[tuple, None] = OrderedDict()  # keys of the last RECENT_KEYS events seen
        self._client: docker.DockerClient | None = None
        self._started = int(time.time())  # the first connection asks for events since the process started
        self.connected = threading.Event()

    # -- filtering ------------------------------------------------------------------------------

    def handle(self, raw: dict[str, Any]) -> dict[str, Any] | None:
        """Add the buffer event for one raw Docker event; None when it is not Slipway's (or a repeat)."""
        nano = raw.get("timeNano") if isinstance(raw.get("timeNano"), int) else 0
        actor = raw.get("Actor") or {}
        key = (nano, raw.get("Type"), raw.get("Action"), actor.get("ID"))
        if nano:
            # Docker's stream is not strictly ordered by timeNano across containers, so an older
            # event may still be new: only an event seen already (replayed by `since`) is dropped.
            if key in self._recent:
                return None
            self._recent[key] = None
            if len(self._recent) > RECENT_KEYS:
                self._recent.popitem(last=False)
            self._last_nano = max(self._last_nano, nano)
        attrs = {str(k): str(v) for k, v in (actor.get("Attributes") or {}).items()}
        kind = raw.get("Type")
        if kind == "container":
            return self._container(raw, attrs)
        if kind == "image":
            return self._image(raw, attrs, str(actor.get("ID") or ""))
        return None

    def _container(self, raw: dict[str, Any], attrs: dict[str, str]) -> dict[str, Any] | None:
        if attrs.get(MANAGED_LABEL) != "true":
            return None
        action, _, status = str(raw.get("Action") or "").partition(":")
        if action not in CONTAINER_ACTIONS:
            return None
        exit_code = _exit_code(attrs.get("exitCode")) if action == "die" else None
        level, message = _container_message(action, attrs, exit_code, status.strip())
        details: dict[str, Any] = {}
        if action == "kill" and attrs.get("signal"):
            details["signal"] = attrs["signal"]
        if action == "health_status":
            details["health"] = status.strip()
        if action == "oom":
            limit = self._memory_limit_mb(str((raw.get("Actor") or {}).get("ID") or ""))
            if limit:
                details["memory_limit_mb"] = limit
        return self.buffer.add(
            "container", action, message=message, level=level, ts=_ts(raw), container=attrs.get("name"),
            user=attrs.get(USER_LABEL), workspace_id=attrs.get(WORKSPACE_ID_LABEL), image=attrs.get("image"),
            exit_code=exit_code, details=details,
        )

    def _image(self, raw: dict[str, Any], attrs: dict[str, str], image_id: str) -> dict[str, Any] | None:
        action = str(raw.get("Action") or "")
        name = attrs.get("name") or image_id
        ours = name in self.known or image_id in self.known or IMAGE_LABEL in attrs
        if action not in IMAGE_ACTIONS or not ours:
            return None
        if action == "tag":
            self.known.remember(image_id)  # its later untag/delete names only the id
        return self.buffer.add("image", action, message=f"image {name}: {action}", ts=_ts(raw), image=name,
                               details={"id": image_id} if image_id and image_id != name else {})

    def _memory_limit_mb(self, container_id: str) -> int | None:
        if not container_id or self._client is None:
            return None
        try:
            memory = self._client.api.inspect_container(container_id)["HostConfig"].get("Memory") or 0
        except Exception:  # gone already, or the daemon hiccupped: the event stands without it
            return None
        return int(memory) // (1024 * 1024) or None

    # -- the stream -----------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Follow the stream until `stop` is set, reconnecting with backoff."""
        delay = 1.0
        while not stop.is_set():
            try:
                self._follow(stop)
                delay = 1.0
            except Exception as exc:  # boundary: a daemon outage must not end the thread
                log.warning("Docker event stream lost (%s); reconnecting in %.0f s", exc, delay)
            self.connected.clear()
            if stop.wait(delay):
                return
            delay = min(delay * 2, BACKOFF_MAX_SECONDS)

    def _follow(self, stop: threading.Event) -> None:
        if self._client is None:
            self._client = docker.from_env(timeout=self.timeout)
        since = self._last_nano // 1_000_000_000 if self._last_nano else self._started
        stream = self._client.api.events(since=since, filters={"type": ["container", "image"]}, decode=True)
        self.connected.set()
        try:
            for raw in stream:
                if stop.is_set():
                    return
                if isinstance(raw, dict):
                    self.handle(raw)
        finally:
            stream.close()


class HostSampler:
    """Samples disk and memory use and adds host warnings to the buffer."""

    def __init__(self, buffer: EventBuffer, root: Path, *, interval: float, disk_percent: float,
                 memory_percent: float, repeat_seconds: float = 3600) -> None:
        self.buffer = buffer
        self.root = root
        self.interval = interval
        self.thresholds = {"disk": disk_percent, "memory": memory_percent}
        self.repeat_seconds = repeat_seconds
        self._warned_at: dict[str, float | None] = {"disk": None, "memory": None}

    def readings(self) -> dict[str, tuple[float, dict[str, Any]]]:
        """{"disk"|"memory": (percent used, details)} for this moment."""
        from agent.routes_system import memory

        usage = shutil.disk_usage(self.root)
        disk = round(100.0 * usage.used / usage.total, 1) if usage.total else 0.0
        mem = memory()
        mem_details: dict[str, Any] = {"total": mem["total"], "used": mem["used"]}
        pressure = _memory_pressure()
        if pressure is not None:
            mem_details["pressure_some_avg10"] = pressure
        return {"disk": (disk, {"path": str(self.root), "total": usage.total, "used": usage.used}),
                "memory": (mem["percent"], mem_details)}

    def check(self, now: float | None = None) -> list[dict[str, Any]]:
        """One sample: the events it added (a warning, a repeat, or a recovery)."""
        now = time.monotonic() if now is None else now
        added = []
        for what, (percent, details) in self.readings().items():
            limit = self.thresholds[what]
            warned = self._warned_at[what]
            facts = {**details, "percent": percent, "threshold": limit}
            if percent >= limit:
                if warned is None or now - warned >= self.repeat_seconds:
                    self._warned_at[what] = now
                    added.append(self.buffer.add(
                        "host", what, level="warning", details=facts,
                        message=f"{what} use is {percent:g} % (warning at {limit:g} %)"))
            elif warned is not None:
                self._warned_at[what] = None
                added.append(self.buffer.add(
                    "host", f"{what}_recovered", level="info", details=facts,
                    message=f"{what} use is back to {percent:g} % (below {limit:g} %)"))
        return added

    def run(self, stop: threading.Event) -> None:
        """Sample now and then every `interval` seconds until `stop` is set."""
        while True:
            try:
                self.check()
            except OSError as exc:
                log.warning("host sample failed: %s", exc)
            if stop.wait(self.interval):
                return


def _memory_pressure() -> float | None:
    """The kernel's `some avg10` memory pressure (percent of time stalled), when PSI is available."""
    try:
        with open("/proc/pressure/memory", encoding="ascii") as fh:
            first = fh.readline().split()
    except OSError:
        return None
    for part in first[1:]:
        key, _, value = part.partition("=")
        if key == "avg10":
            try:
                return float(value)
            except ValueError:
                return None
    return None


def start_watchers(buffer: EventBuffer, known: KnownImages, config: Any) -> threading.Event:
    """Start both threads (daemons) in the serving process; returns the event that stops them."""
    stop = threading.Event()
    watcher = DockerWatcher(buffer, known, timeout=config.docker_timeout)
    sampler = HostSampler(buffer, config.workdir_deploy, interval=config.host_check_seconds,
                          disk_percent=config.disk_warn_percent, memory_percent=config.memory_warn_percent)
    for name, target in (("docker-events", watcher.run), ("host-sampler", sampler.run)):
        threading.Thread(target=target, args=(stop,), name=f"agent-{name}", daemon=True).start()
    return stop
