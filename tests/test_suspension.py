"""Suspend / reinstate: no login, sessions and API keys end, the workspace is stopped (kept) and refuses
its owner; reinstating restores login only. Every step is audited."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import AuditLog, Task, User
from app.models.workspace import Workspace
from app.services.task_queue import enqueue
from tests.builders import PASSWORD, make_server, make_user, make_workspace
from tests.fakes import FakeBackend, use_fake_backend
from tests.support import bearer, create_key, csrf_token, form_post, run_tasks
from tests.workspace_helpers import HOST, check_auth, cookie_of, exchange, open_app


@pytest.fixture
def fake(app, monkeypatch):
    """FakeBackend everywhere and nginx checks that always pass."""
    app.config.update(NGINX_BIN="/bin/true", TASK_RETRY_BASE_SECONDS=0)
    return use_fake_backend(monkeypatch)


def actions(app) -> list[str]:
    with app.app_context():
        return list(db.session.scalars(select(AuditLog.action_type).order_by(AuditLog.id)))


def status_of(app, username) -> str:
    with app.app_context():
        return db.session.scalar(select(User.status).where(User.username == username))


def workspace(app, username) -> Workspace | None:
    with app.app_context():
        ws = db.session.scalar(select(Workspace).where(Workspace.username == username))
        if ws is not None:
            db.session.expunge(ws)
        return ws


def alice_at_work(app, fake):
    """Alice logged in, with a running workspace (a real container in the fake backend), a workspace
    cookie and an API key."""
    with app.app_context():
        user = make_user("alice")
        make_workspace(user, make_server(), status="provisioning", ports={})
        ws = db.session.scalar(select(Workspace))
        enqueue("provision", target="t", payload={"workspace_id": ws.id}, lock_key=ws.lock_key)
        db.session.commit()
        uid = user.id
    run_tasks(app)
    assert workspace(app, "alice").status == "running"
    browser = app.test_client()
    form_post(browser, "/login", {"username": "alice", "password": PASSWORD})
    _, token, _ = open_app(browser)
    cookie, _ = cookie_of(exchange(app, HOST.format("alice"), token))
    key = create_key(browser)
    assert check_auth(app, HOST.format("alice"), cookie) == 200 and key
    return uid, browser, cookie, key


def test_suspending_ends_everything_at_once_and_stops_but_keeps_the_workspace(app, client, auth, fake):
    uid, browser, cookie, key = alice_at_work(app, fake)
    auth.as_role("admin")
    page = form_post(client, f"/admin/users/{uid}/suspend", {"reason": "left the team"},
                     follow_redirects=True)
    text = page.get_data(as_text=True)
    assert "Suspended alice" in text and "being stopped" in text
    assert status_of(app, "alice") == "suspended"
    assert browser.get("/home").status_code == 302  # the session is gone
    assert app.test_client().get("/api/v1/me", headers=bearer(key)).status_code == 401
    assert check_auth(app, HOST.format("alice"), cookie) == 401
    with app.app_context():
        stop = select(Task.id).where(Task.target == "workspace:alice", Task.kind == "stop")
        assert db.session.scalar(stop) is not None
    run_tasks(app)
    assert workspace(app, "alice").status == "stopped"
    assert [c["status"] for c in FakeBackend.containers.values()] == ["exited"]  # stopped, not removed
    assert {"user_suspended", "workspace_stop_requested"} <= set(actions(app))
    with app.app_context():
        entry = db.session.scalar(select(AuditLog).where(AuditLog.action_type == "user_suspended"))
    assert entry.details["reason"] == "left the team" and entry.details["api_keys_revoked"] == 1


def test_a_suspended_user_cannot_log_in_and_is_told_why_only_with_the_right_password(app):
    with app.app_context():
        make_user("bert", status="suspended")
    browser = app.test_client()
    right = form_post(browser, "/login", {"username": "bert", "password": PASSWORD}, follow_redirects=True)
    assert "This account is suspended" in right.get_data(as_text=True)
    assert browser.get("/home").status_code == 302
    wrong = form_post(browser, "/login", {"username": "bert", "password": "not the password"})
    wrong_text = wrong.get_data(as_text=True)
    assert "suspended" not in wrong_text and "Wrong username" in wrong_text
    assert "login_refused" in actions(app) and "user_logged_in" not in actions(app)


def test_workspace_links_refuse_a_suspended_owner_even_with_a_live_session(app, client, auth):
    with app.app_context():
        user = make_user("alice")
        make_workspace(user, make_server())
    auth.login("alice")
    _, token, _ = open_app(client)
    cookie, _ = cookie_of(exchange(app, HOST.format("alice"), token))
    assert check_auth(app, HOST.format("alice"), cookie) == 200
    with app.app_context():  # the status alone, sessions untouched
        db.session.scalar(select(User).where(User.username == "alice")).status = "suspended"
        db.session.commit()
    assert check_auth(app, HOST.format("alice"), cookie) == 401
    assert "Your account is suspended" in client.get("/home", follow_redirects=True).get_data(as_text=True)


def test_reinstating_restores_login_but_leaves_the_workspace_stopped(app, client, auth, fake):
    uid, _, _, _ = alice_at_work(app, fake)
    auth.as_role("admin")
    form_post(client, f"/admin/users/{uid}/suspend", {})
    run_tasks(app)
    page = form_post(client, f"/admin/users/{uid}/reinstate", {}, follow_redirects=True)
    assert "Reinstated alice" in page.get_data(as_text=True)
    assert status_of(app, "alice") == "approved" and "user_reinstated" in actions(app)
    browser = app.test_client()
    assert form_post(browser, "/login", {"username": "alice", "password": PASSWORD}).status_code == 302
    assert browser.get("/workspaces/").status_code == 200
    run_tasks(app)
    assert workspace(app, "alice").status == "stopped"


def test_a_workspace_busy_with_a_task_does_not_hold_the_suspension_back(app, client, auth):
    with app.app_context():
        user = make_user("carl")
        ws = make_workspace(user, make_server())
        enqueue("start", target="workspace:carl", payload={"workspace_id": ws.id}, lock_key=ws.lock_key)
        db.session.commit()
        uid = user.id
    auth.as_role("admin")
    page = form_post(client, f"/admin/users/{uid}/suspend", {}, follow_redirects=True)
    assert "could not be stopped now" in page.get_data(as_text=True)
    assert status_of(app, "carl") == "suspended" and "workspace_stop_not_queued" in actions(app)


def test_guards_and_the_admin_pages(app, client, auth):
    admin = auth.as_role("admin")
    with app.app_context():
        pending = make_user("penny", status="pending").id
        suspended = make_user("sam", status="suspended").id
        approved = make_user("abe").id
    refused = form_post(client, f"/admin/users/{pending}/suspend", {}, follow_redirects=True)
    assert "Only approved accounts can be suspended" in refused.get_data(as_text=True)
    assert "cannot suspend your own" in form_post(
        client, f"/admin/users/{admin.id}/suspend", {}, follow_redirects=True).get_data(as_text=True)
    assert "Only suspended accounts" in form_post(
        client, f"/admin/users/{approved}/reinstate", {}, follow_redirects=True).get_data(as_text=True)
    assert client.post(f"/admin/users/{approved}/suspend", data={}).status_code == 400  # no CSRF token
    assert client.get(f"/admin/users/{approved}/suspend").status_code == 405
    assert status_of(app, "abe") == "approved" and status_of(app, "penny") == "pending"
    page = client.get(f"/admin/users/{approved}").get_data(as_text=True)
    assert f'action="/admin/users/{approved}/suspend"' in page
    detail = client.get(f"/admin/users/{suspended}").get_data(as_text=True)
    assert f"/admin/users/{suspended}/reinstate" in detail
    assert f"/admin/users/{suspended}/approve" not in detail
    listing = client.get("/admin/users?status=suspended").get_data(as_text=True)
    assert f'href="/admin/users/{suspended}"' in listing
    assert f'href="/admin/users/{approved}"' not in listing


def test_only_admins_suspend(app, client, auth):
    with app.app_context():
        target = make_user("tess").id
    auth.as_role("qvp")
    token = csrf_token(client, "/admin/")
    assert client.post(f"/admin/users/{target}/suspend", data={"csrf_token": token}).status_code == 403
    assert status_of(app, "tess") == "approved"
