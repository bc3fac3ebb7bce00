"""Helpers for tests and benchmarks against the real single-node Swarm on this machine."""

from __future__ import annotations

import secrets
import subprocess
import time

from app.backends.base import ContainerSpec
from app.backends.swarm_network import network_names
from app.models.workspace import APP_PORTS
from tests.agent.helpers import TEST_IMAGE

SOCKET_URL = "unix:///var/run/docker.sock"
GATE_ENV = "SLIPWAY_GATE_SECRET"


def swarm_available() -> bool:
    """The local engine is an active Swarm manager (scripts/services.sh test makes it one)."""
    try:
        out = subprocess.run(["docker", "info", "--format", "{{.Swarm.ControlAvailable}}"],
                             capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.stdout.strip() == "true"


def workspace_spec(user: str, *, image: str = TEST_IMAGE, memory_mb: int = 64, cpu: float = 0.1,
                   secret: str | None = None) -> ContainerSpec:
    """A spec as the provision handler builds it, with its own gate secret."""
    return ContainerSpec(name=f"slipway-ws-{user}", image=image, cpu=cpu, memory_mb=memory_mb,
                         ports=dict(APP_PORTS), workspace_dir=user,
                         labels={"slipway.user": user}, env={GATE_ENV: secret or secrets.token_urlsafe(32)})


def remove_instance(instance: str, timeout: float = 60) -> None:
    """Remove every service, then network and volume, that carries `slipway.app.instance=<instance>`."""
    import docker

    client = docker.from_env(timeout=60)
    label = f"slipway.app.instance={instance}"
    for service in client.services.list(filters={"label": label}):
        service.remove()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if not client.containers.list(all=True, filters={"label": label}):
                break
        except docker.errors.NotFound:
            pass  # a container went away while being listed
        time.sleep(0.2)
    # The shared workspace network cannot carry labels (it is made from a config-only network), and
    # its config-only network stays in use until the node drops its copy of it, a moment later.
    config, shared = network_names(instance)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        left = [n for n in client.networks.list(names=[shared, config])
                if n.name in (shared, config)] + client.networks.list(filters={"label": label})
        if not left:
            break
        for network in sorted(left, key=lambda n: n.name == config):
            try:
                network.remove()
            except docker.errors.APIError:
                pass  # a task container still leaving, or the config still in use: next round
        time.sleep(0.2)
    for volume in client.volumes.list(filters={"label": label}):
        try:
            volume.remove(force=True)
        except docker.errors.APIError:
            pass


def task_container(service_id: str):
    """The running container of the service's task on this node."""
    import docker

    client = docker.from_env(timeout=60)
    found = client.containers.list(filters={"label": f"com.docker.swarm.service.id={service_id}"})
    assert found, "no running task container"
    return found[0]


def workspace_cookie(app, user, host: str) -> str:
    """A workspace cookie for `user` on `host`, backed by a live session row (as the login makes)."""
    from datetime import timedelta

    from app.extensions import db
    from app.models import UserSession
    from app.security.tokens import Grant, cookie_name, cookie_value
    from app.timeutil import utcnow

    row = UserSession(user_id=user.id, session_token=secrets.token_hex(32),
                      expires_at=utcnow() + timedelta(hours=1))
    db.session.add(row)
    db.session.commit()
    with app.test_request_context():
        return f"{cookie_name()}={cookie_value(Grant(user.id, user.username, host, row.id))}"


def wait_tasks(ids: list[int], timeout: float = 120) -> list:
    """Wait until the tasks `ids` finished (bounded); returns them."""
    from sqlalchemy import select

    from app.extensions import db
    from app.models import Task

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        db.session.rollback()  # a fresh snapshot: MariaDB's repeatable read would show the old rows
        tasks = db.session.scalars(select(Task).where(Task.id.in_(ids))).all()
        if tasks and all(t.is_finished for t in tasks):
            return tasks
        time.sleep(0.05)
    raise AssertionError(f"tasks {ids} did not finish within {timeout} s")
