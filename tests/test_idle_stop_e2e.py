"""Idle stop against the real agent, Docker and the edge nginx; the worker's tailer reads the edge's log.

Two running workspaces: alice's gets requests through the edge (the owner's cookie, the real
owner check), bob's none. Both are then made to look started long ago: bob's is stopped by the
idle check with the normal stop task, alice's stays up, and bob's page says why.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from app.extensions import db
from app.models import AuditLog, ConnectionSession, Task, User, Workspace
from app.services import workspaces as service
from app.services.task_queue import in_flight
from app.timeutil import utcnow
from tests.builders import make_session, make_user
from tests.edgekit import get
from tests.support import AuthActions, require_service
from tests.wsstack import Stack, journey_stack, stack_available, wait_until

pytestmark = pytest.mark.integration


@pytest.fixture
def stack(database_url: str, tmp_path: Path) -> Iterator[Stack]:
    """Agent, web, worker (tailer and idle check every second) and edge; idle stop after 1 minute."""
    require_service("Docker and nginx", stack_available())
    with journey_stack(database_url, tmp_path, IDLE_STOP_MINUTES=1, IDLE_CHECK_SECONDS=1.0,
                       CONNECTION_TAIL_SECONDS=0.3) as running:
        yield running


def _status(stack: Stack, username: str) -> str | None:
    with stack.app.app_context():
        return db.session.scalar(select(Workspace.status).where(Workspace.username == username))


def _idle(stack: Stack, username: str) -> bool:
    with stack.app.app_context():
        return in_flight(f"workspace:{username}") is None


def _cookie(stack: Stack, username: str, app: str) -> tuple[str, str]:
    """The Host and Cookie headers the owner's browser sends to their workspace app."""
    from app.security.tokens import Grant, cookie_name, cookie_value

    host = f"{username}-{app}.ws.localhost"
    with stack.app.app_context():
        user = db.session.scalar(select(User).where(User.username == username))
        session = make_session(user)
        with stack.app.test_request_context():
            value = cookie_value(Grant(user.id, username, host, session.id))
            name = cookie_name()
    return f"{host}:{stack.edge_port}", f"{name}={value}"


def test_idle_workspace_is_stopped_and_a_used_one_stays_up(stack: Stack) -> None:
    with stack.app.app_context():
        admin = make_user("boss", role="admin")
        for name in ("alice", "bob"):
            service.provision(make_user(name), admin, service.Plan())
    wait_until(lambda: _status(stack, "alice") == "running" and _status(stack, "bob") == "running", 90)

    host, cookie = _cookie(stack, "alice", "vscode")
    wait_until(lambda: _idle(stack, "alice") and _idle(stack, "bob"), 30)  # routes written, tasks done
    # The first 200 can take a moment (route reload, the container's gate starting): 503s until then
    # are the edge's own page (/_slipway/unavailable), which the connection log does not count.
    wait_until(lambda: get(stack.edge_port, host, "/", headers={"Cookie": cookie})[0] == 200, 20, 0.2)
    for _ in range(2):
        status, _, body = get(stack.edge_port, host, "/", headers={"Cookie": cookie})
        assert status == 200 and "Slipway test workspace: vscode" in body

    def alice_seen() -> ConnectionSession | None:
        with stack.app.app_context():
            return db.session.scalar(select(ConnectionSession).where(ConnectionSession.owner == "alice"))

    seen = wait_until(alice_seen, 15)  # the edge flushes its log buffer within a second
    assert (seen.app, seen.username, seen.requests) == ("vscode", "alice", 3)
    with stack.app.app_context():
        assert db.session.scalar(select(Workspace.last_activity_at).where(Workspace.username == "alice"))
        bob_seen = select(Workspace.last_activity_at).where(Workspace.username == "bob")
        assert db.session.scalar(bob_seen) is None
        # Both started "long ago": only traffic can keep one up now.
        long_ago = utcnow() - timedelta(minutes=10)
        db.session.execute(update(Workspace).values(running_since=long_ago))
        starts = update(Task).where(Task.kind.in_(("provision", "start")))
        db.session.execute(starts.values(finished_at=long_ago))
        db.session.commit()

    wait_until(lambda: _status(stack, "bob") == "stopped", 60)
    deadline = time.monotonic() + 3  # a few more idle checks: alice's workspace is left alone
    while time.monotonic() < deadline:
        assert _status(stack, "alice") == "running"
        time.sleep(0.5)
    with stack.app.app_context():
        audit = db.session.scalar(select(AuditLog).where(AuditLog.action_type == "workspace_idle_stopped"))
        assert audit.details["user"] == "bob"
        stops = db.session.scalars(select(Task.target).where(Task.kind == "stop")).all()
        assert stops == ["workspace:bob"]

    client = stack.app.test_client()
    AuthActions(client).login("bob")
    page = client.get("/workspaces/").get_data(as_text=True)
    assert 'id="idle-stopped"' in page and "no activity for 1 minutes" in page
    assert _status(stack, "bob") == "stopped"  # stopped, never deleted
