"""Swarm servers without a Swarm: the form's backend field, the stored TLS bundle, node pages, task states."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from app.backends import backend_for
from app.backends.swarm_client import TLS_PURPOSE, BundleError, split_bundle
from app.backends.swarm_status import placement_problem, service_state
from app.extensions import db
from app.models import AuditLog, Server, Task
from app.security.crypto import decrypt_secret
from tests.builders import add_form, make_server
from tests.support import form_post

CERT = "-----BEGIN CERTIFICATE-----\nMIIBclientcert\n-----END CERTIFICATE-----"
KEY = "-----BEGIN PRIVATE KEY-----\nMIIEsecretkeymaterial\n-----END PRIVATE KEY-----"
CA = "-----BEGIN CERTIFICATE-----\nMIIBcacert\n-----END CERTIFICATE-----"
BUNDLE = f"{CERT}\n{KEY}\n{CA}\n"


def swarm_form(**overrides: str) -> dict[str, str]:
    """Valid add-server form data for a Swarm on the local socket."""
    return add_form(**({"name": "swarm1", "backend": "swarm", "agent_url": "unix:///var/run/docker.sock",
                        "token": "", "tls_bundle": "", "swarm_placement": ""} | overrides))


def test_admin_adds_a_swarm_on_the_socket(app, client, auth):
    auth.as_role("admin")
    response = form_post(client, "/servers/new", swarm_form(swarm_placement="node.role==manager\n"
                                                                            "spread=node.labels.zone"),
                         page="/servers/new")
    assert response.status_code == 302 and "/tasks/" in response.headers["Location"]
    with app.app_context():
        server = db.session.scalar(select(Server))
        assert (server.backend, server.agent_url, server.publish_host) == (
            "swarm", "unix:///var/run/docker.sock", "127.0.0.1")
        assert server.tls_encrypted is None and server.token_encrypted == ""
        assert server.swarm_placement == "node.role==manager\nspread=node.labels.zone"
        assert db.session.scalar(select(Task)).kind == "refresh_server"


def test_tls_bundle_is_stored_encrypted_and_never_shown(app, client, auth):
    auth.as_role("admin")
    form_post(client, "/servers/new", swarm_form(agent_url="tcp://127.0.0.1:2376", tls_bundle=BUNDLE),
              page="/servers/new")
    with app.app_context():
        server = db.session.scalar(select(Server))
        assert "secretkeymaterial" not in server.tls_encrypted
        assert decrypt_secret(server.tls_encrypted, TLS_PURPOSE) == BUNDLE.strip()
        audit_rows = db.session.scalars(select(AuditLog)).all()
        assert audit_rows and all("secretkeymaterial" not in str(row.details) for row in audit_rows)
        server_id = server.id
    for page in (f"/servers/{server_id}", f"/servers/{server_id}/edit"):
        assert "secretkeymaterial" not in client.get(page).get_data(as_text=True)
    # Editing with the bundle left blank keeps it.
    form_post(client, f"/servers/{server_id}/edit", swarm_form(name="swarm2", agent_url="tcp://127.0.0.1:2376"),
              page=f"/servers/{server_id}/edit")
    with app.app_context():
        server = db.session.get(Server, server_id)
        assert server.name == "swarm2" and decrypt_secret(server.tls_encrypted, TLS_PURPOSE) == BUNDLE.strip()


@pytest.mark.parametrize(("overrides", "message"), [
    ({"agent_url": "tcp://127.0.0.1:2376"}, "needs the client certificate bundle"),
    ({"agent_url": "http://127.0.0.1:2375", "tls_bundle": BUNDLE}, "Use tcp://host:port"),
    ({"agent_url": "unix://relative.sock"}, "unix:///absolute/path"),
    ({"agent_url": "unix:///var/run/docker.sock", "tls_bundle": BUNDLE}, "takes no TLS certificate"),
    ({"agent_url": "tcp://127.0.0.1:2376", "tls_bundle": CERT}, "not usable"),
    ({"swarm_placement": "rm -rf /"}, "neither a constraint"),
    ({"token": "t" * 40}, "takes no agent token"),
    ({"backend": "kubernetes"}, "Not a valid choice"),
])
def test_bad_swarm_input_is_refused_and_nothing_stored(app, client, auth, overrides, message):
    auth.as_role("admin")
    response = form_post(client, "/servers/new", swarm_form(**overrides), page="/servers/new")
    assert response.status_code == 200 and message in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(select(func.count(Server.id))) == 0


def test_agent_servers_refuse_swarm_fields_and_a_server_keeps_its_backend(app, client, auth):
    auth.as_role("admin")
    response = form_post(client, "/servers/new", add_form(tls_bundle=BUNDLE), page="/servers/new")
    assert "Only a Swarm server takes a TLS certificate" in response.get_data(as_text=True)
    with app.app_context():
        server_id = make_server("alpha").id
    response = form_post(client, f"/servers/{server_id}/edit", swarm_form(name="alpha"),
                         page=f"/servers/{server_id}/edit")
    assert "keeps its backend" in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.get(Server, server_id).backend == "agent"


def test_detail_page_lists_the_nodes_the_poller_stored(app, client, auth):
    auth.as_role("admin")
    nodes = [{"hostname": "node-a", "role": "manager", "state": "ready", "availability": "active",
              "cpus": 2, "memory": 4 * 1024**3, "address": "10.0.0.5", "labels": {"zone": "east"}},
             {"hostname": "node-b", "role": "worker", "state": "down", "availability": "drain",
              "cpus": 4, "memory": 8 * 1024**3, "address": "10.0.0.6", "labels": {}}]
    managed = [{"name": "slipway-ws-ann", "status": "no_room",
                "detail": "no node has room: no node has 4 GB"}]
    with app.app_context():
        server_id = make_server("swarm1", agent_url="unix:///var/run/docker.sock", backend="swarm",
                                stats={"backend": "swarm", "nodes": nodes, "managed_containers": managed}).id
    html = client.get(f"/servers/{server_id}").get_data(as_text=True)
    assert "Swarm nodes" in html and "node-a" in html and "zone=east" in html and "drain" in html
    assert "no node has 4 GB" in html


def test_backend_for_picks_by_the_row(app):
    with app.app_context():
        server = make_server("swarm1", agent_url="unix:///var/run/docker.sock", backend="swarm")
        assert type(backend_for(server)).__name__ == "SwarmBackend"
        agent = make_server("alpha")
        assert type(backend_for(agent)).__name__ == "AgentBackend"


def test_bundle_parts_and_placement_rules():
    assert split_bundle(BUNDLE) == {"cert": CERT, "key": KEY, "ca": CA}
    assert split_bundle(f"{KEY}\n{CERT}") == {"cert": CERT, "key": KEY}
    public = "-----BEGIN RSA PUBLIC KEY-----\nx\n-----END RSA PUBLIC KEY-----"
    for bad in (CERT, KEY, f"{CERT}\n{KEY}\n{KEY}", public):
        with pytest.raises(BundleError):
            split_bundle(bad)
    assert placement_problem("node.labels.gpu==yes\nnode.role != manager\nspread=node.labels.zone") is None
    assert placement_problem("node.labels.gpu=yes")


def _service(replicas: int, memory: int = 4 * 1024**3, version: int = 10) -> dict:
    return {"ID": "s1", "Version": {"Index": version}, "Spec": {
        "Name": "ws", "Mode": {"Replicated": {"Replicas": replicas}},
        "TaskTemplate": {"Resources": {"Reservations": {"MemoryBytes": memory, "NanoCPUs": 10**9}}}}}


def _task(state: str, version: int, err: str = "", desired: str = "running") -> dict:
    return {"ServiceID": "s1", "DesiredState": desired, "Version": {"Index": version},
            "Status": {"State": state, "Err": err}}


def test_task_states_in_words():
    assert service_state(_service(1), [_task("running", 12)]) == ("running", "")
    assert service_state(_service(0), []) == ("exited", "")
    assert service_state(_service(0), [_task("running", 12, desired="shutdown")])[0] == "stopping"
    status, detail = service_state(_service(1), [_task("pending", 12, "no suitable node (insufficient "
                                                                      "resources on 1 node)")])
    assert status == "no_room"
    assert detail.startswith("no node has room: no node has 4 GB of memory and 1 CPU free")
    status, detail = service_state(_service(1), [_task("rejected", 12, "No such image: nope:latest"),
                                                 _task("preparing", 13)])
    assert status == "failed" and "No such image: nope:latest" in detail
    # A failure from before the last change of the service (e.g. before a stop) is history, not news.
    assert service_state(_service(1, version=20), [_task("rejected", 12, "old"), _task("preparing", 21)])[0] \
        == "starting"


def test_a_node_without_the_workspace_network_config_is_named_with_the_fix():
    err = 'configuration network "slipway-swarm-ws-config" does not exist'
    task = {**_task("rejected", 12, err), "NodeID": "abcdef0123456789"}
    status, detail = service_state(_service(1), [task])
    assert status == "failed"
    assert detail.startswith("node abcdef012345 is not prepared for Slipway's workspaces: it has no network "
                             "slipway-swarm-ws-config; run `docker network create --config-only -o "
                             "com.docker.network.bridge.enable_icc=false slipway-swarm-ws-config` on it")
