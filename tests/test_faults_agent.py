"""The agent SIGKILLed during an image build and during a pull: the task fails naming the agent; a retry
works once the agent is back.

Each kill lands mid-operation by a hook, never a guess:
- build: the Dockerfile's RUN prints a marker, then sleeps; the agent is killed as soon as the task
  shows the marker line (the agent streamed it, so Docker is inside that RUN and the agent holds
  the build's stream open).
- pull: the registry is reached through a loopback relay to 127.0.0.1:5000 that holds the first blob
  request it sees: the agent has asked Docker to pull and Docker is downloading. The agent is
  killed then, and the held connection dropped.
The failed task names the server and the agent's address, no credential is in what it recorded,
and after the agent is restarted (same port, same token) the task page's Retry succeeds.
"""

from __future__ import annotations

import contextlib
import io
import os
import secrets
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest
import requests
from sqlalchemy import select

from app.extensions import db
from app.models import AuditLog, BuildPolicy, Registry, Task, TaskEvent
from tests.agent.helpers import AgentProcess, run_agent
from tests.builders import make_user
from tests.integration_helpers import (
    REGISTRY,
    REGISTRY_PASSWORD,
    REGISTRY_USER,
    TEST_IMAGE,
    RunnerThread,
    agent_server,
    ensure_test_image,
    registry_up,
    remove_images,
    wait_task,
)
from tests.support import form_post, require_service

pytestmark = pytest.mark.integration
RUN = secrets.token_hex(3)
SERVER = "host-1"
BUILD_SLEEP_SECONDS = 15  # the margin between the marker line and the RUN's end, for the kill to land in


def _kill_agent(agent: AgentProcess) -> None:
    """SIGKILL the agent's gunicorn master and its worker (the worker holds the streams)."""
    children = subprocess.run(["pgrep", "-P", str(agent.proc.pid)], capture_output=True, text=True,
                              timeout=10, check=False).stdout.split()
    for pid in [*map(int, children), agent.proc.pid]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    agent.proc.wait(10)
    deadline = time.monotonic() + 10
    for pid in map(int, children):  # the worker is reaped by init; wait until it is really gone
        while Path(f"/proc/{pid}").exists() and "Z" not in _state(pid):
            assert time.monotonic() < deadline, f"agent worker {pid} survived SIGKILL"
            time.sleep(0.05)


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except (FileNotFoundError, IndexError):
        return "Z"


def _queued_task_id(response) -> int:
    assert response.status_code == 302, response.get_data(as_text=True)
    return int(response.headers["Location"].rstrip("/").rsplit("/", 1)[1])


def _wait_event(app, task_id: int, needle: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while True:
        with app.app_context():
            task = db.session.get(Task, task_id)
            if db.session.scalar(select(TaskEvent.id).where(TaskEvent.task_id == task_id,
                                                             TaskEvent.message.contains(needle))):
                return
            assert not task.is_finished, f"task ended before {needle!r}: {task.state} {task.message}"
        assert time.monotonic() < deadline, f"no {needle!r} in task {task_id} within {timeout} s"
        time.sleep(0.02)


def _recorded_text(app, client, task_id: int) -> list[str]:
    """Everything the failed task left where people read: message, events, audit rows, its page."""
    with app.app_context():
        task = db.session.get(Task, task_id)
        events = db.session.scalars(select(TaskEvent.message).where(TaskEvent.task_id == task_id)).all()
        audit = [str(row.details) for row in db.session.scalars(select(AuditLog))]
        texts = [task.message or "", *events, *audit]
    return [*texts, client.get(f"/tasks/{task_id}").get_data(as_text=True)]


def _retry(app, client, task_id: int) -> Task:
    """Press the task page's Retry and run the new task to its end."""
    new_id = _queued_task_id(form_post(client, f"/tasks/{task_id}/retry", {}, page=f"/tasks/{task_id}"))
    assert new_id != task_id
    with RunnerThread(app):
        return wait_task(app, new_id, timeout=180)


def _failed_naming_the_agent_then_retried(app, client, failed: Task, agent: AgentProcess, verb: str,
                                          *hidden: str) -> Task:
    """Check the killed task's failure names the agent and records none of `hidden`; then restart the
    agent (same port, same token) and return the task page's Retry run to its end."""
    print(f"failed {verb}: {failed.message}")
    assert failed.state == "failed"
    assert failed.message == (f"agent '{SERVER}' (127.0.0.1:{agent.port}) stopped answering during "
                              f"the {verb}: the connection was cut off")
    for text in _recorded_text(app, client, failed.id):
        assert not any(secret in text for secret in hidden)
    with run_agent(agent.workdir, port=agent.port, token=agent.token, AGENT_NETWORK=agent.network):
        return _retry(app, client, failed.id)


def test_agent_killed_mid_build_fails_naming_it_and_a_retry_builds(app, client, auth, tmp_path):
    ensure_test_image()
    repository, marker = f"slipway/fault-build-{RUN}", f"fault-marker-{RUN}"
    with app.app_context():
        db.session.add(BuildPolicy(id=1, allowed_bases=["slipway/test-workspace:*"], allowed_registries=[]))
        db.session.commit()
        make_user("builder", role="qvp")
    auth.login("builder")
    dockerfile = f"FROM {TEST_IMAGE}\nRUN echo {marker} && sleep {BUILD_SLEEP_SECONDS}\nUSER 1000\n"
    try:
        with agent_server(app, tmp_path / "agent-ws", name=SERVER) as (server_id, agent):
            task_id = _queued_task_id(form_post(client, "/images/build", {
                "server_id": server_id, "repository": repository, "tag": "1", "dockerfile": dockerfile,
            }, page="/images/build"))
            with RunnerThread(app):
                _wait_event(app, task_id, marker)
                _kill_agent(agent)
                failed = wait_task(app, task_id, timeout=60)
            retried = _failed_naming_the_agent_then_retried(app, client, failed, agent, "build", agent.token)
        assert retried.state == "succeeded", retried.message
        assert any(marker in line for line in retried.loaded_events)
        import docker

        assert docker.from_env(timeout=60).images.get(f"{repository}:1").id == retried.result["id"]
    finally:
        remove_images(f"{repository}:1")


class BlobRelay:
    """A loopback TCP relay to the registry that holds the first blob request it forwards.

    `blob_requested` is set when a client sends a request for `/blobs/`; that connection is then held
    (nothing more forwarded) until `drop()` closes it. Later connections pass straight through.
    """

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.blob_requested = threading.Event()
        self.dropped = threading.Event()
        self._held = False
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        for _ in range(200):  # bounded: a pull opens a handful of connections
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.upstream, timeout=30)
            self._sockets += [client, upstream]
            threading.Thread(target=self._pipe, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, False), daemon=True).start()

    def _pipe(self, source: socket.socket, target: socket.socket, from_client: bool) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                if from_client and b"/blobs/" in data:
                    with self._lock:
                        hold, self._held = not self._held, True
                    if hold:
                        self.blob_requested.set()
                        self.dropped.wait(120)
                        source.close()
                        target.close()
                        return
                target.sendall(data)
        with contextlib.suppress(OSError):
            target.shutdown(socket.SHUT_WR)

    def drop(self) -> None:
        """Close the held connection (the pull it belonged to is over)."""
        self.dropped.set()

    def close(self) -> None:
        """Stop listening and close every relayed connection."""
        self.dropped.set()
        for sock in [self.listener, *self._sockets]:
            with contextlib.suppress(OSError):
                sock.close()


def _push_unique_image(repository: str) -> None:
    """Push a small image only this run has (a LABEL on the test image) to the local registry."""
    import docker

    client = docker.from_env(timeout=120)
    dockerfile = f"FROM {TEST_IMAGE}\nLABEL slipway.fault-run={RUN}\n".encode()
    client.images.build(fileobj=io.BytesIO(dockerfile), tag=f"{REGISTRY}/{repository}:1", rm=True)
    auth = {"username": REGISTRY_USER, "password": REGISTRY_PASSWORD}
    pushed = client.api.push(f"{REGISTRY}/{repository}", tag="1", stream=True, decode=True, auth_config=auth)
    for line in pushed:
        assert "error" not in line, line
    # Only the registry keeps it: the pull must download its config blob, which the relay holds.
    client.images.remove(f"{REGISTRY}/{repository}:1")


def _delete_from_registry(repository: str) -> None:
    auth = (REGISTRY_USER, REGISTRY_PASSWORD)
    url = f"http://{REGISTRY}/v2/{repository}/manifests/1"
    head = requests.head(url, auth=auth, timeout=10, headers={
        "Accept": "application/vnd.docker.distribution.manifest.v2+json"})
    if head.status_code == 200:
        digest = head.headers["Docker-Content-Digest"]
        requests.delete(f"http://{REGISTRY}/v2/{repository}/manifests/{digest}", auth=auth, timeout=10)


def test_agent_killed_mid_pull_fails_naming_it_and_a_retry_pulls(app, client, auth, tmp_path):
    ensure_test_image()
    require_service("docker-registry on 127.0.0.1:5000", registry_up())
    repository = f"slipway/fault-pull-{RUN}"
    _push_unique_image(repository)
    with app.app_context():
        make_user("puller", role="qvp")
    auth.login("puller")
    relay = BlobRelay(("127.0.0.1", int(REGISTRY.rsplit(":", 1)[1])))
    pulled = f"127.0.0.1:{relay.port}/{repository}:1"
    try:
        with agent_server(app, tmp_path / "agent-ws", name=SERVER) as (server_id, agent):
            with app.app_context():
                registry = Registry(name="relayed", host=f"127.0.0.1:{relay.port}", username=REGISTRY_USER,
                                    created_by="boss")
                registry.set_password(REGISTRY_PASSWORD)
                db.session.add(registry)
                db.session.commit()
                registry_id = registry.id
            task_id = _queued_task_id(form_post(client, "/images/pull", {
                "server_id": server_id, "registry_id": registry_id, "repository": repository, "tag": "1",
            }, page="/images/pull"))
            with RunnerThread(app):
                assert relay.blob_requested.wait(120), "the pull never asked the registry for a blob"
                _kill_agent(agent)
                relay.drop()
                failed = wait_task(app, task_id, timeout=60)
            retried = _failed_naming_the_agent_then_retried(app, client, failed, agent, "pull", agent.token,
                                                            REGISTRY_PASSWORD)
            assert retried.state == "succeeded", retried.message
            import docker

            assert docker.from_env(timeout=60).images.get(pulled).id == retried.result["id"]
    finally:
        relay.close()
        remove_images(pulled, f"{REGISTRY}/{repository}:1")
        _delete_from_registry(repository)
