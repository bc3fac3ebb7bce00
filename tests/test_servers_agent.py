"""Servers against the real agent (`python -m agent` over the real Docker daemon, on 127.0.0.1).

A server is added through the form, tested and polled: online with real figures; the agent
is stopped: offline after the configured failures; restarted: online again; every change is
audited, and the token never shows in a page, a log line or an audit row.
"""

from __future__ import annotations

import logging
import secrets
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import AuditLog, Server, Task
from app.worker.poller import Poller
from app.worker.runner import Runner
from tests.agent.helpers import docker_available, free_port, run_agent
from tests.support import form_post, require_service

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.integration


def real_agent(port: int, token: str, workdir: Path, log: Path):
    """Run `python -m agent` on 127.0.0.1:`port` with `token` until the block ends."""
    return run_agent(workdir, port=port, token=token, log=log,
                     AGENT_NETWORK=f"slipway-test-srv-{secrets.token_hex(3)}")


def run_tasks(app, count=1):
    """Run queued tasks with a real runner until `count` finished."""
    runner = Runner(app, worker_id="itest", concurrency=1)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        runner.run_once()
        with app.app_context():
            done = db.session.scalars(select(Task).where(Task.finished_at.is_not(None))).all()
            if len(done) >= count:
                runner.shutdown(0)
                return done
        time.sleep(0.1)
    raise AssertionError("tasks did not finish")


def server_row(app):
    """The one server, detached."""
    with app.app_context():
        row = db.session.scalar(select(Server))
        db.session.expunge(row)
        return row


def test_real_agent_online_offline_online_audited_and_token_never_leaks(
    app, client, auth, tmp_path, caplog, capfd
):
    require_service("Docker", docker_available())
    caplog.set_level(logging.DEBUG)
    app.config.update(AGENT_CONNECT_TIMEOUT=1, AGENT_READ_TIMEOUT=5, POLL_FAILURES_OFFLINE=2,
                      POLL_SUCCESSES_ONLINE=2, POLL_LEASE_SECONDS=30)
    port, token = free_port(), secrets.token_urlsafe(36)
    workdir, log = tmp_path / "ws", tmp_path / "agent.log"
    auth.as_role("admin")
    poller = Poller(app, holder="itest")
    pages = []

    def poll():
        with app.app_context():
            assert poller.acquire_lease()
            return poller.poll_round()

    with real_agent(port, token, workdir, log):
        response = form_post(client, "/servers/new", {"name": "real", "agent_url": f"http://127.0.0.1:{port}",
                                                      "token": token}, page="/servers/new")
        assert response.status_code == 302
        [task] = run_tasks(app)
        assert task.state == "succeeded", task.message
        row = server_row(app)
        assert row.status == "online" and row.memory_total > 0 and row.stats["docker_version"]
        assert 0 <= row.cpu_percent <= 100 and row.disk_percent > 0
        pages.append(client.get(f"/tasks/{task.id}").get_data(as_text=True))
        assert poll().outcomes == {"ok": 1}
        pages.append(client.get("/servers/").get_data(as_text=True))
        pages.append(client.get(f"/servers/{row.id}").get_data(as_text=True))
        assert "online" in pages[-1] and "<polyline" in pages[-1]
        pages.append(client.get(f"/servers/{row.id}/edit").get_data(as_text=True))

    assert poll().outcomes == {"unreachable": 1}
    assert server_row(app).status == "online"
    poll()
    assert server_row(app).status == "offline"
    pages.append(client.get("/servers/").get_data(as_text=True))

    with real_agent(port, token, workdir, log):
        poll()
        assert server_row(app).status == "offline"
        poll()
        assert server_row(app).status == "online"

    with app.app_context():
        audit_rows = db.session.scalars(select(AuditLog).order_by(AuditLog.id)).all()
        changes = [(r.details["from"], r.details["to"]) for r in audit_rows
                   if r.action_type == "server_status_changed"]
        assert changes == [("unknown", "online"), ("online", "offline"), ("offline", "online")]
        audit_text = " ".join(f"{r.action_type} {r.details}" for r in audit_rows)
    captured = capfd.readouterr()
    everything = "\n".join([*pages, audit_text, caplog.text, captured.out, captured.err, log.read_text()])
    assert "server_added" in audit_text and "real" in everything
    assert token not in everything


def test_agent_client_speaks_the_real_agents_api(tmp_path):
    from app.agent_client import AgentClient, AgentError, AgentNotFound

    require_service("Docker", docker_available())
    port, token = free_port(), secrets.token_urlsafe(36)
    with real_agent(port, token, tmp_path / "ws", tmp_path / "agent.log"):
        client = AgentClient(f"http://127.0.0.1:{port}", token)
        assert client.health() is True
        assert client.system_stats()["memory"]["total"] > 0
        # query strings are signed as sent
        assert client.list_containers({"slipway.managed": "true", "slipway.user": "nobody"}) == []
        with pytest.raises(AgentNotFound) as missing:
            client.inspect_image("slipway-test/no-such-image:latest")
        assert "no-such-image" in missing.value.message
        with pytest.raises(AgentNotFound):
            client.delete_container("slipway-test-no-such-container")
        with pytest.raises(AgentError) as refused:
            AgentClient(f"http://127.0.0.1:{port}", "w" * 40).system_stats()
        assert refused.value.status == 401
