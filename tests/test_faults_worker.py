"""The worker SIGKILLed during a provision: the task is reclaimed after its lease, one container results.

To kill it mid-call every time, the agent is paused (SIGSTOP) as soon as the task runs, the
worker killed while it waits on the agent, and the agent resumed: it may still finish the dead
worker's request. A second worker reclaims the task once its lease has expired and provisions
again; exactly one container carries the workspace's name afterwards.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from app.extensions import db
from app.models import Task
from app.services import workspaces as service
from tests.builders import make_user
from tests.integration_helpers import agent_server, docker_available
from tests.support import require_service

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[1]
LEASE = 4


def _worker(database_url: str, data_dir: Path, instance: str) -> subprocess.Popen:
    env = {**os.environ, "SLIPWAY_ENV": "testing", "DATABASE_URL": database_url,
           "SLIPWAY_DATA_DIR": str(data_dir), "SLIPWAY_INSTANCE": instance,
           "SLIPWAY_TASK_LEASE_SECONDS": str(LEASE), "SLIPWAY_TASK_POLL_MS": "100",
           "SLIPWAY_AGENT_READ_TIMEOUT": "30", "SLIPWAY_POLL_LEASE_SECONDS": "60",
           "SLIPWAY_POLL_ENABLED": "false"}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    with open(data_dir.parent / f"{data_dir.name}.log", "ab") as out:
        return subprocess.Popen([sys.executable, "-m", "flask", "--app", "wsgi", "worker"], cwd=ROOT, env=env,
                                stdout=out, stderr=subprocess.STDOUT)


def _signal_agent(proc: subprocess.Popen, sig: int) -> None:
    """Signal the agent's gunicorn master and its workers (a stopped master alone still serves)."""
    children = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True,
                              timeout=10, check=False).stdout.split()
    for pid in [proc.pid, *map(int, children)]:
        os.kill(pid, sig)


def _task(app, task_id: int) -> Task:
    with app.app_context():
        task = db.session.get(Task, task_id)
        db.session.expunge(task)
        return task


def _containers(instance: str) -> list[str]:
    out = subprocess.run(["docker", "ps", "-a", "--filter", f"label=slipway.app.instance={instance}",
                          "--format", "{{.Names}}"], capture_output=True, text=True, check=True, timeout=60)
    return out.stdout.split()


def test_worker_killed_mid_provision_task_reclaimed_one_container(app, database_url, tmp_path):
    require_service("Docker", docker_available())
    instance = f"slipway-fault-{secrets.token_hex(3)}"
    app.config["INSTANCE_NAME"] = instance
    workers: list[subprocess.Popen] = []
    try:
        with agent_server(app, tmp_path / "agent-ws") as (_server_id, agent):
            with app.app_context():
                admin = make_user("boss", role="admin")
                dora = make_user("dora", status="pending")
                task_id = service.provision(dora, admin, service.Plan(), approve=True).id
            # The agent is frozen before the worker starts, so the provision is certainly mid-call to
            # it (not already finished: the test image starts in well under a second) when it dies.
            _signal_agent(agent.proc, signal.SIGSTOP)
            try:
                workers.append(_worker(database_url, tmp_path / "w1", instance))
                deadline = time.monotonic() + 60
                while _task(app, task_id).state != "running":
                    assert time.monotonic() < deadline, "the first worker never started the task"
                    time.sleep(0.02)
                time.sleep(1)
                workers[0].send_signal(signal.SIGKILL)
                workers[0].wait(10)
            finally:
                _signal_agent(agent.proc, signal.SIGCONT)
            first = _task(app, task_id)
            assert first.state == "running" and first.claimed_by, first.state
            workers.append(_worker(database_url, tmp_path / "w2", instance))
            deadline = time.monotonic() + 120
            while not (task := _task(app, task_id)).is_finished:
                assert time.monotonic() < deadline, f"not reclaimed: {task.state} {task.message}"
                time.sleep(0.2)
            assert task.state == "succeeded", task.message
            assert task.attempts >= 2 and task.claimed_by != first.claimed_by
            assert _containers(instance) == [service.container_name("dora")]
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.terminate()
                worker.wait(30)
        names = _containers(instance)
        if names:
            subprocess.run(["docker", "rm", "-f", *names], capture_output=True, timeout=60, check=False)
