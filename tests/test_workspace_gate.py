"""The per-container gate secret: made at create, stored encrypted, rotated on re-create, edges only."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import Workspace
from app.models.workspace import GATE_SECRET_PURPOSE
from app.routing import sync
from app.security.crypto import decrypt_secret, encrypt_secret
from app.services.task_queue import enqueue
from app.workspaces.handlers import GATE_ENV
from tests.builders import make_server, make_user, make_workspace
from tests.fakes import FakeBackend, use_fake_backend
from tests.support import run_tasks


@pytest.fixture
def fake(app, monkeypatch):
    """FakeBackend everywhere, nginx checks that always pass, immediate retries."""
    app.config.update(NGINX_BIN="/bin/true", TASK_RETRY_BASE_SECONDS=0)
    return use_fake_backend(monkeypatch)


def _table(app) -> str:
    """The route table every edge loads (and is pushed line by line)."""
    with app.app_context():
        return sync.table_text()


def _provision(app) -> tuple[str, str]:
    """Run a provision task for carol's workspace; (stored value, plain secret the container got)."""
    with app.app_context():
        ws = db.session.scalar(select(Workspace))
        enqueue("provision", target="t", payload={"workspace_id": ws.id}, lock_key=ws.lock_key)
        db.session.commit()
    tasks = run_tasks(app)
    assert tasks[-1].state == "succeeded", tasks[-1].message
    with app.app_context():
        stored = db.session.scalar(select(Workspace.gate_secret))
    (container,) = FakeBackend.containers.values()
    return stored, container["env"][GATE_ENV]


def test_create_gives_the_container_a_secret_stored_encrypted_and_routed_privately(app, fake):
    with app.app_context():
        make_workspace(make_user("carol"), make_server(), status="provisioning", ports={})
    stored, plain = _provision(app)
    assert len(plain) >= 32 and plain not in stored
    with app.app_context():
        assert decrypt_secret(stored, GATE_SECRET_PURPOSE) == plain
    # Only the edge gets it: the table is served to signed requests only (tests/test_edge_sync.py).
    lines = _table(app).splitlines()
    assert any(line.startswith("put carol ") and line.endswith(f" {plain}") for line in lines)


def test_re_creating_the_container_rotates_the_secret(app, fake):
    with app.app_context():
        make_workspace(make_user("carol"), make_server(), status="provisioning", ports={})
    _, first = _provision(app)
    FakeBackend.containers.clear()  # the container is gone: the next provision creates a new one
    stored, second = _provision(app)
    assert second != first
    text = _table(app)
    assert second in text and first not in text
    with app.app_context():
        assert decrypt_secret(stored, GATE_SECRET_PURPOSE) == second


def test_a_retry_adopting_the_container_keeps_its_secret(app, fake):
    with app.app_context():
        make_workspace(make_user("carol"), make_server(), status="provisioning", ports={})
    FakeBackend.die_after_create = True  # created, then the agent "dies": the retry adopts it by name
    with app.app_context():
        ws = db.session.scalar(select(Workspace))
        enqueue("provision", target="t", payload={"workspace_id": ws.id}, lock_key=ws.lock_key)
        db.session.commit()
    try:
        tasks = run_tasks(app)
    finally:
        FakeBackend.die_after_create = False
    assert FakeBackend.calls.count("create") == 1 and len(tasks) == 1 and tasks[0].attempts == 2
    assert tasks[-1].state == "succeeded", tasks[-1].message
    (container,) = FakeBackend.containers.values()
    with app.app_context():
        stored = db.session.scalar(select(Workspace.gate_secret))
        assert decrypt_secret(stored, GATE_SECRET_PURPOSE) == container["env"][GATE_ENV]


def test_undecryptable_secret_routes_to_the_stopped_page(app, fake):
    with app.app_context():
        ws = make_workspace(make_user("carol"), make_server())
        ws.gate_secret = encrypt_secret("x" * 40, "some.other.purpose")
        make_workspace(make_user("dave"), make_server("two"), ports={"vscode": 40003, "jupyter": 40004})
        db.session.commit()
        routes = {route.username: route for route in sync.desired_routes()}
    assert routes["carol"].upstream_host is None and routes["carol"].gate_secret is None
    assert routes["dave"].upstream_host is not None and routes["dave"].gate_secret is None
