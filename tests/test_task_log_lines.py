"""Task log lines and the task page's result are written for people, not as Python reprs."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import Task, TaskEvent, Workspace
from app.services.task_queue import enqueue
from app.worker.kinds import readable
from tests.builders import make_server, make_user, make_workspace
from tests.fakes import use_fake_backend
from tests.support import run_tasks

REPR = re.compile(r"[{}\[\]]|': ")


@pytest.fixture
def fake(app, monkeypatch):
    """FakeBackend everywhere and nginx checks that always pass."""
    app.config.update(NGINX_BIN="/bin/true", TASK_RETRY_BASE_SECONDS=0)
    return use_fake_backend(monkeypatch)


def test_readable_values():
    assert readable({"vscode": 32855, "jupyter": 32856}) == "vscode 32855, jupyter 32856"
    assert readable(["local", "edge-2"]) == "local, edge-2"
    assert readable({}) == "none" and readable(7) == "7"


def test_provision_and_start_log_ports_for_people(app, client, auth, fake):
    with app.app_context():
        owner = make_user("carol")
        make_workspace(owner, make_server(), status="provisioning", ports={})
        ws = db.session.scalar(select(Workspace))
        enqueue("provision", target="t", requested_by="carol", payload={"workspace_id": ws.id},
                lock_key=ws.lock_key)
        db.session.commit()
    run_tasks(app)
    with app.app_context():
        ws = db.session.scalar(select(Workspace))
        enqueue("start", target="t", requested_by="carol", payload={"workspace_id": ws.id, "restart": True},
                lock_key=ws.lock_key)
        db.session.commit()
    run_tasks(app)
    with app.app_context():
        ws = db.session.scalar(select(Workspace))
        ports = f"Ports: vscode {ws.ports['vscode']}, jupyter {ws.ports['jupyter']}"
        tasks = db.session.scalars(select(Task).order_by(Task.id)).all()
        outcomes = [(task.kind, task.state) for task in tasks]
        assert outcomes == [("provision", "succeeded"), ("start", "succeeded")]
        for task in tasks:
            lines = db.session.scalars(select(TaskEvent.message).where(TaskEvent.task_id == task.id)).all()
            assert any(line.endswith(ports) for line in lines), (task.kind, lines)
            assert [line for line in lines if REPR.search(line)] == [], lines
        provision_id = tasks[0].id
    auth.login("carol")
    html = client.get(f"/tasks/{provision_id}").get_data(as_text=True)
    assert f"ports: vscode {ws.ports['vscode']}, jupyter {ws.ports['jupyter']}" in html
    assert "{&#39;" not in html and "{'" not in html
