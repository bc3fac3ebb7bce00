"""Workspace containers through the agent's HTTP API, against the real Docker daemon."""

from __future__ import annotations

import concurrent.futures
import os

import pytest
import requests

from tests.agent.helpers import GATE, GATE_SECRET, RUN_ID, TEST_LABEL, unique, wait_http

pytestmark = pytest.mark.integration


def _create(agent, body: dict) -> dict:
    response = agent.call("POST", "/api/containers", json_body=body)
    assert response.status_code == 201, response.text
    payload = response.json()
    assert payload["success"] is True
    return payload["data"]


def _refused(url: str) -> bool:
    try:
        requests.get(url, timeout=2)
    except requests.RequestException:
        return True
    return False


def test_create_answers_stop_start_delete(agent, spec, docker_client) -> None:
    body = spec()
    data = _create(agent, body)
    assert data["name"] == body["name"] and data["status"] == "running"
    assert set(data["ports"]) == {"vscode", "jupyter"}
    for app, port in data["ports"].items():
        page = wait_http(f"http://127.0.0.1:{port}/", headers=GATE)
        assert page.status_code == 200 and f"workspace: {app}" in page.text
        # Straight to the published port without the edge's secret, or with a wrong one: refused.
        for headers in (None, {"X-Slipway-Gate": GATE_SECRET + "x"}, {"X-Slipway-Gate": ""}):
            refused = requests.get(f"http://127.0.0.1:{port}/", headers=headers, timeout=5)
            assert refused.status_code == 403 and "workspace" not in refused.text
    assert (agent.workdir / body["workspace"]).is_dir()

    listed = agent.call("GET", f"/api/containers?label={TEST_LABEL}={RUN_ID}").json()["data"]
    mine = [c for c in listed if c["id"] == data["id"]]
    assert mine and mine[0]["labels"]["slipway.managed"] == "true" and mine[0]["ports"] == data["ports"]

    stopped = agent.call("POST", f"/api/containers/{body['name']}/stop").json()["data"]
    assert stopped["status"] == "exited" and stopped["ports"] == {}
    assert _refused(f"http://127.0.0.1:{data['ports']['vscode']}/")

    started = agent.call("POST", f"/api/containers/{data['id']}/start").json()["data"]
    assert started["status"] == "running"
    ports = agent.call("GET", f"/api/containers/{data['id']}/ports").json()["data"]
    assert ports == started["ports"] and set(ports) == {"vscode", "jupyter"}
    assert wait_http(f"http://127.0.0.1:{ports['jupyter']}/", headers=GATE).status_code == 200

    logs = agent.call("GET", f"/api/containers/{data['id']}/logs?tail=5")
    assert logs.status_code == 200 and isinstance(logs.json()["data"]["logs"], str)

    deleted = agent.call("POST", f"/api/containers/{data['id']}/delete", json_body={"remove_workspace": True})
    assert deleted.status_code == 200
    assert deleted.json()["data"] == {"id": data["id"], "removed_workspace": True}
    assert not (agent.workdir / body["workspace"]).exists()
    assert not docker_client.containers.list(all=True, filters={"id": data["id"]})
    again = agent.call("POST", f"/api/containers/{data['id']}/delete")
    assert again.status_code == 404 and again.json()["success"] is False


def test_limits_and_hardening_are_visible_in_inspect(agent, spec, docker_client) -> None:
    body = spec(cpu=0.5, memory_mb=96)
    data = _create(agent, body)
    attrs = docker_client.api.inspect_container(data["id"])
    host = attrs["HostConfig"]
    assert host["NanoCpus"] == 500_000_000
    assert host["Memory"] == 96 * 1024 * 1024 and host["MemorySwap"] == 96 * 1024 * 1024
    assert host["PidsLimit"] == 512
    assert host["Privileged"] is False
    assert "no-new-privileges:true" in host["SecurityOpt"]
    assert host["CapDrop"] == ["ALL"] and not host["CapAdd"]
    workspace = os.path.realpath(agent.workdir / body["workspace"])
    assert host["Binds"] == [f"{workspace}:/workspace:rw"]
    assert all(m["Source"] == workspace for m in attrs["Mounts"])
    assert not any("docker.sock" in m["Source"] for m in attrs["Mounts"])
    bindings = host["PortBindings"]
    assert {b["HostIp"] for binds in bindings.values() for b in binds} == {"127.0.0.1"}
    assert host["NetworkMode"] == agent.network
    assert attrs["Config"]["Labels"]["slipway.managed"] == "true"
    assert attrs["Config"]["Env"].count("SLIPWAY_USER=alice") == 1
    assert attrs["Config"]["User"] == "1000:1000"
    network = docker_client.api.inspect_network(agent.network)
    assert network["Options"]["com.docker.network.bridge.enable_icc"] == "false"
    agent.call("POST", f"/api/containers/{data['id']}/delete")


def test_unlabeled_container_cannot_be_touched(agent, docker_client, test_image) -> None:
    name = unique("foreign")
    foreign = docker_client.containers.run(test_image, name=name, detach=True, labels={TEST_LABEL: RUN_ID},
                                           environment={"SLIPWAY_GATE_SECRET": GATE_SECRET})
    try:
        for method, path in [
            ("POST", f"/api/containers/{name}/stop"), ("POST", f"/api/containers/{foreign.id}/start"),
            ("POST", f"/api/containers/{name}/delete"), ("GET", f"/api/containers/{name}/ports"),
            ("GET", f"/api/containers/{name}/logs"),
        ]:
            response = agent.call(method, path)
            assert response.status_code == 404, (path, response.text)
        listed = agent.call("GET", "/api/containers").json()["data"]
        assert foreign.id not in {c["id"] for c in listed}
        foreign.reload()
        assert foreign.status == "running"
    finally:
        foreign.remove(force=True)


def _fetch_inside(container, url: str) -> tuple[int, bytes]:
    """busybox wget (with the gate secret) from inside a container, bounded by `timeout` (wget -T crashes)."""
    result = container.exec_run(["timeout", "3", "wget", "-q", "--header", f"X-Slipway-Gate: {GATE_SECRET}",
                                 "-O", "-", url])
    return result.exit_code, result.output


def test_one_workspace_cannot_reach_another(agent, spec, docker_client, test_image) -> None:
    first, second = _create(agent, spec()), _create(agent, spec())
    target = docker_client.api.inspect_container(second["id"])
    target_ip = target["NetworkSettings"]["Networks"][agent.network]["IPAddress"]
    assert target_ip
    assert wait_http(f"http://127.0.0.1:{second['ports']['vscode']}/", headers=GATE).status_code == 200
    source = docker_client.containers.get(first["id"])
    code, output = _fetch_inside(source, "http://127.0.0.1:8080/")
    assert code == 0 and b"workspace: vscode" in output
    for port in (8080, 8888):
        code, output = _fetch_inside(source, f"http://{target_ip}:{port}/")
        assert code != 0 and b"workspace" not in output, output
    # Nor through the host: its published ports listen on 127.0.0.1 only, not on the bridge gateway.
    gateway = target["NetworkSettings"]["Networks"][agent.network]["Gateway"]
    code, output = _fetch_inside(source, f"http://{gateway}:{second['ports']['vscode']}/")
    assert code != 0 and b"workspace" not in output, output
    for data in (first, second):
        agent.call("POST", f"/api/containers/{data['id']}/delete")


def test_the_reachability_check_detects_an_open_network(docker_client, test_image) -> None:
    """Control for the isolation test: on a network with ICC on, the same fetch succeeds."""
    network = docker_client.networks.create(unique("icc-on"), labels={TEST_LABEL: RUN_ID})
    containers = []
    try:
        for _ in range(2):
            containers.append(docker_client.containers.run(
                test_image, name=unique("icc"), detach=True, network=network.name,
                labels={TEST_LABEL: RUN_ID}, environment={"SLIPWAY_GATE_SECRET": GATE_SECRET},
            ))
        target_ip = docker_client.api.inspect_container(containers[1].id)["NetworkSettings"]["Networks"][
            network.name]["IPAddress"]
        for _ in range(20):
            code, output = _fetch_inside(containers[0], f"http://{target_ip}:8080/")
            if code == 0:
                break
        assert code == 0 and b"workspace: vscode" in output
    finally:
        for container in containers:
            container.remove(force=True)
        network.remove()


@pytest.mark.parametrize("workspace", ["../escape", "/etc", "a/../../b", "~root", ""])
def test_traversal_is_refused(agent, spec, docker_client, workspace: str) -> None:
    body = spec(workspace=workspace)
    response = agent.call("POST", "/api/containers", json_body=body)
    assert response.status_code == 400 and "workspace" in response.json()["message"]
    assert not docker_client.containers.list(all=True, filters={"name": body["name"]})


def test_symlink_out_of_the_root_is_refused(agent, spec, tmp_path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    link = agent.workdir / f"link-{RUN_ID}"
    link.symlink_to(outside)
    try:
        response = agent.call("POST", "/api/containers", json_body=spec(workspace=f"{link.name}/home"))
        assert response.status_code == 400 and "workspace" in response.json()["message"]
        assert not (outside / "home").exists()
    finally:
        link.unlink()


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("name", "-bad name"), ("image", "UPPER CASE"), ("cpu", "two"), ("cpu", 0), ("cpu", 1000),
        ("memory_mb", 4), ("memory_mb", 64.5), ("ports", {}), ("ports", {"vscode": 70000}),
        ("ports", {"Bad App": 80}), ("env", {"1BAD": "x"}), ("labels", {"slipway.managed": "false"}),
        ("labels", {"slipway.workspace": "../x"}),
        ("labels", {"k": 5}),
    ],
)
def test_bad_input_names_the_field(agent, spec, field: str, value: object) -> None:
    response = agent.call("POST", "/api/containers", json_body=spec(**{field: value}))
    assert response.status_code == 400
    assert response.json()["message"].startswith(field)


def test_name_conflict_is_409_and_missing_image_is_404(agent, spec) -> None:
    body = spec()
    data = _create(agent, body)
    clash = agent.call("POST", "/api/containers", json_body=spec(name=body["name"]))
    assert clash.status_code == 409
    missing = agent.call("POST", "/api/containers", json_body=spec(image=f"slipway/missing-{RUN_ID}:latest"))
    assert missing.status_code == 404
    assert agent.call("POST", f"/api/containers/{data['id']}/delete").status_code == 200


def test_bad_tail_and_bad_ref_are_400(agent) -> None:
    assert agent.call("GET", "/api/containers/x/logs?tail=abc").status_code == 400
    assert agent.call("GET", "/api/containers/..%2Fx/ports").status_code in (400, 404)


def test_concurrent_creates_all_succeed(agent, spec, docker_client) -> None:
    bodies = [spec() for _ in range(6)]
    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        results = list(pool.map(lambda b: agent.call("POST", "/api/containers", json_body=b), bodies))
    assert [r.status_code for r in results] == [201] * 6
    ports = {p for r in results for p in r.json()["data"]["ports"].values()}
    assert len(ports) == 12
    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        ids = [r.json()["data"]["id"] for r in results]
        deleted = list(pool.map(lambda i: agent.call("POST", f"/api/containers/{i}/delete"), ids))
    assert [r.status_code for r in deleted] == [200] * 6


def test_an_image_without_the_gate_is_refused_and_removed(agent, spec, docker_client, test_image) -> None:
    """An image whose apps answer on the published ports themselves (the gate dropped) is refused."""
    import io

    tag = f"slipway/test-ungated:{RUN_ID}"
    dockerfile = (f"FROM {test_image}\nCMD [\"/bin/sh\", \"-c\", "
                  "\"httpd -p 0.0.0.0:8080 -h /www/vscode; httpd -f -p 0.0.0.0:8888 -h /www/jupyter\"]\n")
    docker_client.images.build(fileobj=io.BytesIO(dockerfile.encode()), tag=tag, rm=True,
                               labels={TEST_LABEL: RUN_ID})
    try:
        body = spec(image=tag)
        response = agent.call("POST", "/api/containers", json_body=body)
        assert response.status_code == 400, response.text
        assert "does not run the Slipway gate" in response.json()["message"]
        assert not docker_client.containers.list(all=True, filters={"name": body["name"]})
    finally:
        docker_client.images.remove(tag, force=True)
