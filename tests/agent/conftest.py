"""Fixtures that run the real agent (`python -m agent`) on a free loopback port over the real Docker daemon.

- `docker_client`: the Docker SDK client (the test requires Docker: skipped locally, failed under CI).
- `test_image`: `slipway/test-workspace:latest`, built by its script when absent.
- `agent`: an `AgentProcess` for the whole session: `.call(method, path, json_body=..)` signs and sends.
  Everything it creates carries the label `slipway.test=<run id>` and is removed at the end.
- `start_agent(**env)`: a context manager that starts another agent (other env, e.g. a dead DOCKER_HOST).
- `spec(**overrides)`: a valid create-container body with a unique name (and the gate secret
  GATE_SECRET in its environment; send `headers=GATE` as the edge would).

The helpers behind them (run_agent, free_port, ...) live in tests/agent/helpers.py.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.agent.helpers import (
    GATE_SECRET,
    ROOT,
    RUN_ID,
    TEST_IMAGE,
    TEST_LABEL,
    AgentProcess,
    docker_available,
    run_agent,
    unique,
)
from tests.support import require_service


@pytest.fixture(scope="session")
def docker_client():
    """The Docker SDK client, or skip (fail under CI) when no daemon answers."""
    require_service("Docker", docker_available())
    import docker

    return docker.from_env(timeout=120)


@pytest.fixture(scope="session")
def test_image(docker_client) -> str:
    """The busybox test image, built by its script when it is missing or stale."""
    subprocess.run(["bash", str(ROOT / "docker/images/build-test-image.sh")], check=True, capture_output=True,
                   env={**os.environ, "TEST_IMAGE": TEST_IMAGE})
    return TEST_IMAGE


def _cleanup(docker_client, network: str) -> None:
    for container in docker_client.containers.list(all=True, filters={"label": f"{TEST_LABEL}={RUN_ID}"}):
        with contextlib.suppress(Exception):
            container.remove(force=True)
    for net in docker_client.networks.list(names=[network]):
        if net.name == network:
            with contextlib.suppress(Exception):
                net.remove()


@pytest.fixture(scope="session")
def agent(docker_client, test_image, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgentProcess]:
    """The agent under test for the whole session, over the real daemon."""
    workdir = tmp_path_factory.mktemp("agent") / "workspaces"
    workdir.mkdir()
    with run_agent(workdir) as proc:
        try:
            yield proc
        finally:
            _cleanup(docker_client, proc.network)
            shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def start_agent(tmp_path: Path) -> Callable[..., contextlib.AbstractContextManager[AgentProcess]]:
    """Start an extra agent with other environment settings (a context manager)."""

    def starter(**env: str) -> contextlib.AbstractContextManager[AgentProcess]:
        workdir = tmp_path / secrets.token_hex(3)
        workdir.mkdir()
        return run_agent(workdir, **env)

    return starter


@pytest.fixture
def spec(test_image: str) -> Callable[..., dict]:
    """A valid create-container body; keyword arguments override fields."""

    def make(**overrides: object) -> dict:
        name = unique()
        body = {
            "name": name, "image": test_image, "cpu": 0.5, "memory_mb": 64,
            "ports": {"vscode": 8080, "jupyter": 8888}, "workspace": f"users/{name}",
            "env": {"SLIPWAY_USER": "alice", "SLIPWAY_GATE_SECRET": GATE_SECRET},
            "labels": {TEST_LABEL: RUN_ID},
        }
        body.update(overrides)
        return body

    return make


