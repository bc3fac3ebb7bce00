"""Two real worker processes (`flask --app wsgi worker`) sharing MariaDB.

Exactly one polls; 200 queued tasks each run exactly once across both; when the polling
process is killed (no clean release) the other takes the poller lease within one lease period.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import PollerLease, Task, TaskEvent
from app.services import task_queue
from app.timeutil import utcnow
from tests.builders import TOKEN, make_server
from tests.stub_agent import StubAgent
from tests.support import require_service

ROOT = Path(__file__).resolve().parents[1]
INTERVAL, LEASE = 0.3, 2.0
pytestmark = pytest.mark.integration


def start_worker(url: str, data_dir: Path, log: Path) -> subprocess.Popen:
    """Start `flask --app wsgi worker` on the test database."""
    env = {**os.environ, "SLIPWAY_ENV": "testing", "DATABASE_URL": url, "SLIPWAY_DATA_DIR": str(data_dir),
           "SLIPWAY_POLL_INTERVAL_SECONDS": str(INTERVAL), "SLIPWAY_POLL_LEASE_SECONDS": str(LEASE),
           "SLIPWAY_AGENT_CONNECT_TIMEOUT": "0.5", "SLIPWAY_AGENT_READ_TIMEOUT": "0.5",
           "SLIPWAY_TASK_POLL_MS": "100", "SLIPWAY_WORKER_CONCURRENCY": "4",
           "SLIPWAY_TASK_LEASE_SECONDS": "10"}
    with open(log, "ab") as out:
        return subprocess.Popen([sys.executable, "-m", "flask", "--app", "wsgi", "worker"], cwd=ROOT, env=env,
                                stdout=out, stderr=out)


def lease_holder(app) -> str | None:
    """The current poller lease holder, read fresh."""
    with app.app_context():
        lease = db.session.get(PollerLease, "poller")
        return lease.holder if lease else None


def wait_until(predicate, timeout: float, step: float = 0.05):
    """Poll `predicate` until it returns something truthy; returns it and the time it took."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        value = predicate()
        if value:
            return value, time.monotonic() - started
        time.sleep(step)
    raise AssertionError("timed out")


def stats_calls(stubs) -> int:
    """How many stats requests the stubs answered in all."""
    return sum(1 for stub in stubs for method, path in list(stub.requests) if path == "/get_system_stats")


def test_two_workers_one_poller_takeover_and_tasks_run_once(app, database_url, tmp_path):
    require_service("MariaDB", database_url.startswith("mysql"))
    stubs = [StubAgent(TOKEN) for _ in range(3)]
    with app.app_context():
        server_ids = [make_server(f"w{n}", stub.url, status="unknown").id for n, stub in enumerate(stubs)]
    workers = [start_worker(database_url, tmp_path / f"d{n}", tmp_path / f"worker{n}.log") for n in range(2)]
    try:
        holder, _ = wait_until(lambda: lease_holder(app), 30)
        polling = next(w for w in workers if f":{w.pid}:" in holder)
        other = next(w for w in workers if w is not polling)

        # exactly one polls: the stubs see one round per interval, not two
        before, started = stats_calls(stubs), time.monotonic()
        time.sleep(3)
        rounds = (stats_calls(stubs) - before) / len(stubs)
        one_poller_max = (time.monotonic() - started) / (INTERVAL * 0.9) + 1
        assert 3 <= rounds <= one_poller_max, rounds
        assert lease_holder(app) == holder

        # 200 tasks, each run exactly once, shared by both processes
        with app.app_context():
            queued = [task_queue.enqueue("refresh_server", requested_by="tester",
                                    payload={"server_id": server_ids[n % 3]}) for n in range(200)]
            db.session.commit()
            ids = [task.id for task in queued]

        def all_finished():
            with app.app_context():
                return db.session.scalar(select(func.count(Task.id)).where(
                    Task.id.in_(ids), Task.finished_at.is_not(None))) == 200

        try:
            wait_until(all_finished, 60, 0.2)
        except AssertionError:
            with app.app_context():
                states = db.session.execute(select(Task.state, Task.message, func.count()).where(
                    Task.id.in_(ids)).group_by(Task.state, Task.message)).all()
            raise AssertionError(f"tasks did not finish: {states}") from None
        with app.app_context():
            rows = db.session.scalars(select(Task).where(Task.id.in_(ids))).all()
            assert {row.state for row in rows} == {"succeeded"}, {row.message for row in rows}
            assert all(row.attempts == 1 for row in rows)
            starts = db.session.execute(
                select(TaskEvent.task_id, func.count()).where(
                    TaskEvent.task_id.in_(ids), TaskEvent.message.like("attempt %"))
                .group_by(TaskEvent.task_id)).all()
            assert len(starts) == 200 and all(count == 1 for _, count in starts)
            assert len({row.claimed_by.split(":")[1] for row in rows}) == 2  # both processes took work

        # kill the poller without a clean release: the other takes over within one lease period
        polling.send_signal(signal.SIGKILL)
        polling.wait(10)
        killed_at = time.monotonic()
        new_holder, _ = wait_until(lambda: (h := lease_holder(app)) and f":{other.pid}:" in h and h, 30)
        took = time.monotonic() - killed_at
        assert took <= LEASE + INTERVAL * 1.1 + 0.5, took
        before = stats_calls(stubs)
        wait_until(lambda: stats_calls(stubs) >= before + 2 * len(stubs), 10)

        # SIGTERM: the survivor stops cleanly and hands the lease back at once
        other.send_signal(signal.SIGTERM)
        assert other.wait(30) == 0
        with app.app_context():
            assert db.session.get(PollerLease, "poller").expires_at <= utcnow()
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.send_signal(signal.SIGTERM)
        for worker in workers:
            try:
                worker.wait(20)
            except subprocess.TimeoutExpired:
                worker.kill()
        for stub in stubs:
            stub.stop()
    logs = "".join((tmp_path / f"worker{n}.log").read_text() for n in range(2))
    assert TOKEN not in logs
