"""Provisioning, lifecycle tasks, delete and the reconciler, over the in-memory FakeBackend.

The edges are replaced by a recorder of pushes here (their real behaviour is proven in
test_edge_nginx.py and the end-to-end test), so these check what the tasks store and the routes they push.
"""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import AuditLog, Task, User, Workspace
from app.routing import sync
from app.routing.nginx import WorkspaceRoutes
from app.routing.push import PushResult
from app.services import workspaces as service
from tests.builders import PASSWORD, make_server, make_user, make_workspace
from tests.fakes import FailingBackend, FakeBackend, HungBackend, SlowBackend, use_fake_backend
from tests.support import form_post, run_tasks


class EdgeRecorder:
    """Stands in for every edge: applies the pushed lines to its table, or refuses them."""

    def __init__(self) -> None:
        self.table: dict[str, str] = {}
        self.refuse = False

    def __call__(self, lines, urls, key_file) -> PushResult:
        if self.refuse:
            return PushResult(0, ["http://edge: 400 refused: bad line 1"], [])
        if lines and lines[0] == "replace":
            self.table, lines = {}, lines[1:]
        for line in lines:
            verb, user = line.split()[:2]
            if verb == "del":
                self.table.pop(user, None)
            else:
                self.table[user] = line
        return PushResult(len(lines), [], [])


@pytest.fixture
def fake(app, monkeypatch):
    """FakeBackend everywhere, an edge that takes every push, immediate retries."""
    app.config.update(TASK_RETRY_BASE_SECONDS=0, ORPHAN_GRACE_SECONDS=60)
    app.extensions["test_edge"] = recorder = EdgeRecorder()
    monkeypatch.setattr(sync, "push", recorder)
    return use_fake_backend(monkeypatch)


def _routes(app) -> str:
    return "\n".join(app.extensions["test_edge"].table.values())


def _ws(app, username="carol") -> Workspace | None:
    with app.app_context():
        ws = db.session.scalar(select(Workspace).where(Workspace.username == username))
        if ws is not None:
            db.session.expunge(ws)
        return ws


def _actions(app) -> list[str]:
    with app.app_context():
        return list(db.session.scalars(select(AuditLog.action_type).order_by(AuditLog.id)))


def test_admin_approves_and_the_workspace_is_provisioned_and_routed(app, client, auth, fake):
    with app.app_context():
        make_server()
        carol_id = make_user("carol", status="pending").id
    auth.as_role("admin")
    page = client.get(f"/admin/workspaces/provision/{carol_id}").get_data(as_text=True)
    assert "Automatic" in page and "slipway/test-workspace:latest" in page
    response = form_post(client, f"/admin/workspaces/provision/{carol_id}",
                         {"server": "0", "image": "slipway/test-workspace:latest", "cpu": "0.5",
                          "memory_mb": "256"}, page=f"/admin/workspaces/provision/{carol_id}")
    assert response.status_code == 302 and "/tasks/" in response.headers["Location"]
    with app.app_context():
        assert db.session.scalar(select(User.status).where(User.username == "carol")) == "approved"
    assert _ws(app).status == "provisioning"
    tasks = run_tasks(app)
    assert [(t.kind, t.state) for t in tasks] == [("provision", "succeeded")], tasks[0].message
    ws = _ws(app)
    assert ws.status == "running" and ws.cpu == 0.5 and ws.memory_mb == 256
    assert set(ws.ports) == {"vscode", "jupyter"} and ws.container_id
    assert f'put carol 127.0.0.1 {ws.ports["vscode"]} ' in _routes(app)
    assert {"user_approved", "workspace_provision_requested", "workspace_provisioned"} <= set(_actions(app))


def test_bad_provision_input_changes_nothing(app, client, auth, fake):
    with app.app_context():
        make_server()
        carol_id = make_user("carol", status="pending").id
    auth.as_role("admin")
    url = f"/admin/workspaces/provision/{carol_id}"
    response = form_post(client, url, {"server": "0", "image": "slipway/test-workspace:latest",
                                       "cpu": "0", "memory_mb": "5"}, page=url)
    assert response.status_code == 200 and "Number must be" in response.get_data(as_text=True)
    assert _ws(app) is None


def test_no_server_is_a_clear_refusal(app, client, auth, fake):
    with app.app_context():
        carol_id = make_user("carol", status="pending").id
    auth.as_role("admin")
    url = f"/admin/workspaces/provision/{carol_id}"
    response = form_post(client, url, {"server": "0", "image": "slipway/test-workspace:latest",
                                       "cpu": "1", "memory_mb": "512"}, page=url, follow_redirects=True)
    assert "No online server" in response.get_data(as_text=True)
    assert _ws(app) is None
    with app.app_context():
        assert db.session.scalar(select(User.status).where(User.username == "carol")) == "pending"


def test_two_approvals_at_once_make_one_container(app, fake):
    with app.app_context():
        make_server()
        carol_id = make_user("carol", status="pending").id
        admins = [make_user(f"boss{n}", role="admin").id for n in range(2)]
    outcomes: list[str] = []
    barrier = threading.Barrier(2)

    def approve(admin_id: int) -> None:
        with app.app_context():
            admin = db.session.get(User, admin_id)
            user = db.session.get(User, carol_id)
            barrier.wait()
            try:
                service.provision(user, admin, service.Plan(), approve=True)
                outcomes.append("ok")
            except service.WorkspaceError as exc:
                outcomes.append(str(exc))

    threads = [threading.Thread(target=approve, args=(a,)) for a in admins]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert outcomes.count("ok") == 1, outcomes
    run_tasks(app)
    assert len(FakeBackend.containers) == 1
    with app.app_context():
        assert db.session.scalar(select(func.count(Workspace.id))) == 1


def test_stop_start_restart_and_one_task_at_a_time(app, client, auth, fake):
    with app.app_context():
        user = make_user("carol")
        make_workspace(user, make_server(), status="provisioning", ports={})
        service.provision  # noqa: B018 - the row above stands for a provisioned one
    _provision_existing(app)
    auth.login("carol")
    assert form_post(client, "/workspaces/stop", {}, page="/workspaces/").status_code == 302
    refused = form_post(client, "/workspaces/restart", {}, page="/workspaces/", follow_redirects=True)
    assert "Another operation on this workspace is in progress" in refused.get_data(as_text=True)
    run_tasks(app)
    assert _ws(app).status == "stopped"
    assert 'stop carol' in _routes(app)
    form_post(client, "/workspaces/start", {}, page="/workspaces/")
    run_tasks(app)
    assert _ws(app).status == "running" and "put carol 127.0.0.1 " in _routes(app)
    form_post(client, "/workspaces/restart", {}, page="/workspaces/")
    run_tasks(app)
    assert _ws(app).status == "running"
    assert FakeBackend.calls.count("stop") == 2 and FakeBackend.calls.count("start") == 2


def test_a_start_on_new_ports_adopts_and_routes_them(app, client, auth, fake, monkeypatch):
    """The agent makes a stopped container again when another program took its ports: new id, new ports."""
    with app.app_context():
        make_workspace(make_user("carol"), make_server(), status="provisioning", ports={})
    _provision_existing(app)
    auth.login("carol")
    form_post(client, "/workspaces/stop", {}, page="/workspaces/")
    run_tasks(app)
    before = _ws(app)

    def start_made_again(self: FakeBackend, ref: str):
        old_id, container = self._find(ref)
        del FakeBackend.containers[old_id]
        FakeBackend.containers["made-again"] = {**container, "status": "running",
                                                "ports": {"vscode": 47001, "jupyter": 47002}}
        return self._info("made-again")

    monkeypatch.setattr(FakeBackend, "start", start_made_again)
    form_post(client, "/workspaces/start", {}, page="/workspaces/")
    run_tasks(app)
    after = _ws(app)
    assert before.container_id != after.container_id == "made-again"
    assert after.status == "running" and after.ports == {"vscode": 47001, "jupyter": 47002}
    assert "put carol 127.0.0.1 47001 47002 " in _routes(app)


def _provision_existing(app) -> None:
    with app.app_context():
        ws = db.session.scalar(select(Workspace))
        from app.services.task_queue import enqueue

        enqueue("provision", target="t", payload={"workspace_id": ws.id}, lock_key=ws.lock_key)
        db.session.commit()
    run_tasks(app)
    assert _ws(app).status == "running"


def test_other_users_cannot_touch_a_workspace(app, client, auth, fake):
    with app.app_context():
        make_workspace(make_user("carol"), make_server())
    auth.as_role("regular")
    assert form_post(client, "/workspaces/stop", {}, page="/workspaces/").status_code == 404
    assert client.get("/admin/workspaces/").status_code == 403


def _queue_provision(app) -> None:
    with app.app_context():
        ws = db.session.scalar(select(Workspace))
        from app.services.task_queue import enqueue

        enqueue("provision", target="t", payload={"workspace_id": ws.id}, lock_key=ws.lock_key)
        db.session.commit()


@pytest.mark.parametrize(
    ("backend", "state", "ws_status", "attempts", "message"),
    [
        (SlowBackend, "succeeded", "running", 1, ""),
        (HungBackend, "failed", "error", 3, "agent unavailable: status: timed out"),
        (FailingBackend, "failed", "error", 1, "no space left on device"),
    ],
    ids=["slow", "hung", "failing"],
)
def test_provision_over_a_slow_hung_or_failing_backend(app, monkeypatch, backend, state, ws_status,
                                                        attempts, message):
    app.config.update(NGINX_BIN="/bin/true", TASK_RETRY_BASE_SECONDS=0)
    use_fake_backend(monkeypatch, backend)
    with app.app_context():
        make_workspace(make_user("carol"), make_server(), status="provisioning", ports={})
    _queue_provision(app)
    [task] = run_tasks(app)
    assert (task.state, task.attempts) == (state, attempts)
    assert message in task.message
    ws = _ws(app)
    assert ws.status == ws_status
    assert (ws.container_id is not None) == (state == "succeeded")


def test_agent_dying_after_create_leaves_one_container_adopted_on_retry(app, fake):
    with app.app_context():
        make_workspace(make_user("carol"), make_server(), status="provisioning", ports={})
    FakeBackend.die_after_create = True
    _queue_provision(app)
    tasks = run_tasks(app)
    assert [t.state for t in tasks] == ["succeeded"] and tasks[0].attempts == 2
    assert FakeBackend.calls.count("create") == 1
    [(cid, container)] = FakeBackend.containers.items()
    ws = _ws(app)
    assert container["name"] == "slipway-ws-carol"
    assert ws.status == "running" and ws.container_id == cid and set(ws.ports) == {"vscode", "jupyter"}


def test_agent_dead_mid_provision_then_reconcile_then_retry(app, client, auth, fake):
    with app.app_context():
        make_workspace(make_user("carol"), make_server(), status="provisioning", ports={})
    FakeBackend.down = True
    _queue_provision(app)
    tasks = run_tasks(app)
    assert tasks[-1].state == "failed" and "agent unavailable" in tasks[-1].message
    assert tasks[-1].attempts == tasks[-1].max_attempts
    ws = _ws(app)
    assert ws.status == "error" and ws.container_id is None
    assert FakeBackend.containers == {}
    FakeBackend.down = False
    # a half-created container is left behind by a dying agent: the reconciler removes it
    FakeBackend.containers["half"] = {"name": "slipway-ws-carol", "status": "running", "ports": {},
                                      "created": "2020-01-01T00:00:00Z"}
    with app.app_context():
        assert service.reconcile_now("test") is not None
    run_tasks(app)
    assert "half" not in FakeBackend.containers
    assert "half_workspace_removed" in _actions(app)
    auth.as_role("admin")
    response = form_post(client, f"/admin/workspaces/{ws.id}/recreate", {}, page="/admin/workspaces/")
    assert response.status_code == 302
    run_tasks(app)
    assert _ws(app).status == "running" and len(FakeBackend.containers) == 1


def test_reconciler_removes_old_orphans_and_marks_vanished(app, fake):
    with app.app_context():
        server = make_server()
        make_workspace(make_user("carol"), server, container_id="gone-id")
    old = FakeBackend.add_orphan("slipway-ws-stranger", age_seconds=3600)
    young = FakeBackend.add_orphan("slipway-ws-newborn", age_seconds=5)
    with app.app_context():
        service.reconcile_now("test")
    tasks = run_tasks(app)
    assert tasks[-1].state == "succeeded", tasks[-1].message
    assert old not in FakeBackend.containers and young in FakeBackend.containers
    ws = _ws(app)
    assert ws.status == "error" and "vanished" in ws.error
    assert {"orphan_container_removed", "workspace_container_vanished"} <= set(_actions(app))
    assert 'stop carol' in _routes(app)


def test_reconciler_skips_an_unreachable_server(app, fake):
    with app.app_context():
        make_workspace(make_user("carol"), make_server())
        service.reconcile_now("test")
    FakeBackend.down = True
    tasks = run_tasks(app)
    assert tasks[-1].state == "succeeded" and tasks[-1].result["skipped"] == ["local"]
    assert _ws(app).status == "running"


def test_deleting_a_user_queues_the_workspace_removal(app, client, auth, fake):
    with app.app_context():
        carol = make_user("carol")
        carol_id = carol.id
        make_workspace(carol, make_server(), status="provisioning", ports={})
    _provision_existing(app)
    auth.as_role("admin")
    response = form_post(client, f"/admin/users/{carol_id}/delete", {"remove_folder": "y"},
                         page=f"/admin/users/{carol_id}")
    assert response.status_code == 302
    assert _ws(app).status == "deleting"
    tasks = run_tasks(app)
    assert tasks[-1].kind == "delete_workspace" and tasks[-1].state == "succeeded"
    assert tasks[-1].payload["remove_folder"] is True
    assert _ws(app) is None and FakeBackend.containers == {}
    assert "carol" not in _routes(app)
    assert "workspace_deleted" in _actions(app)


def test_nginx_refusal_fails_the_task_and_records_an_alert(app, fake):
    with app.app_context():
        make_workspace(make_user("carol"), make_server(), status="provisioning", ports={})
    app.extensions["test_edge"].refuse = True
    with app.app_context():
        ws = db.session.scalar(select(Workspace))
        from app.services.task_queue import enqueue

        enqueue("provision", target="t", payload={"workspace_id": ws.id}, lock_key=ws.lock_key)
        db.session.commit()
    tasks = run_tasks(app)
    assert tasks[-1].state == "failed" and "nginx refused" in tasks[-1].message
    with app.app_context():
        alert = db.session.scalar(select(AuditLog).where(AuditLog.action_type == "nginx_reload_failed"))
        assert alert is not None and alert.log_level == "error"
        assert db.session.scalar(select(func.count(Task.id))) == 1


def test_routes_send_a_running_workspace_without_both_ports_to_the_stopped_page(app):
    with app.app_context():
        server = make_server()
        make_workspace(make_user("carol"), server, ports={"vscode": 40001})
        make_workspace(make_user("dave"), server, ports={"vscode": 40003, "jupyter": 40004})
        make_workspace(make_user("erin"), server, status="stopped")
        routes = {route.username: route for route in sync.desired_routes()}
        publish_host = server.publish_host
    assert routes["carol"] == WorkspaceRoutes("carol", None, 40001, None)
    assert routes["dave"] == WorkspaceRoutes("dave", publish_host, 40003, 40004)
    assert routes["erin"].upstream_host is None


def test_a_regular_user_lands_on_their_workspace_page(app, client, auth, fake):
    with app.app_context():
        make_workspace(make_user("carol"), make_server(), status="provisioning", ports={})
        make_user("dave")
    _provision_existing(app)
    assert auth.login("carol").headers["Location"] == "/workspaces/"
    page = client.get("/workspaces/").get_data(as_text=True)
    assert 'id="ws-status">running<' in page
    assert ">Open VS Code</a>" in page and ">Open Jupyter</a>" in page and ">Stop</button>" in page
    assert "Recent events" in page and page.count('class="ws-event"') == 1
    assert "<td>provision</td>" in page and "succeeded" in page
    assert client.get("/home").headers["Location"] == "/workspaces/"  # the old address still arrives
    other = app.test_client()
    assert form_post(other, "/login", {"username": "dave", "password": PASSWORD}).headers["Location"] == (
        "/workspaces/")
    page = other.get("/workspaces/").get_data(as_text=True)
    assert "You have no workspace yet: your account is approved" in page
    assert "Open VS Code" not in page and "Recent events" not in page


def test_deleting_a_user_whose_workspace_has_a_task_in_flight_is_refused(app, client, auth, fake):
    with app.app_context():
        carol = make_user("carol")
        carol_id = carol.id
        ws = make_workspace(carol, make_server(), status="provisioning", ports={})
        from app.services.task_queue import enqueue

        task = enqueue("provision", target="t", payload={"workspace_id": ws.id}, lock_key=ws.lock_key)
        task.state = "running"  # a runner holds it
        db.session.commit()
        task_id = task.id
    auth.as_role("admin")
    url = f"/admin/users/{carol_id}/delete"
    response = form_post(client, url, {}, page=f"/admin/users/{carol_id}")
    assert response.headers["Location"] == f"/admin/users/{carol_id}"
    page = client.get(f"/admin/users/{carol_id}").get_data(as_text=True)
    assert f"busy with task #{task_id} (provision, running)" in page
    with app.app_context():
        assert db.session.get(User, carol_id) is not None
        assert [t.kind for t in db.session.scalars(select(Task))] == ["provision"]
    assert _ws(app).status == "provisioning" and "user_deleted" not in _actions(app)
    # Once the task has finished, the same delete removes the user and queues the removal in one go.
    with app.app_context():
        db.session.get(Task, task_id).state = "queued"
        db.session.commit()
    run_tasks(app)
    assert _ws(app).status == "running" and len(FakeBackend.containers) == 1
    assert form_post(client, url, {}, page=f"/admin/users/{carol_id}").headers["Location"] == "/admin/users"
    tasks = run_tasks(app)
    assert [(t.kind, t.state) for t in tasks] == [("provision", "succeeded"),
                                                  ("delete_workspace", "succeeded")]
    assert _ws(app) is None and FakeBackend.containers == {}  # no orphan container
    assert {"user_deleted", "workspace_delete_requested", "workspace_deleted"} <= set(_actions(app))
