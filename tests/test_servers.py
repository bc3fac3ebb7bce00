"""Servers area: add/edit/delete with validation, encrypted token, pages from the poll cache."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import AuditLog, Server, ServerMetric, Task
from app.security.crypto import decrypt_secret
from app.timeutil import utcnow
from tests.builders import TOKEN, add_form, make_server
from tests.support import form_post


def test_admin_adds_server_token_encrypted_and_refresh_queued(app, client, auth):
    auth.as_role("admin")
    response = form_post(client, "/servers/new", add_form(), page="/servers/new")
    assert response.status_code == 302 and "/tasks/" in response.headers["Location"]
    with app.app_context():
        server = db.session.scalar(select(Server))
        assert server.name == "alpha" and server.status == "unknown" and server.publish_host == "127.0.0.1"
        assert TOKEN not in server.token_encrypted
        assert decrypt_secret(server.token_encrypted, "server.token") == TOKEN
        task = db.session.scalar(select(Task))
        assert task.kind == "refresh_server" and task.payload == {"server_id": server.id}
        audit_rows = db.session.scalars(select(AuditLog)).all()
        assert any(row.action_type == "server_added" for row in audit_rows)
        assert all(TOKEN not in str(row.details) for row in audit_rows)


@pytest.mark.parametrize(("overrides", "message"), [
    ({"agent_url": "not a url"}, "contains spaces"),
    ({"agent_url": "http//127.0.0.1:9100"}, "must start with http"),
    ({"agent_url": "file:///etc/passwd"}, "must start with http"),
    ({"agent_url": "http://admin:secret@127.0.0.1:9100"}, "must not contain a user name or password"),
    ({"agent_url": "http://127.0.0.1:99999"}, "malformed"),
    ({"agent_url": "http://bad_host:9100"}, "not a valid host name"),
    ({"name": "alpha"}, "already exists"),
    ({"name": "bad name!"}, "Use 1-64 letters"),
    ({"name": "beta", "token": ""}, "token is required"),
    ({"name": "beta", "token": "short"}, "at least 32"),
    ({"name": "beta", "publish_host": "bad host"}, "not a valid host name"),
])
def test_bad_input_is_refused_with_a_message_and_nothing_stored(app, client, auth, overrides, message):
    auth.as_role("admin")
    with app.app_context():
        make_server("alpha", status="unknown")
    data = add_form(**({"name": "gamma"} | overrides))
    response = form_post(client, "/servers/new", data, page="/servers/new")
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and message in html
    with app.app_context():
        assert db.session.scalar(select(func.count(Server.id))) == 1
        assert db.session.scalar(select(func.count(Task.id))) == 0
    assert TOKEN not in html


def test_edit_keeps_token_when_blank_and_replaces_it_when_given(app, client, auth):
    auth.as_role("admin")
    with app.app_context():
        server_id = make_server("alpha", status="online").id
    page = client.get(f"/servers/{server_id}/edit").get_data(as_text=True)
    assert TOKEN not in page
    form_post(client, f"/servers/{server_id}/edit", add_form(name="renamed", token=""),
              page=f"/servers/{server_id}/edit")
    with app.app_context():
        server = db.session.get(Server, server_id)
        assert server.name == "renamed" and decrypt_secret(server.token_encrypted, "server.token") == TOKEN
        assert server.status == "unknown" and db.session.scalar(select(func.count(Task.id))) == 1
    new_token = "n" * 40
    form_post(client, f"/servers/{server_id}/edit", add_form(name="renamed", token=new_token),
              page=f"/servers/{server_id}/edit")
    with app.app_context():
        server = db.session.get(Server, server_id)
        assert decrypt_secret(server.token_encrypted, "server.token") == new_token
        details = [str(row.details) for row in db.session.scalars(select(AuditLog))]
        assert any("token" in d for d in details) and not any(new_token in d or TOKEN in d for d in details)


def test_list_and_detail_show_cached_figures_and_svg_charts(app, client, auth):
    auth.as_role("qvp")
    now = utcnow()
    with app.app_context():
        server = make_server("alpha", status="online", cpu_percent=42.0, memory_percent=61.5,
                             disk_percent=12.0, containers_running=3, containers_total=5, last_seen_at=now,
                             stats={"docker_version": "27.0", "managed_containers": [
                                 {"name": "ws-ada", "image": "img:1", "status": "running",
                                  "ports": {"vscode": 40001}}]})
        for minutes in range(0, 50, 5):
            db.session.add(ServerMetric(server_id=server.id, at=now - timedelta(minutes=minutes),
                                        cpu_percent=40.0 + minutes, memory_percent=60.0, disk_percent=12.0))
        db.session.commit()
        server_id = server.id
    listing = client.get("/servers/").get_data(as_text=True)
    assert "alpha" in listing and 'value="42.0"' in listing and "3 / 5" in listing and "1 online" in listing
    detail = client.get(f"/servers/{server_id}").get_data(as_text=True)
    assert "<svg" in detail and "<polyline" in detail and "ws-ada" in detail and "vscode: 40001" in detail
    for html in (listing, detail):
        assert TOKEN not in html and "style=" not in html and "<script>" not in html
    assert "Delete server" not in detail and "Test connection" not in detail  # qvp only reads
    assert client.get("/servers/99999").status_code == 404


def test_delete_and_test_connection_are_admin_only(app, client, auth):
    auth.as_role("admin")
    with app.app_context():
        server_id = make_server("alpha", status="unknown").id
        db.session.add(ServerMetric(server_id=server_id, cpu_percent=1.0))
        db.session.commit()
    response = form_post(client, f"/servers/{server_id}/test", {}, page=f"/servers/{server_id}")
    assert response.status_code == 302 and "/tasks/" in response.headers["Location"]
    again = form_post(client, f"/servers/{server_id}/test", {}, page=f"/servers/{server_id}",
                      follow_redirects=True)
    assert "already running" in again.get_data(as_text=True)
    response = form_post(client, f"/servers/{server_id}/delete", {}, page=f"/servers/{server_id}",
                         follow_redirects=True)
    assert "deleted" in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.get(Server, server_id) is None
        assert db.session.scalar(select(func.count(ServerMetric.id))) == 0
        actions = {row.action_type for row in db.session.scalars(select(AuditLog))}
        assert {"server_deleted", "server_refresh_requested"} <= actions


@pytest.mark.parametrize(("role", "expected"), [
    ("regular", {"list": 403, "detail": 403, "new": 403, "edit": 403, "test": 403, "delete": 403}),
    ("qvp", {"list": 200, "detail": 200, "new": 403, "edit": 403, "test": 403, "delete": 403}),
    ("admin", {"list": 200, "detail": 200, "new": 200, "edit": 200, "test": 302, "delete": 302}),
])
def test_servers_permission_matrix(app, client, auth, role, expected):
    auth.as_role(role)
    with app.app_context():
        server_id = make_server("alpha", status="unknown").id
    from tests.support import csrf_token

    token = csrf_token(client)
    got = {
        "list": client.get("/servers/").status_code,
        "detail": client.get(f"/servers/{server_id}").status_code,
        "new": client.get("/servers/new").status_code,
        "edit": client.get(f"/servers/{server_id}/edit").status_code,
        "test": client.post(f"/servers/{server_id}/test", data={"csrf_token": token}).status_code,
        "delete": client.post(f"/servers/{server_id}/delete", data={"csrf_token": token}).status_code,
    }
    assert got == expected


def test_delete_is_refused_while_workspaces_live_there(app, client, auth):
    from app.models import Workspace

    auth.as_role("admin")
    with app.app_context():
        server = make_server("alpha", status="unknown")
        db.session.add(Workspace(username="ada", server_id=server.id, container_name="slipway-ws-ada",
                                 image="img", cpu=1, memory_mb=512))
        db.session.commit()
        server_id = server.id
    detail = client.get(f"/servers/{server_id}").get_data(as_text=True)
    assert "Cannot delete: workspaces ada live here." in detail
    response = form_post(client, f"/servers/{server_id}/delete", {}, page=f"/servers/{server_id}",
                         follow_redirects=True)
    assert "still hosts workspaces (ada)" in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.get(Server, server_id) is not None
        assert not db.session.scalars(select(AuditLog).where(AuditLog.action_type == "server_deleted")).all()
