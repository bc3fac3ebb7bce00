"""Admin pages: approval queue, user management, audit log."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from app.extensions import db
from app.models import AuditLog, Task, User, UserSession, Workspace
from tests.builders import PASSWORD, make_server, make_user
from tests.support import form_post


def fetch_user(app, username: str) -> User | None:
    with app.app_context():
        return db.session.scalar(select(User).where(User.username == username))


def audit_rows(app, action: str) -> list[AuditLog]:
    with app.app_context():
        return db.session.scalars(select(AuditLog).where(AuditLog.action_type == action)).all()


def test_approve_and_reject_from_the_queue(app, client, auth):
    auth.as_role("admin", username="boss")
    with app.app_context():
        server_id = make_server().id
        ivy = make_user("ivy", status="pending").id
        jack = make_user("jack", status="pending").id
    page = client.get("/admin/approvals").get_data(as_text=True)
    assert "ivy" in page and "jack" in page
    # The primary button is exactly "Approve"; the options form is the secondary one.
    assert page.count('btn-success btn-sm">Approve</button>') == 2
    assert page.count(f'href="/admin/workspaces/provision/{ivy}">Approve with options…</a>') == 1
    response = form_post(client, f"/admin/users/{ivy}/approve", {"back": "/admin/approvals"})
    assert response.headers["Location"] == "/admin/approvals"
    form_post(client, f"/admin/users/{jack}/reject", {"reason": "not a member"})
    assert fetch_user(app, "ivy").status == "approved"
    jack_row = fetch_user(app, "jack")
    assert jack_row.status == "rejected" and jack_row.meta["rejection_reason"] == "not a member"
    assert [row.details for row in audit_rows(app, "user_approved")] == [{"user": "ivy", "workspace": True}]
    assert audit_rows(app, "user_rejected")[0].username == "boss"
    assert "ivy" not in client.get("/admin/approvals").get_data(as_text=True)
    # One click approved AND queued the workspace with the configured defaults.
    with app.app_context():
        ws = db.session.scalar(select(Workspace).where(Workspace.username == "ivy"))
        assert (ws.server_id, ws.image, ws.cpu, ws.memory_mb, ws.status) == (
            server_id, app.config["DEFAULT_IMAGE"], app.config["DEFAULT_CPU"],
            app.config["DEFAULT_MEMORY_MB"], "provisioning")
        tasks = db.session.scalars(select(Task)).all()
        assert [(t.kind, t.state, t.payload, t.requested_by) for t in tasks] == [
            ("provision", "queued", {"workspace_id": ws.id}, "boss")]
        assert db.session.scalar(select(Workspace).where(Workspace.username == "jack")) is None


def test_approve_without_room_changes_nothing_and_says_why(app, client, auth):
    auth.as_role("admin")
    with app.app_context():
        make_server(status="offline")
        ivy = make_user("ivy", status="pending").id
    response = form_post(client, f"/admin/users/{ivy}/approve", {"back": "/admin/approvals"},
                         follow_redirects=True)
    assert "Nothing changed: No online server has room" in response.get_data(as_text=True)
    assert fetch_user(app, "ivy").status == "pending"
    assert audit_rows(app, "user_approved") == []
    with app.app_context():
        assert db.session.scalars(select(Workspace)).all() == []
        assert db.session.scalars(select(Task)).all() == []


def test_approve_without_a_workspace_is_an_explicit_choice(app, client, auth):
    auth.as_role("admin")
    with app.app_context():
        make_server()
        ivy = make_user("ivy", status="pending").id
    url = f"/admin/workspaces/provision/{ivy}"
    page = client.get(url).get_data(as_text=True)
    assert 'name="without_workspace"' in page and "checked" not in page
    response = form_post(client, url, {"server": "0", "image": app.config["DEFAULT_IMAGE"], "cpu": "1",
                                       "memory_mb": "512", "without_workspace": "y"}, page=url)
    assert response.headers["Location"] == f"/admin/users/{ivy}"
    assert fetch_user(app, "ivy").status == "approved"
    assert [row.details for row in audit_rows(app, "user_approved")] == [{"user": "ivy", "workspace": False}]
    with app.app_context():
        assert db.session.scalars(select(Workspace)).all() == []
        assert db.session.scalars(select(Task)).all() == []
    # Once approved, the options form provisions only: the "without a workspace" choice is gone.
    assert 'name="without_workspace"' not in client.get(url).get_data(as_text=True)


def test_user_approved_is_written_in_one_place():
    root = Path(__file__).resolve().parent.parent / "app"
    writers = sorted(str(path.relative_to(root)) for path in root.rglob("*.py")
                     if '"user_approved"' in path.read_text())
    assert writers == ["services/workspaces.py"]


def test_rejected_user_sees_the_reason(app, client, auth):
    with app.app_context():
        make_user("kate", status="rejected").meta = {}
        user = db.session.scalar(select(User).where(User.username == "kate"))
        user.meta = {"rejection_reason": "unknown person"}
        db.session.commit()
    auth.login("kate")
    assert "unknown person" in client.get("/pending").get_data(as_text=True)


def test_reject_without_reason_changes_nothing(app, client, auth):
    auth.as_role("admin")
    with app.app_context():
        uid = make_user("liam", status="pending").id
    form_post(client, f"/admin/users/{uid}/reject", {"reason": ""})
    assert fetch_user(app, "liam").status == "pending"
    assert audit_rows(app, "user_rejected") == []


def test_users_list_search_filter_and_paginate(app, client, auth):
    auth.as_role("admin", username="root-admin")
    with app.app_context():
        for i in range(30):
            make_user(f"member{i:02d}", status="pending" if i % 2 else "approved")
        make_user("qvpuser", role="qvp")
    page1 = client.get("/admin/users").get_data(as_text=True)
    assert "32 users" in page1 and "member00" in page1 and "qvpuser" not in page1
    page2 = client.get("/admin/users?page=2").get_data(as_text=True)
    assert "qvpuser" in page2
    found = client.get("/admin/users?q=member1&status=pending").get_data(as_text=True)
    assert "5 users" in found and "member11" in found and "member10" not in found
    by_role = client.get("/admin/users?role=qvp").get_data(as_text=True)
    assert "1 user" in by_role and "qvpuser" in by_role


def test_change_role_and_guards(app, client, auth):
    admin = auth.as_role("admin")
    with app.app_context():
        uid = make_user("mia").id
    form_post(client, f"/admin/users/{uid}/role", {"role": "qvp"})
    assert fetch_user(app, "mia").role == "qvp"
    assert audit_rows(app, "user_role_changed")[0].details == {"user": "mia", "from": "regular", "to": "qvp"}
    response = form_post(client, f"/admin/users/{admin.id}/role", {"role": "regular"}, follow_redirects=True)
    assert "cannot change your own role" in response.get_data(as_text=True)
    assert fetch_user(app, admin.username).role == "admin"
    assert form_post(client, f"/admin/users/{uid}/role", {"role": "superuser"}).status_code == 400


def test_reset_password_ends_sessions(app, client, auth):
    auth.as_role("admin")
    with app.app_context():
        uid = make_user("noah").id
    other = app.test_client()
    form_post(other, "/login", {"username": "noah", "password": PASSWORD})
    assert other.get("/workspaces/").status_code == 200
    form_post(client, f"/admin/users/{uid}/password", {"password": "a brand new secret"})
    assert other.get("/workspaces/").status_code == 302
    assert (
        form_post(other, "/login", {"username": "noah", "password": "a brand new secret"}).status_code == 302
    )
    assert audit_rows(app, "user_password_reset")[0].details["sessions_ended"] == 1


def test_reset_password_refuses_weak_password(app, client, auth):
    auth.as_role("admin")
    with app.app_context():
        user = make_user("olga")
        uid, old_hash = user.id, user.password_hash
    response = form_post(client, f"/admin/users/{uid}/password", {"password": "short"}, follow_redirects=True)
    assert "at least 12" in response.get_data(as_text=True)
    assert fetch_user(app, "olga").password_hash == old_hash


def test_delete_user_removes_row_and_sessions_and_keeps_audit(app, client, auth):
    admin = auth.as_role("admin")
    with app.app_context():
        uid = make_user("paul").id
    form_post(app.test_client(), "/login", {"username": "paul", "password": PASSWORD})
    response = form_post(client, f"/admin/users/{uid}/delete", {})
    assert response.headers["Location"].endswith("/admin/users")
    assert fetch_user(app, "paul") is None
    with app.app_context():
        assert db.session.scalar(select(UserSession).where(UserSession.user_id == uid)) is None
    assert audit_rows(app, "user_deleted")[0].details == {"user": "paul"}
    form_post(client, f"/admin/users/{admin.id}/delete", {})
    assert fetch_user(app, admin.username) is not None


def test_missing_user_answers_404(client, auth):
    auth.as_role("admin")
    assert client.get("/admin/users/99999").status_code == 404
    assert form_post(client, "/admin/users/99999/approve", {}).status_code == 404


def test_audit_page_filters(app, client, auth):
    auth.as_role("admin", username="auditor")
    with app.app_context():
        make_user("quinn")
    form_post(app.test_client(), "/login", {"username": "quinn", "password": "wrong password!"})
    page = client.get("/admin/audit?action=login_failed").get_data(as_text=True)
    assert page.count('class="audit-row"') == 1 and "quinn" in page
    by_user = client.get("/admin/audit?user=auditor").get_data(as_text=True)
    assert by_user.count('class="audit-row"') == 1
    future = client.get("/admin/audit?date_from=2999-01-01").get_data(as_text=True)
    assert "No entries match." in future
    today = client.get("/admin/audit?date_to=2999-01-01").get_data(as_text=True)
    assert today.count('class="audit-row"') == 2


def test_dashboard_counts(app, client, auth):
    auth.as_role("admin")
    with app.app_context():
        make_user(status="pending")
        make_user(status="pending")
    page = client.get("/admin/").get_data(as_text=True)
    assert 'class="count-people-pending text-danger fw-bold" href="/admin/approvals">2<' in page
    assert "Review 2 pending" in page


class QueryCounter:
    """Counts SQL statements sent while it is active."""

    def __init__(self, engine):
        self.engine = engine
        self.count = 0

    def _count(self, *args):
        self.count += 1

    def __enter__(self):
        from sqlalchemy import event

        event.listen(self.engine, "before_cursor_execute", self._count)
        return self

    def __exit__(self, *exc):
        from sqlalchemy import event

        event.remove(self.engine, "before_cursor_execute", self._count)


def queries_for(app, client, url: str) -> int:
    with app.app_context():
        engine = db.engine
    with QueryCounter(engine) as counter:
        assert client.get(url).status_code == 200
    return counter.count


def test_list_pages_query_count_does_not_grow_with_rows(app, client, auth):
    auth.as_role("admin")
    client.get("/admin/users")  # warm the session's last-seen write out of the way
    with app.app_context():
        for _ in range(3):
            make_user(status="pending")
    small = {url: queries_for(app, client, url) for url in ("/admin/users", "/admin/approvals")}
    with app.app_context():
        for i in range(60):
            db.session.add(
                User(username=f"bulk{i}", email=f"bulk{i}@example.com", password_hash="x", status="pending")
            )
        db.session.commit()
    large = {url: queries_for(app, client, url) for url in ("/admin/users", "/admin/approvals")}
    assert large == small
