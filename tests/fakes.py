"""Fakes for unit tests: a settable clock, in-memory container backends with faults, a no-op task kind.

- `FakeClock`: install as `app.config["SECURITY_CLOCK"]`; `clock.advance(seconds=30)` moves time.
- `FakeBackend`: containers in a dict shared by all instances; `down = True` makes every call
  raise AgentUnavailable, `die_after_create = True` creates the container and then fails, as
  when an agent dies mid-request. `calls` lists the operations in order.
- `SlowBackend` answers correctly after `delay` seconds; `HungBackend` waits `hang_seconds`
  (a timeout) and raises AgentUnavailable, as the real backend does when an agent stops
  answering; `FailingBackend` refuses every call with AgentError (no retry helps).
- `use_fake_backend(monkeypatch, cls)` routes every `backend_for()` to one of them.
- the `fake_noop` task kind, for task pages that need a queued task of a known kind.

The real agent over a real Docker daemon is used by the integration tests instead.
"""

from __future__ import annotations

import itertools
import threading
from datetime import datetime, timedelta
from typing import Any, ClassVar

from app import backends
from app.agent_client import AgentConflict, AgentError, AgentNotFound, AgentUnavailable
from app.backends.base import ContainerBackend, ContainerInfo, ContainerSpec
from app.models.server import Server
from app.timeutil import utcnow
from app.worker.kinds import TaskContext, task_kind

_ids = itertools.count(1)
_ports = itertools.count(41000)


class FakeClock:
    """A settable clock: `clock.advance(seconds=30)` moves time without sleeping."""

    def __init__(self, start: datetime | None = None) -> None:
        self.current = start or utcnow()

    def __call__(self) -> datetime:
        return self.current

    def advance(self, **delta: float) -> datetime:
        """Move the clock forward by a `timedelta(**delta)` and return the new time."""
        self.current += timedelta(**delta)
        return self.current


class FakeBackend(ContainerBackend):
    """Containers in a dict shared by all instances; faults are class-level switches."""

    containers: ClassVar[dict[str, dict[str, Any]]] = {}
    down: ClassVar[bool] = False
    die_after_create: ClassVar[bool] = False
    calls: ClassVar[list[str]] = []

    def __init__(self, server: Server) -> None:
        self.server = server

    @classmethod
    def reset(cls) -> None:
        """Forget every container and fault."""
        cls.containers, cls.down, cls.die_after_create, cls.calls = {}, False, False, []

    @classmethod
    def add_orphan(cls, name: str, age_seconds: int) -> str:
        """A managed container that no workspace claims, created `age_seconds` ago."""
        cid = f"orphan{next(_ids):058d}"
        created = (utcnow() - timedelta(seconds=age_seconds)).isoformat() + "Z"
        cls.containers[cid] = {"name": name, "status": "running", "ports": {}, "created": created}
        return cid

    def _check(self, op: str) -> None:
        self.calls.append(op)
        if self.down:
            raise AgentUnavailable("connection refused")

    def _find(self, ref: str) -> tuple[str, dict[str, Any]]:
        for cid, c in self.containers.items():
            if ref in (cid, c["name"]):
                return cid, c
        raise AgentNotFound(f"no container {ref}")

    def _info(self, cid: str) -> ContainerInfo:
        c = self.containers[cid]
        return ContainerInfo(cid, c["name"], c["status"], dict(c["ports"]), {}, c["created"])

    def create(self, spec: ContainerSpec) -> ContainerInfo:
        """Create a running container with fresh ports."""
        self._check("create")
        if any(c["name"] == spec.name for c in self.containers.values()):
            raise AgentConflict("name taken")
        cid = f"{next(_ids):064d}"
        ports = {app: next(_ports) for app in spec.ports}
        self.containers[cid] = {"name": spec.name, "status": "running", "ports": ports,
                                "created": utcnow().isoformat() + "Z", "env": dict(spec.env)}
        if self.die_after_create:
            raise AgentUnavailable("agent died mid-request")
        return self._info(cid)

    def start(self, ref: str) -> ContainerInfo:
        """Mark running."""
        self._check("start")
        cid, c = self._find(ref)
        c["status"] = "running"
        return self._info(cid)

    def stop(self, ref: str) -> ContainerInfo:
        """Mark exited."""
        self._check("stop")
        cid, c = self._find(ref)
        c["status"] = "exited"
        return self._info(cid)

    def remove(self, ref: str, *, remove_workspace: bool = False) -> bool:
        """Drop it; False when already gone."""
        self._check("remove")
        try:
            cid, _ = self._find(ref)
        except AgentNotFound:
            return False
        del self.containers[cid]
        return True

    def status(self, ref: str) -> ContainerInfo | None:
        """Look it up."""
        self._check("status")
        try:
            return self._info(self._find(ref)[0])
        except AgentNotFound:
            return None

    def list_managed(self) -> list[ContainerInfo]:
        """All of them."""
        self._check("list")
        return [self._info(cid) for cid in self.containers]


class SlowBackend(FakeBackend):
    """Answers like FakeBackend, each call after `delay` seconds."""

    delay: ClassVar[float] = 0.2

    def _check(self, op: str) -> None:
        threading.Event().wait(self.delay)
        super()._check(op)


class HungBackend(FakeBackend):
    """Never answers: each call waits `hang_seconds` (its timeout), then raises AgentUnavailable."""

    hang_seconds: ClassVar[float] = 0.2
    release: ClassVar[threading.Event] = threading.Event()  # set it to let waiting calls through

    @classmethod
    def reset(cls) -> None:
        """Forget every container and fault, and hang again."""
        super().reset()
        cls.release = threading.Event()

    def _check(self, op: str) -> None:
        self.calls.append(op)
        if not self.release.wait(self.hang_seconds):
            raise AgentUnavailable(f"{op}: timed out after {self.hang_seconds} s")


class FailingBackend(FakeBackend):
    """Refuses every call with AgentError, as a backend that answers but will not do it."""

    message: ClassVar[str] = "the backend refused: no space left on device"

    def _check(self, op: str) -> None:
        self.calls.append(op)
        raise AgentError(self.message)


def use_fake_backend(monkeypatch: Any, cls: type[FakeBackend] = FakeBackend) -> type[FakeBackend]:
    """Route every backend_for() to `cls` for this test, with no containers and no faults."""
    cls.reset()
    monkeypatch.setitem(backends.BACKENDS, "agent", lambda: cls)
    return cls


@task_kind("fake_noop", max_attempts=3)
def noop_handler(ctx: TaskContext) -> dict[str, Any]:
    """Do nothing and succeed (tasks of this kind are queued for pages and streams to show)."""
    ctx.progress(50, "half way")
    return {"ran": True}
