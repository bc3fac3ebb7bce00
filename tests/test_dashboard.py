"""The dashboard per role, its links to filtered lists, and its constant query count."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from app.extensions import db
from app.models import Server, Task, User
from app.models.workspace import Workspace
from app.timeutil import utcnow
from tests.builders import make_user
from tests.page_helpers import count_of, href_of
from tests.support import StatementCounter

SERVER_STATES = ("online", "offline", "degraded")
WORKSPACE_STATES = ("running", "stopped", "error")


def add_rows(n: int, prefix: str = "r") -> None:
    """n each of pending users, servers, workspaces and tasks (call inside an app context)."""
    now = utcnow()
    users = [User(username=f"{prefix}{i}", email=f"{prefix}{i}@example.com", password_hash="x",
                  role="regular", status="pending" if i % 2 else "approved") for i in range(n)]
    servers = [Server(name=f"{prefix}srv{i}", agent_url="http://127.0.0.1:9", token_encrypted="x",
                      publish_host="127.0.0.1", status=SERVER_STATES[i % 3]) for i in range(n)]
    db.session.add_all(users + servers)
    db.session.flush()
    db.session.add_all(
        Workspace(user_id=user.id, username=user.username, server_id=servers[i].id,
                  container_name=f"slipway-ws-{user.username}", image="img", cpu=1.0, memory_mb=512,
                  status=WORKSPACE_STATES[i % 3])
        for i, user in enumerate(users)
    )
    db.session.add_all(
        Task(kind=("build", "push", "provision")[i % 3], target=f"t{i}",
             state=("running", "queued", "failed", "succeeded")[i % 4], created_at=now - timedelta(minutes=i))
        for i in range(n)
    )
    db.session.commit()


def test_admin_dashboard_counts_what_needs_acting_on_and_links_to_filtered_lists(app, client, auth):
    auth.as_role("admin")
    now = utcnow()
    with app.app_context():
        make_user("waiting", status="pending")
        up = Server(name="up", agent_url="http://127.0.0.1:9", token_encrypted="x", publish_host="h",
                    status="online")
        down = Server(name="down", agent_url="http://127.0.0.1:9", token_encrypted="x", publish_host="h",
                      status="offline")
        db.session.add_all([up, down])
        db.session.flush()
        owners = (("alice", "running"), ("bob", "error"), ("carol", "stopped"), ("dave", "stopped"))
        for name, status in owners:
            owner = make_user(name)
            db.session.add(Workspace(user_id=owner.id, username=name, server_id=up.id, image="img", cpu=1.0,
                                     memory_mb=512, container_name=f"slipway-ws-{name}", status=status))
        db.session.add_all([
            Task(kind="provision", target="now-failed", state="failed", created_at=now - timedelta(hours=1)),
            Task(kind="provision", target="old-failed", state="failed", created_at=now - timedelta(hours=30)),
            Task(kind="build", target="building", state="running", created_at=now),
            Task(kind="build", target="build-failed", state="failed", created_at=now),
            Task(kind="push", target="pushed", state="succeeded", created_at=now),
        ])
        db.session.commit()

    page = client.get("/admin/").get_data(as_text=True)
    assert count_of(page, "people-pending") == 1
    assert (count_of(page, "servers-online"), count_of(page, "servers-offline")) == (1, 1)
    assert [count_of(page, f"workspaces-{s}") for s in ("running", "stopped", "error")] == [1, 2, 1]
    assert [count_of(page, f"tasks-{s}") for s in ("running", "queued", "failed")] == [1, 0, 2]
    image_keys = ("images-build-running", "images-build-failed", "images-push-failed")
    assert [count_of(page, key) for key in image_keys] == [1, 1, 0]
    assert [count_of(page, f"alerts-{s}") for s in ("critical", "high", "medium", "low")] == [0, 0, 0, 0]

    # Each figure opens a list filtered to exactly what it counted.
    approvals = client.get(href_of(page, "people-pending")).get_data(as_text=True)
    assert "waiting" in approvals
    offline = client.get(href_of(page, "servers-offline")).get_data(as_text=True)
    assert ">down</a>" in offline and ">up</a>" not in offline
    failed_ws = client.get(href_of(page, "workspaces-error")).get_data(as_text=True)
    assert "<td>bob</td>" in failed_ws and "<td>alice</td>" not in failed_ws
    failed_tasks = client.get(href_of(page, "tasks-failed")).get_data(as_text=True)
    assert "now-failed" in failed_tasks and "build-failed" in failed_tasks
    assert "old-failed" not in failed_tasks and "building" not in failed_tasks
    assert "created in the last 24 h" in failed_tasks
    builds = client.get(href_of(page, "images-build-running")).get_data(as_text=True)
    assert "building" in builds and "now-failed" not in builds


def test_filtered_lists_ignore_unknown_filter_values(client, auth):
    auth.as_role("admin")
    assert client.get("/servers/?status=bogus").status_code == 200
    assert client.get("/admin/workspaces/?status=bogus").status_code == 200
    for hours in ("abc", "-1", "0", "99999999"):
        page = client.get(f"/tasks/?state=failed&hours={hours}").get_data(as_text=True)
        assert "created in the last" not in page


@pytest.mark.parametrize("role", ["admin", "qvp"])
def test_dashboard_query_count_does_not_grow_with_rows(app, client, auth, role):
    auth.as_role(role)
    with app.app_context():
        add_rows(3, "a")
        engine = db.engine
    client.get("/admin/")  # warm up: first-request work is not the dashboard's
    with StatementCounter(engine) as few:
        small = client.get("/admin/").get_data(as_text=True)
    with app.app_context():
        add_rows(47, "b")
    with StatementCounter(engine) as many:
        large = client.get("/admin/").get_data(as_text=True)
    assert count_of(large, "servers-online") == count_of(small, "servers-online") + 16
    assert few.count == many.count, (few.count, many.count)


def test_qvp_dashboard_shows_servers_images_and_tasks_not_people(app, client, auth):
    auth.as_role("qvp")
    with app.app_context():
        add_rows(6)
    page = client.get("/admin/").get_data(as_text=True)
    assert count_of(page, "servers-offline") == 2
    assert count_of(page, "images-build-running") == 1
    assert count_of(page, "tasks-failed") == 1
    assert 'href="/images/build"' in page and 'href="/images/push"' in page
    for hidden in ("card-people", "card-workspaces", "/admin/approvals", "/admin/users", "/admin/workspaces"):
        assert hidden not in page


def test_regular_user_gets_no_dashboard(client, auth):
    auth.as_role("regular")
    assert client.get("/admin/").status_code == 403


@pytest.mark.parametrize("url", ["/admin/", "/menu", "/servers/?status=online", "/tasks/?hours=24"])
def test_pages_have_no_inline_script_or_style(client, auth, url):
    auth.as_role("admin")
    page = client.get(url).get_data(as_text=True)
    assert " style=" not in page and "<style" not in page
    scripts = re.findall(r"<script([^>]*)>", page)
    assert scripts and all('src="/' in attrs for attrs in scripts)
    assert 'src="/bootstrap/static/js/bootstrap.min.js"' in page
