"""Workspace containers keep their published host ports across restarts by Docker's restart policy."""

from __future__ import annotations

import json
import secrets
import socket
import time
from collections.abc import Collection
from pathlib import Path

import pytest

from agent import host_ports
from agent.app import create_app
from agent.config import AgentConfig
from agent.errors import AgentError
from agent.signing import signed_headers
from tests.agent.helpers import GATE, GATE_SECRET, RUN_ID, TEST_LABEL, wait_http

pytestmark = pytest.mark.integration


def _create(agent, body: dict) -> dict:
    response = agent.call("POST", "/api/containers", json_body=body)
    assert response.status_code == 201, response.text
    return response.json()["data"]


def _host_ports(docker_client, container_id: str) -> dict[str, str]:
    bindings = docker_client.api.inspect_container(container_id)["HostConfig"]["PortBindings"]
    return {port: b["HostPort"] for port, binds in bindings.items() for b in binds}


def test_create_binds_explicit_host_ports(agent, spec, docker_client) -> None:
    data = _create(agent, spec())
    try:
        chosen = _host_ports(docker_client, data["id"])
        assert set(chosen) == {"8080/tcp", "8888/tcp"}
        assert all(port.isdigit() and int(port) > 0 for port in chosen.values()), chosen
        assert {"vscode": int(chosen["8080/tcp"]), "jupyter": int(chosen["8888/tcp"])} == data["ports"]
    finally:
        agent.call("POST", f"/api/containers/{data['id']}/delete")


def _wait_restarted(docker_client, container_id: str, seconds: float = 30) -> dict:
    """Inspect data once Docker's restart policy has started the container again."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        attrs = docker_client.api.inspect_container(container_id)
        if attrs["RestartCount"] >= 1 and attrs["State"]["Running"]:
            return attrs
        time.sleep(0.2)
    raise AssertionError(f"the container was not restarted within {seconds} s")


def test_a_restart_by_the_policy_keeps_the_published_ports(agent, spec, docker_client) -> None:
    data = _create(agent, spec())
    try:
        # `docker kill` counts as a manual stop (no restart); a crashed app does not: the test image's
        # main shell exits 1 when a gate dies, as code-server crashing would end the real entrypoint.
        crashed = docker_client.api.exec_create(data["id"], "killall slipway-gate")
        docker_client.api.exec_start(crashed["Id"])
        assert docker_client.api.exec_inspect(crashed["Id"])["ExitCode"] == 0
        _wait_restarted(docker_client, data["id"])
        again = agent.call("GET", f"/api/containers/{data['id']}/ports").json()["data"]
        assert again == data["ports"]
        for port in again.values():
            assert wait_http(f"http://127.0.0.1:{port}/", headers=GATE).status_code == 200
    finally:
        agent.call("POST", f"/api/containers/{data['id']}/delete")


class _InProcessAgent:
    """The agent app in this process (so the port picker can be steered), over the real daemon."""

    def __init__(self, workdir: Path, network: str) -> None:
        self.token = secrets.token_urlsafe(36)
        app = create_app(AgentConfig(token=self.token, workdir_deploy=workdir, network=network))
        self.client = app.test_client()

    def post(self, path: str, body: dict):
        raw = json.dumps(body).encode()
        headers = {"Content-Type": "application/json", **signed_headers(self.token, "POST", path, raw)}
        return self.client.post(path, data=raw, headers=headers)


@pytest.fixture
def held_port():
    """A port on the host IP held open by the test, as another process grabbing it would."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def _picker_offering(held: int, times: int, calls: list[list[int]]):
    real = host_ports.free_ports

    def pick(host_ip: str, count: int, taken: Collection[int] = ()) -> list[int]:
        ports = real(host_ip, count, taken)
        if len(calls) < times:
            ports[0] = held  # free a moment ago, taken before Docker binds it
        calls.append(ports)
        return ports

    return pick


def test_a_port_taken_meanwhile_is_retried_on_fresh_ports(
    agent, spec, docker_client, held_port, monkeypatch
) -> None:
    calls: list[list[int]] = []
    monkeypatch.setattr(host_ports, "free_ports", _picker_offering(held_port, 1, calls))
    local = _InProcessAgent(agent.workdir, agent.network)
    body = spec()
    response = local.post("/api/containers", body)
    assert response.status_code == 201, response.get_data(as_text=True)
    data = response.get_json()["data"]
    try:
        assert len(calls) == 2 and calls[0][0] == held_port
        assert held_port not in data["ports"].values()
        assert sorted(data["ports"].values()) == sorted(calls[1])
        assert len(docker_client.containers.list(all=True, filters={"name": body["name"]})) == 1
    finally:
        agent.call("POST", f"/api/containers/{data['id']}/delete")


def test_a_port_taken_every_time_gives_up_after_three_tries_without_orphans(
    agent, spec, docker_client, held_port, monkeypatch
) -> None:
    calls: list[list[int]] = []
    monkeypatch.setattr(host_ports, "free_ports", _picker_offering(held_port, 99, calls))
    local = _InProcessAgent(agent.workdir, agent.network)
    body = spec()
    response = local.post("/api/containers", body)
    assert response.status_code == 500
    assert response.get_json()["success"] is False
    assert "already in use" in response.get_json()["message"]
    assert len(calls) == host_ports.ATTEMPTS == 3
    assert not docker_client.containers.list(all=True, filters={"name": body["name"]})


def test_ports_of_a_stopped_workspace_are_not_handed_to_a_new_one(agent, spec, monkeypatch) -> None:
    stopped = _create(agent, spec())
    assert agent.call("POST", f"/api/containers/{stopped['id']}/stop").json()["data"]["status"] == "exited"
    offered: list[set[int]] = []
    real = host_ports.free_ports

    def pick(host_ip: str, count: int, taken: Collection[int] = ()) -> list[int]:
        offered.append(set(taken))
        return real(host_ip, count, taken)

    monkeypatch.setattr(host_ports, "free_ports", pick)
    response = _InProcessAgent(agent.workdir, agent.network).post("/api/containers", spec())
    assert response.status_code == 201, response.get_data(as_text=True)
    fresh = response.get_json()["data"]
    try:
        assert set(stopped["ports"].values()) <= offered[0]
        assert not set(stopped["ports"].values()) & set(fresh["ports"].values())
        again = agent.call("POST", f"/api/containers/{stopped['id']}/start").json()["data"]
        assert again["status"] == "running" and again["ports"] == stopped["ports"]
    finally:
        for ref in (stopped["id"], fresh["id"]):
            agent.call("POST", f"/api/containers/{ref}/delete")


def test_a_stopped_workspace_whose_port_was_taken_starts_again_on_new_ports(
    agent, spec, docker_client
) -> None:
    body = spec()
    old = _create(agent, body)
    (agent.workdir / body["workspace"] / "notes.txt").write_text("kept")
    assert agent.call("POST", f"/api/containers/{old['id']}/stop").json()["data"]["status"] == "exited"
    new_id = None
    with socket.socket() as other_program:  # takes the stopped workspace's port, as any program may
        other_program.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers do: past TIME_WAIT
        other_program.bind(("127.0.0.1", old["ports"]["vscode"]))
        other_program.listen()
        response = agent.call("POST", f"/api/containers/{old['id']}/start")
        assert response.status_code == 200, response.text
        again = response.json()["data"]
        new_id = again["id"]
        try:
            assert "new host ports" in response.json()["message"]
            assert again["status"] == "running" and again["name"] == body["name"] and new_id != old["id"]
            assert set(again["ports"]) == {"vscode", "jupyter"}
            assert old["ports"]["vscode"] not in again["ports"].values()
            # The old container is gone (no orphan under its aside name); the new one has its settings.
            named = docker_client.containers.list(all=True, filters={"name": body["name"]})
            assert [container.id for container in named] == [new_id]
            attrs = docker_client.api.inspect_container(new_id)
            assert f"SLIPWAY_GATE_SECRET={GATE_SECRET}" in attrs["Config"]["Env"]
            assert attrs["Config"]["Labels"][TEST_LABEL] == RUN_ID
            assert (attrs["HostConfig"]["NanoCpus"], attrs["HostConfig"]["Memory"]) == (500_000_000, 64 << 20)
            notes = docker_client.containers.get(new_id).exec_run(["cat", "/workspace/notes.txt"])
            assert notes.output == b"kept"
        finally:
            agent.call("POST", f"/api/containers/{new_id}/delete")


def test_the_picker_skips_taken_ports_and_gives_up_when_all_are() -> None:
    ports = host_ports.free_ports("127.0.0.1", 3)
    assert len(set(ports)) == 3
    with pytest.raises(AgentError) as refused:
        host_ports.free_ports("127.0.0.1", 1, taken=range(65536))
    assert refused.value.status == 503 and "no free host port" in str(refused.value)


def test_ports_come_from_below_the_kernels_ephemeral_range() -> None:
    ephemeral_low = int(Path(host_ports.EPHEMERAL_RANGE_FILE).read_text().split()[0])
    ports = host_ports.free_ports("127.0.0.1", 20)
    assert all(host_ports.FIRST_PORT <= port < ephemeral_low for port in ports)


def test_a_port_held_by_a_listener_is_never_picked(monkeypatch) -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        monkeypatch.setattr(host_ports, "_range_below_ephemeral", lambda: (port, port + 1))
        picked = [host_ports.free_ports("127.0.0.1", 1)[0] for _ in range(5)]
    assert picked == [port + 1] * 5
