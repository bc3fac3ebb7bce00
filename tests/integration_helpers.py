"""Helpers for images integration tests: a real agent registered as a server, a runner thread.

- `agent_server(app, workdir)`: starts `python -m agent` (tests/agent/conftest.run_agent) on a free
  loopback port and inserts a `Server` row pointing at it; yields (server_id, AgentProcess).
- `RunnerThread(app)`: runs queued tasks in the background until stopped (a context manager).
- `registry_up()`: True when the test registry answers on 127.0.0.1:5000 (scripts/services.sh).
- `remove_images(refs)`: best-effort removal of the images a test created.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import requests
from flask import Flask

from app.extensions import db
from app.models import Server
from app.security.crypto import encrypt_secret
from app.worker.runner import Runner
from tests.agent.conftest import AgentProcess, docker_available, run_agent

REGISTRY = "127.0.0.1:5000"
REGISTRY_USER = "slipway"
REGISTRY_PASSWORD = "registry-test-password"  # noqa: S105 - the test registry's fixed password
TEST_IMAGE = "slipway/test-workspace:latest"


def registry_up() -> bool:
    """True when the htpasswd-protected test registry answers (401 without credentials)."""
    try:
        return requests.get(f"http://{REGISTRY}/v2/", timeout=2).status_code == 401
    except requests.RequestException:
        return False


@contextlib.contextmanager
def agent_server(app: Flask, workdir: Path, name: str = "local") -> Iterator[tuple[int, AgentProcess]]:
    """A real agent plus the Server row the web app reaches it through."""
    workdir.mkdir(parents=True, exist_ok=True)
    with run_agent(workdir) as agent:
        with app.app_context():
            server = Server(name=name, agent_url=agent.base_url, publish_host="127.0.0.1", status="online",
                            token_encrypted=encrypt_secret(agent.token, "server.token"))
            db.session.add(server)
            db.session.commit()
            server_id = server.id
        yield server_id, agent


class RunnerThread:
    """The task runner polling in a background thread (as `flask worker` does)."""

    def __init__(self, app: Flask) -> None:
        self.runner = Runner(app, worker_id="images-test-runner", concurrency=2)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self.stop.is_set():
            self.runner.run_once()
            time.sleep(0.05)

    def __enter__(self) -> RunnerThread:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(30)
        self.runner._pool.shutdown(wait=True)


def wait_task(app: Flask, task_id: int, timeout: float = 120) -> object:
    """Wait until task `task_id` finishes; returns the detached row."""
    from app.models import Task

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with app.app_context():
            task = db.session.get(Task, task_id)
            if task.is_finished:
                events = list(task.events)
                db.session.expunge_all()
                task.loaded_events = [e.message for e in events]  # type: ignore[attr-defined]
                return task
        time.sleep(0.1)
    raise AssertionError(f"task {task_id} did not finish within {timeout} s")


def remove_images(*refs: str) -> None:
    """Remove images created by a test (ignore those already gone)."""
    import docker

    client = docker.from_env(timeout=60)
    for ref in refs:
        with contextlib.suppress(Exception):
            client.images.remove(ref, force=True)


__all__ = ["REGISTRY", "REGISTRY_PASSWORD", "REGISTRY_USER", "TEST_IMAGE", "docker_available"]
