"""Agent events end to end: the real agent over the real Docker daemon, the real poller, the page.

- A workspace container killed by its memory limit becomes a `container.oom` entry with its owner,
  raises the day-one OOM alert (risk 70) and is shown to that owner on their workspace page.
- The agent restarted under a stored cursor: an `agent.gap` entry, then the new buffer is read.
- A poller process killed (SIGKILL) between fetching events and committing them: the next round
  stores every event exactly once.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import delete, func, select

from app.agent_client import AgentClient
from app.backends import backend_for
from app.backends.base import ContainerSpec
from app.extensions import db
from app.logs.defaults import seed_rules
from app.logs.evaluate import evaluate_pending
from app.models import Alert, AlertEntry, LogEntry, PollerLease, Server, Workspace
from app.security.crypto import encrypt_secret
from app.worker.poller import Poller
from tests.agent.helpers import (
    GATE_SECRET,
    RUN_ID,
    TEST_IMAGE,
    TEST_LABEL,
    run_agent,
    unique,
)
from tests.builders import make_user
from tests.integration_helpers import ensure_test_image

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[1]
MEMORY_MB = 64
ALLOCATE = "dd if=/dev/zero bs=1M count=300 2>/dev/null | tail > /dev/null"
NETWORK = f"slipway-test-{RUN_ID}-events"  # its own, so removing it never pulls one from another test


@pytest.fixture
def docker_client():
    """The Docker SDK client and the test image (built by its script when missing)."""
    ensure_test_image(TEST_IMAGE)
    import docker

    client = docker.from_env(timeout=120)
    yield client
    for container in client.containers.list(all=True, filters={"label": f"{TEST_LABEL}={RUN_ID}"}):
        with contextlib.suppress(Exception):
            container.remove(force=True)
    for network in client.networks.list(names=[NETWORK]):
        with contextlib.suppress(Exception):
            network.remove()


@contextlib.contextmanager
def agent_row(app, workdir: Path, **agent_kw: object) -> Iterator[tuple[int, object]]:
    """A real agent and the Server row that points at it (reused when the name exists)."""
    workdir.mkdir(parents=True, exist_ok=True)
    with run_agent(workdir, AGENT_NETWORK=NETWORK, **agent_kw) as agent, app.app_context():
        server = db.session.scalar(select(Server).where(Server.name == "local"))
        if server is None:
            server = Server(name="local", agent_url=agent.base_url, publish_host="127.0.0.1", status="online",
                            token_encrypted=encrypt_secret(agent.token, "server.token"))
            db.session.add(server)
            db.session.commit()
        yield server.id, agent


def workspace_for(app, server_id: int, username: str) -> int:
    """A user, their workspace row and its running container (created as `provision` does)."""
    with app.app_context():
        user = make_user(username)
        ws = Workspace(user_id=user.id, username=username, server_id=server_id,
                       container_name=unique(username), image=TEST_IMAGE, cpu=0.5, memory_mb=MEMORY_MB,
                       status="provisioning", error="")
        db.session.add(ws)
        db.session.commit()
        spec = ContainerSpec(name=ws.container_name, image=TEST_IMAGE, cpu=0.5, memory_mb=MEMORY_MB,
                             ports={"vscode": 8080, "jupyter": 8888}, workspace_dir=username,
                             labels={"slipway.user": username, "slipway.workspace_id": str(ws.id),
                                     TEST_LABEL: RUN_ID},
                             env={"SLIPWAY_GATE_SECRET": GATE_SECRET})
        info = backend_for(db.session.get(Server, server_id)).create(spec)
        ws.container_id, ws.status = info.id, "running"
        db.session.commit()
        return ws.id


def poll_until(app, poller: Poller, condition, seconds: float = 30):
    """Poll rounds until `condition()` (run in an app context) returns something truthy."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with app.app_context():
            assert poller.acquire_lease()
            poller.poll_round()
            found = condition()
            if found:
                return found
        time.sleep(0.3)
    raise AssertionError("condition not met after polling")


def agent_entries(**where: object) -> list[LogEntry]:
    """Stored agent entries matching `where`, oldest first (call in an app context)."""
    return list(db.session.scalars(select(LogEntry).filter_by(source="agent", **where).order_by(LogEntry.id)))


def test_memory_limit_kill_reaches_the_owners_page(app, client, auth, docker_client, tmp_path):
    with agent_row(app, tmp_path / "ws") as (server_id, _agent):
        ws_id = workspace_for(app, server_id, "alice")
        poller = Poller(app, holder="oom-test")
        poll_until(app, poller, lambda: agent_entries(category="container.start", workspace_id=ws_id))
        with app.app_context():
            name = db.session.get(Workspace, ws_id).container_name
        result = docker_client.containers.get(name).exec_run(["sh", "-c", ALLOCATE])
        assert result.exit_code != 0  # the allocating program was killed
        oom = poll_until(app, poller, lambda: agent_entries(category="container.oom"))[0]
    assert (oom.username, oom.workspace_id, oom.server_id, oom.level) == ("alice", ws_id, server_id, "error")
    assert oom.fields["memory_limit_mb"] == MEMORY_MB and oom.fields["container"] == name
    with app.app_context():  # the worker's rule engine, over what the poller stored, with day-one rules
        seed_rules()
        db.session.commit()
        evaluate_pending(app, settle_seconds=0)
        alert = db.session.scalars(select(Alert).where(Alert.rule_name == "Workspace OOM-killed")).one()
        linked = set(db.session.scalars(select(AlertEntry.entry_id).where(AlertEntry.alert_id == alert.id)))
        scored = db.session.get(LogEntry, oom.id).risk_score
    assert (alert.state, alert.severity, alert.username, alert.risk_score) == ("open", "high", "alice", 70)
    assert oom.id in linked and scored == 70
    assert auth.login("alice").status_code == 302
    page = client.get("/workspaces/").get_data(as_text=True)
    told = f"ran out of memory and the program using the most was stopped (limit {MEMORY_MB} MB)"
    assert told in page


def test_agent_restart_under_a_stored_cursor_records_a_gap(app, docker_client, tmp_path):
    workdir = tmp_path / "ws"
    with agent_row(app, workdir) as (server_id, agent):
        ws_id = workspace_for(app, server_id, "bob")
        poller = Poller(app, holder="restart-test")
        poll_until(app, poller, lambda: agent_entries(category="container.start", workspace_id=ws_id))
        with app.app_context():
            server = db.session.get(Server, server_id)
            old_cursor, old_epoch = server.events_cursor, server.events_epoch
            name = db.session.get(Workspace, ws_id).container_name
        port, token = agent.port, agent.token
    assert old_cursor >= 1 and old_epoch
    with agent_row(app, workdir, port=port, token=token) as (same_id, _restarted):
        assert same_id == server_id
        docker_client.containers.get(name).restart(timeout=3)
        gap = poll_until(app, poller, lambda: agent_entries(category="agent.gap"))
        after = poll_until(
            app, poller, lambda: agent_entries(category="container.start", workspace_id=ws_id)[1:])
        with app.app_context():
            server = db.session.get(Server, server_id)
            new_epoch, cursor = server.events_epoch, server.events_cursor
    assert len(gap) == 1 and gap[0].level == "warning" and gap[0].fields["reason"] == "epoch"
    assert gap[0].fields["old_epoch"] == old_epoch and gap[0].fields["old_cursor"] == old_cursor
    assert new_epoch not in ("", old_epoch) and after[0].fields["epoch"] == new_epoch and cursor >= 1


KILLED_POLLER = """
import os, signal, sys
from pathlib import Path
from tests.support import build_app
from app.worker import poller as poller_module
app = build_app(sys.argv[1], Path(sys.argv[2]))
def die_before_commit(rows):
    print(f"fetched {len(rows)}", flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
poller_module.add_entries = die_before_commit
with app.app_context():
    poller = poller_module.Poller(app, holder="doomed")
    assert poller.acquire_lease()
    poller.poll_round()
print("committed", flush=True)
"""


def stored(server_id: int) -> tuple[list[int], int]:
    """(seq of each stored agent entry of the server, its cursor) (call in an app context)."""
    seqs = [row.fields.get("seq") for row in agent_entries(server_id=server_id) if "seq" in row.fields]
    return sorted(seqs), db.session.get(Server, server_id).events_cursor


def test_poller_killed_between_fetch_and_commit_loses_and_repeats_nothing(
    app, database_url, docker_client, tmp_path,
):
    with agent_row(app, tmp_path / "ws") as (server_id, agent):
        ws_id = workspace_for(app, server_id, "carol")
        with app.app_context():
            docker_client.containers.get(db.session.get(Workspace, ws_id).container_name).restart(timeout=3)
        proc = subprocess.run([sys.executable, "-c", KILLED_POLLER, database_url, str(tmp_path / "doomed")],
                              cwd=ROOT, capture_output=True, text=True, timeout=120,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
        assert proc.returncode == -9, proc.stderr[-2000:]
        assert "fetched" in proc.stdout and "committed" not in proc.stdout
        with app.app_context():
            assert db.session.scalar(select(func.count()).select_from(LogEntry)) == 0
            assert db.session.get(Server, server_id).events_cursor == 0
            db.session.execute(delete(PollerLease))  # the killed holder's lease would make us wait for expiry
            db.session.commit()
        poller = Poller(app, holder="survivor")
        poll_until(app, poller, lambda: stored(server_id)[1] > 0)
        poll_until(app, poller, lambda: True)  # a second round must add nothing twice
        with app.app_context():
            seqs, cursor = stored(server_id)
            server = db.session.get(Server, server_id)
            events = AgentClient.for_server(server).events(after=0, limit=1000)["events"]
    expected = [event["seq"] for event in events if event["seq"] <= cursor]
    assert seqs == expected and len(set(seqs)) == len(seqs) and len(seqs) >= 4  # start, kill, die, start
