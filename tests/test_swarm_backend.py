"""SwarmBackend against the real single-node Swarm on this machine (scripts/services.sh test inits it)."""

from __future__ import annotations

import secrets
import subprocess
from collections.abc import Iterator
from datetime import timedelta

import pytest
import requests
from sqlalchemy import select

import docker
from app.agent_client import AgentError, AgentNotFound
from app.backends.swarm import SwarmBackend
from app.backends.swarm_network import ICC_OPTION, network_names
from app.extensions import db
from app.models import Server
from tests.agent.helpers import wait_http
from tests.builders import make_server
from tests.support import require_service
from tests.swarmkit import SOCKET_URL, remove_instance, swarm_available, task_container, workspace_spec
from tests.wsstack import ensure_test_image, wait_until

pytestmark = pytest.mark.integration


@pytest.fixture
def backend(app) -> Iterator[SwarmBackend]:
    """A SwarmBackend over the local socket for a fresh instance name; its objects removed afterwards."""
    require_service("docker swarm", swarm_available())
    ensure_test_image()
    instance = f"swtest-{secrets.token_hex(4)}"
    app.config["INSTANCE_NAME"] = instance
    app.config["SWARM_START_TIMEOUT"] = 60
    with app.app_context():
        server = make_server("swarm1", agent_url=SOCKET_URL, backend="swarm")
        backend = SwarmBackend(server)
        try:
            yield backend
        finally:
            backend.conn.close()
            remove_instance(instance)


def _gate(secret: str) -> dict[str, str]:
    return {"X-Slipway-Gate": secret}


def _refused(url: str) -> bool:
    try:
        requests.get(url, timeout=2)
    except requests.RequestException:
        return True
    return False


def _fetch_inside(container, url: str, secret: str) -> tuple[int, bytes]:
    """busybox wget from inside a task container (bounded by `timeout`; wget -T crashes)."""
    result = container.exec_run(["timeout", "3", "wget", "-q", "--header", f"X-Slipway-Gate: {secret}",
                                 "-O", "-", url])
    return result.exit_code, result.output


def _when(backend, ref: str, status: str):
    info = backend.status(ref)
    return info if info is not None and info.status == status else None


def test_lifecycle_hardening_and_ports(backend):
    spec = workspace_spec(f"ann{secrets.token_hex(2)}")
    secret = spec.env["SLIPWAY_GATE_SECRET"]
    info = backend.create(spec)
    assert info.running and set(info.ports) == {"vscode", "jupyter"} and info.name == spec.name
    for app, port in info.ports.items():
        page = wait_http(f"http://127.0.0.1:{port}/", headers=_gate(secret))
        assert page.status_code == 200 and f"workspace: {app}" in page.text
        assert requests.get(f"http://127.0.0.1:{port}/", timeout=5).status_code == 403

    attrs = backend.conn.api.inspect_service(info.id)["Spec"]
    task = attrs["TaskTemplate"]
    assert task["ContainerSpec"]["CapabilityDrop"] == ["ALL"] and task["ContainerSpec"]["Init"] is True
    assert task["Resources"]["Limits"] == {"NanoCPUs": 10**8, "MemoryBytes": 64 * 1024**2, "Pids": 512}
    assert task["Resources"]["Reservations"] == {"NanoCPUs": 10**8, "MemoryBytes": 64 * 1024**2}
    assert attrs["Labels"]["slipway.managed"] == "true"
    assert attrs["Labels"]["slipway.user"] == spec.workspace_dir
    attached = task.get("Networks") or attrs.get("Networks") or []
    networks = [backend.conn.api.inspect_network(n["Target"]) for n in attached]
    config, shared = network_names(backend.instance)
    assert [(n["Name"], n["Driver"], n["Scope"]) for n in networks] == [(shared, "bridge", "swarm")]
    assert networks[0]["ConfigFrom"] == {"Network": config}
    assert backend.conn.api.inspect_network(config)["Options"] == {ICC_OPTION: "false"}
    container = task_container(info.id).attrs["HostConfig"]
    assert container["CapDrop"] == ["ALL"] and container["PidsLimit"] == 512

    assert [i.id for i in backend.list_managed()] == [info.id]
    assert backend.status(spec.name).id == info.id and backend.status(info.id[:12]).id == info.id

    stopped = backend.stop(spec.name)
    assert stopped.status == "exited" and stopped.ports == {}
    assert _refused(f"http://127.0.0.1:{info.ports['vscode']}/")
    assert backend.stop(info.id).status == "exited"  # stopping a stopped one is a no-op

    started = backend.start(info.id)
    assert started.running and set(started.ports) == {"vscode", "jupyter"}
    page = wait_http(f"http://127.0.0.1:{started.ports['jupyter']}/", headers=_gate(secret))
    assert page.status_code == 200
    assert backend.start(info.id).ports == started.ports  # starting a running one changes nothing

    assert backend.remove(info.id) is True
    assert backend.status(spec.name) is None and backend.list_managed() == []
    assert backend.remove(info.id) is False
    with pytest.raises(AgentNotFound):
        backend.start(spec.name)


def test_a_missing_image_fails_with_the_engines_reason(backend):
    spec = workspace_spec("nobody", image="127.0.0.1:5000/slipway/does-not-exist:nope")
    with pytest.raises(AgentError) as caught:
        backend.create(spec)
    message = str(caught.value)
    assert "the task was rejected" in message and "does-not-exist" in message, message
    assert backend.status(spec.name) is None  # the failed service is not left behind


def test_a_reservation_larger_than_any_node_says_no_node_has_room(backend):
    total = docker.from_env().info()["MemTotal"]
    memory_mb = (total // 1024**2) * 4
    spec = workspace_spec("huge", memory_mb=memory_mb)
    with pytest.raises(AgentError) as caught:
        backend.create(spec)
    message = str(caught.value)
    assert message.startswith("no node has room: no node has ") and "of memory" in message, message
    assert "insufficient resources" in message
    assert backend.status(spec.name) is None


def test_one_workspace_cannot_reach_another(backend):
    first_spec, second_spec = workspace_spec("iso1"), workspace_spec("iso2")
    first, second = backend.create(first_spec), backend.create(second_spec)
    source = task_container(first.id)
    shared = network_names(backend.instance)[1]
    target = task_container(second.id).attrs["NetworkSettings"]["Networks"][shared]
    target_ip = target["IPAMConfig"]["IPv4Address"] if target.get("IPAMConfig") else target["IPAddress"]
    own, theirs = first_spec.env["SLIPWAY_GATE_SECRET"], second_spec.env["SLIPWAY_GATE_SECRET"]
    code, output = _fetch_inside(source, "http://127.0.0.1:8080/", own)
    assert code == 0 and b"workspace: vscode" in output  # the fetch itself works
    # Over the shared bridge (no traffic between its containers) nothing answers at all, not even
    # with the right secret (which a neighbour would not have).
    for port in (8080, 8888):
        code, output = _fetch_inside(source, f"http://{target_ip}:{port}/", theirs)
        assert code != 0 and b"workspace" not in output, output
    # Through the host's published port (the way the edge comes): only the gate answers, refusing
    # anyone without that workspace's secret.
    gateway = source.attrs["NetworkSettings"]["Networks"].get("docker_gwbridge", {}).get("Gateway")
    if gateway is None:
        gateway = docker.from_env().networks.get("docker_gwbridge").attrs["IPAM"]["Config"][0]["Gateway"]
    code, output = _fetch_inside(source, f"http://{gateway}:{second.ports['vscode']}/", own)
    assert code != 0 and b"workspace" not in output, output


def test_files_survive_a_recreated_service_and_removal_can_take_them(backend):
    user = f"vol{secrets.token_hex(2)}"
    info = backend.create(workspace_spec(user))
    volume = info.labels["slipway.volume"]
    # The test image's /workspace belongs to root (the real image's to the workspace user): write as root.
    result = task_container(info.id).exec_run(["sh", "-c", "echo kept > /workspace/note.txt"], user="0")
    assert result.exit_code == 0, result.output
    assert backend.remove(info.id) is True
    assert docker.from_env().volumes.get(volume).name == volume

    again = backend.create(workspace_spec(user))
    assert again.labels["slipway.volume"] == volume
    result = task_container(again.id).exec_run(["cat", "/workspace/note.txt"])
    assert result.exit_code == 0 and result.output.strip() == b"kept"
    assert backend.remove(again.id, remove_workspace=True) is True
    with pytest.raises(docker.errors.NotFound):
        docker.from_env().volumes.get(volume)


def test_a_drained_node_holds_the_task_and_says_why(backend):
    """One node here: "move to another node" cannot happen; draining shows the message, files wait."""
    user = f"drain{secrets.token_hex(2)}"
    info = backend.create(workspace_spec(user))
    task_container(info.id).exec_run(["sh", "-c", "echo kept > /workspace/note.txt"], user="0")
    node = docker.from_env().info()["Swarm"]["NodeID"]
    subprocess.run(["docker", "node", "update", "--availability", "drain", node], check=True,
                   capture_output=True, timeout=30)
    try:
        waiting = wait_until(lambda: _when(backend, info.id, "pending"), timeout=60, every=0.3)
        assert "no node can run it now" in waiting.detail and "local volume" in waiting.detail
        assert "cannot follow a workspace to another node" in waiting.detail
        listed = [i for i in backend.list_managed() if i.id == info.id]  # what the poller and reconciler read
        assert [(i.status, i.detail) for i in listed] == [("pending", waiting.detail)]
    finally:
        subprocess.run(["docker", "node", "update", "--availability", "active", node], check=True,
                       capture_output=True, timeout=30)
    back = wait_until(lambda: _when(backend, info.id, "running"), timeout=60, every=0.3)
    result = task_container(back.id).exec_run(["cat", "/workspace/note.txt"])
    assert result.exit_code == 0 and result.output.strip() == b"kept"


def test_the_poller_records_nodes_and_services_and_a_wrong_socket_is_unreachable(app, backend):
    from app.worker.poller import Poller

    info = backend.create(workspace_spec("polled"))
    with app.app_context():
        make_server("nowhere", agent_url="unix:///nonexistent/docker.sock", backend="swarm", status="unknown")
        poller = Poller(app, holder="swarm-test")
        assert poller.acquire_lease()
        report = poller.poll_round()
        assert report.outcomes == {"ok": 1, "unreachable": 1}
        rows = {s.name: s for s in db.session.scalars(select(Server))}
        stats = rows["swarm1"].stats
        assert stats["backend"] == "swarm" and len(stats["nodes"]) == 1
        node = stats["nodes"][0]
        assert node["state"] == "ready" and node["role"] == "manager" and node["memory"] > 0
        assert [(c["name"], c["status"]) for c in stats["managed_containers"]] == [(info.name, "running")]
        assert rows["swarm1"].memory_total == node["memory"] and rows["swarm1"].containers_running == 1
        assert rows["nowhere"].last_outcome == "unreachable"
        poller.pool.shutdown(wait=True)


def test_the_reconciler_removes_an_orphan_service(app, backend):
    from app.workspaces.reconcile import _reconcile_server

    orphan = backend.create(workspace_spec("orphan"))
    app.config["ORPHAN_GRACE_SECONDS"] = 0

    class Ctx:
        def log(self, *args, **kwargs) -> None:
            pass

    with app.app_context():
        server = db.session.scalar(select(Server).where(Server.name == "swarm1"))
        assert _reconcile_server(Ctx(), server, timedelta(0)) == 1
    assert backend.status(orphan.id) is None


def test_an_admin_adds_the_swarm_and_the_connection_check_reads_its_nodes(app, client, auth):
    from app.models import Task, TaskEvent
    from app.worker.runner import Runner
    from tests.builders import add_form
    from tests.support import form_post
    from tests.wsstack import wait_until

    require_service("docker swarm", swarm_available())
    auth.as_role("admin")
    data = add_form(name="cluster", backend="swarm", agent_url=SOCKET_URL, token="")
    response = form_post(client, "/servers/new", data, page="/servers/new")
    assert response.status_code == 302, response.get_data(as_text=True)
    runner = Runner(app, concurrency=1)
    assert runner.run_once() == 1

    def finished():
        with app.app_context():
            task = db.session.scalar(select(Task).where(Task.kind == "refresh_server"))
            return task if task.is_finished else None

    task = wait_until(finished, timeout=30, every=0.1)
    assert task.state == "succeeded", task.message
    with app.app_context():
        events = db.session.scalars(select(TaskEvent.message).where(TaskEvent.task_id == task.id)).all()
        assert any("1 nodes, 1 ready" in message for message in events), events
        server = db.session.scalar(select(Server).where(Server.name == "cluster"))
        assert server.status == "online" and server.stats["nodes"][0]["state"] == "ready"
        server_id = server.id
    page = client.get(f"/servers/{server_id}").get_data(as_text=True)
    assert "Swarm nodes" in page and "manager" in page and "ready" in page
    runner.shutdown(5)


def test_a_refused_service_leaves_nothing_behind(backend):
    spec = workspace_spec("badref", image="Not A Valid Reference!")
    with pytest.raises(AgentError):
        backend.create(spec)
    assert backend.list_managed() == []


def test_a_workspace_network_config_that_lets_containers_talk_is_refused(backend):
    config, shared = network_names(backend.instance)
    owned = {"slipway.app.instance": backend.instance}
    backend.conn.api.create_network(config, driver="bridge", labels=owned, options={ICC_OPTION: "true"})
    with pytest.raises(AgentError) as caught:
        backend.create(workspace_spec("talky"))
    assert f"{ICC_OPTION}=false" in str(caught.value) and backend.list_managed() == []
    assert shared not in [n["Name"] for n in backend.conn.api.networks(names=[shared])]


def test_workers_making_the_workspace_network_at_once_end_with_one_of_each(backend):
    import threading

    from app.backends.swarm_client import SwarmConnection
    from app.backends.swarm_network import workspace_network

    made, errors = [], []

    def make() -> None:
        conn = SwarmConnection(SOCKET_URL, None, timeout=60)
        try:
            made.append(workspace_network(conn, backend.instance, {"slipway.app.instance": backend.instance}))
        except AgentError as exc:
            errors.append(exc.message)
        finally:
            conn.close()

    workers = [threading.Thread(target=make) for _ in range(8)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert errors == [] and set(made) == {network_names(backend.instance)[1]}
    for name in network_names(backend.instance):
        assert [n["Name"] for n in backend.conn.api.networks(names=[name])].count(name) == 1, name
