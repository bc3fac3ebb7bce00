"""Workspace test helpers: an in-memory container backend with fault switches, builders, a task drain.

`FakeBackend` stands in for the agent in unit tests (the real agent is used by the
integration tests). Switch faults on with `FakeBackend.down = True` (every call raises
BackendUnavailable) or `FakeBackend.die_after_create = True` (the container is created,
then the call fails, as when an agent dies mid-request).
"""

from __future__ import annotations

import itertools
import time
from datetime import timedelta
from typing import Any, ClassVar

from flask import Flask
from sqlalchemy import select

from app import backends
from app.backends.base import (
    BackendConflict,
    BackendNotFound,
    BackendUnavailable,
    ContainerBackend,
    ContainerInfo,
    ContainerSpec,
)
from app.extensions import db
from app.models import Task, User
from app.models.server import Server
from app.models.workspace import Workspace
from app.security.crypto import encrypt_secret
from app.timeutil import utcnow
from app.worker.runner import Runner

_ids = itertools.count(1)
_ports = itertools.count(41000)


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
            raise BackendUnavailable("connection refused")

    def _find(self, ref: str) -> tuple[str, dict[str, Any]]:
        for cid, c in self.containers.items():
            if ref in (cid, c["name"]):
                return cid, c
        raise BackendNotFound(f"no container {ref}")

    def _info(self, cid: str) -> ContainerInfo:
        c = self.containers[cid]
        return ContainerInfo(cid, c["name"], c["status"], dict(c["ports"]), {}, c["created"])

    def create(self, spec: ContainerSpec) -> ContainerInfo:
        """Create a running container with fresh ports."""
        self._check("create")
        if any(c["name"] == spec.name for c in self.containers.values()):
            raise BackendConflict("name taken")
        cid = f"{next(_ids):064d}"
        ports = {app: next(_ports) for app in spec.ports}
        self.containers[cid] = {"name": spec.name, "status": "running", "ports": ports,
                                "created": utcnow().isoformat() + "Z", "env": dict(spec.env)}
        if self.die_after_create:
            raise BackendUnavailable("agent died mid-request")
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
        except BackendNotFound:
            return False
        del self.containers[cid]
        return True

    def status(self, ref: str) -> ContainerInfo | None:
        """Look it up."""
        self._check("status")
        try:
            return self._info(self._find(ref)[0])
        except BackendNotFound:
            return None

    def list_managed(self) -> list[ContainerInfo]:
        """All of them."""
        self._check("list")
        return [self._info(cid) for cid in self.containers]


def use_fake_backend(monkeypatch: Any) -> type[FakeBackend]:
    """Route every backend_for() to FakeBackend for this test."""
    FakeBackend.reset()
    monkeypatch.setitem(backends.BACKENDS, "agent", lambda: FakeBackend)
    return FakeBackend


def make_server(name: str = "local", *, status: str = "online", agent_url: str = "http://127.0.0.1:9",
                agent_token: str = "x" * 40, publish_host: str = "127.0.0.1") -> Server:
    """Insert and commit a server row (its agent token sealed as the app stores it)."""
    sealed = encrypt_secret(agent_token, "server.token")
    server = Server(name=name, agent_url=agent_url, token_encrypted=sealed,
                    publish_host=publish_host, status=status, cpu_cores=8, memory_total=32 * 1024**3)
    db.session.add(server)
    db.session.commit()
    return server


def make_workspace(user: User, server: Server, *, status: str = "running",
                   ports: dict[str, int] | None = None, container_id: str | None = None) -> Workspace:
    """Insert and commit a workspace row for `user` on `server`."""
    ws = Workspace(user_id=user.id, username=user.username, server_id=server.id,
                   container_name=f"slipway-ws-{user.username}", container_id=container_id,
                   image="slipway/test-workspace:latest", cpu=1.0, memory_mb=512,
                   ports=ports if ports is not None else {"vscode": 40001, "jupyter": 40002},
                   status=status, error="")
    db.session.add(ws)
    db.session.commit()
    return ws


def run_tasks(app: Flask, timeout: float = 20) -> list[Task]:
    """Run queued tasks (and their retries) until none is queued or running; returns them all."""
    runner = Runner(app, worker_id="test-runner", concurrency=1)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runner.run_once()
        with app.app_context():
            open_ = db.session.scalar(select(Task.id).where(Task.state.in_(("queued", "running"))).limit(1))
        if open_ is None:
            break
        time.sleep(0.02)
    runner._pool.shutdown(wait=True)
    with app.app_context():
        tasks = db.session.scalars(select(Task).order_by(Task.id)).all()
        for task in tasks:
            db.session.expunge(task)
    return list(tasks)
