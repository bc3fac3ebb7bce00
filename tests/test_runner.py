"""The task runner: exactly-once claims, retries with backoff, lease reclaim, cancel, shutdown."""

from __future__ import annotations

import threading
import time
from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import Task, TaskEvent
from app.services import task_queue
from app.timeutil import utcnow
from app.worker.kinds import task_kind
from app.worker.runner import Runner
from tests.builders import make_task, make_user

RUNS: Counter[int] = Counter()
RUNS_LOCK = threading.Lock()
GATE = threading.Event()
FLAKY_FAILS: Counter[int] = Counter()


@task_kind("test_count", max_attempts=3)
def count_handler(ctx):
    """Count how often each task ran."""
    with RUNS_LOCK:
        RUNS[ctx.task.id] += 1
    ctx.progress(50, "half way")
    return {"ran": True}


@task_kind("test_flaky", max_attempts=3)
def flaky_handler(ctx):
    """Fail transiently the first time, succeed after."""
    FLAKY_FAILS[ctx.task.id] += 1
    if FLAKY_FAILS[ctx.task.id] == 1:
        raise RuntimeError("agent went away")
    return None


@task_kind("test_always_fails", max_attempts=2)
def failing_handler(ctx):
    """Always fail transiently."""
    raise RuntimeError("still broken")


@task_kind("test_blocking", max_attempts=3)
def blocking_handler(ctx):
    """Wait for the gate, checking for cancel."""
    while not GATE.wait(0.05):
        ctx.check_cancelled()
    return None


@pytest.fixture
def fast(app):
    """The app with short leases and polls for runner tests."""
    app.config.update(TASK_LEASE_SECONDS=1, TASK_POLL_MS=50, TASK_RETRY_BASE_SECONDS=1,
                      WORKER_SHUTDOWN_GRACE_SECONDS=1)
    RUNS.clear()
    FLAKY_FAILS.clear()
    GATE.clear()
    yield app
    GATE.set()


def queue(app, kind, count=1):
    """Queue `count` tasks of `kind`; returns their ids."""
    with app.app_context():
        rows = [task_queue.enqueue(kind, target=f"t{i}", requested_by="tester") for i in range(count)]
        db.session.commit()
        return [row.id for row in rows]


def states(app, ids):
    """{id: Task} fresh from the database."""
    with app.app_context():
        rows = db.session.scalars(select(Task).where(Task.id.in_(ids))).all()
        for row in rows:
            db.session.expunge(row)
        return {row.id: row for row in rows}


def wait_for(predicate, timeout=20.0):
    """Poll `predicate` until true or fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("condition not reached in time")


def test_a_claim_writes_its_attempt_event_in_the_same_commit(fast):
    """A worker killed right after claiming (before running anything) still leaves "attempt 1 of 3"."""
    [task_id] = queue(fast, "test_count")
    runner = Runner(fast, worker_id="claims-then-dies", concurrency=1)
    with fast.app_context():
        assert runner._claim_one() == task_id  # claimed; never executed
        events = db.session.scalars(select(TaskEvent.message).where(TaskEvent.task_id == task_id)).all()
    assert [e for e in events if e.startswith("attempt")] == ["attempt 1 of 3 on claims-then-dies"]
    runner._pool.shutdown(wait=True)


def test_several_runners_claim_each_task_exactly_once(fast):
    # a long lease: here only the claim may decide who runs a task (lease expiry is tested below)
    fast.config["TASK_LEASE_SECONDS"] = 60
    ids = queue(fast, "test_count", 40)
    stop = threading.Event()
    runners = [Runner(fast, worker_id=f"r{n}", concurrency=3) for n in range(3)]
    threads = [threading.Thread(target=r.run, args=(stop,), daemon=True) for r in runners]
    for thread in threads:
        thread.start()
    try:
        wait_for(lambda: all(t.state == "succeeded" for t in states(fast, ids).values()), 60)
    finally:
        stop.set()
        for thread in threads:
            thread.join(10)
    assert {task_id: RUNS[task_id] for task_id in ids} == {task_id: 1 for task_id in ids}
    rows = states(fast, ids)
    assert all(row.attempts == 1 and row.progress == 100 and row.active_lock is None for row in rows.values())
    assert len({row.claimed_by for row in rows.values()}) >= 2  # the work really was shared


def test_transient_failure_is_retried_with_backoff(fast):
    # first retry after 30-90 s: far enough that the "not before its time" check below always holds
    fast.config["TASK_RETRY_BASE_SECONDS"] = 60
    [task_id] = queue(fast, "test_flaky")
    runner = Runner(fast, worker_id="r1", concurrency=1)
    started = utcnow()
    with fast.app_context():
        assert runner.run_once() == 1
    wait_for(lambda: states(fast, [task_id])[task_id].state == "queued")
    row = states(fast, [task_id])[task_id]
    assert row.attempts == 1 and "agent went away" in row.message
    # backed off by at least half the base (MariaDB keeps whole seconds, hence the margin)
    assert row.run_after >= started + timedelta(seconds=29)
    with fast.app_context():
        assert runner.run_once() == 0  # not runnable before its time
        # time passes: the task becomes due, and the next round runs it
        db.session.get(Task, task_id).run_after = utcnow() - timedelta(seconds=1)
        db.session.commit()
    wait_for(lambda: (runner.run_once() and False) or states(fast, [task_id])[task_id].state == "succeeded")
    assert states(fast, [task_id])[task_id].attempts == 2
    runner.shutdown(0)


def test_out_of_attempts_fails_for_good(fast):
    [task_id] = queue(fast, "test_always_fails")
    runner = Runner(fast, worker_id="r1", concurrency=1)
    wait_for(lambda: (runner.run_once() and False) or states(fast, [task_id])[task_id].state == "failed", 20)
    row = states(fast, [task_id])[task_id]
    assert row.attempts == 2 and "still broken" in row.message and row.active_lock is None
    runner.shutdown(0)


def test_expired_lease_is_reclaimed_and_rerun(fast):
    [task_id] = queue(fast, "test_count")
    with fast.app_context():
        task = db.session.get(Task, task_id)
        task.state, task.claimed_by, task.attempts = "running", "dead-worker", 1
        task.lease_expires_at = utcnow() - timedelta(seconds=5)
        db.session.commit()
    runner = Runner(fast, worker_id="r2", concurrency=1)
    wait_for(lambda: (runner.run_once() and False) or states(fast, [task_id])[task_id].state == "succeeded")
    row = states(fast, [task_id])[task_id]
    assert row.claimed_by == "r2" and row.attempts == 2 and RUNS[task_id] == 1
    with fast.app_context():
        messages = [event.message for event in db.session.get(Task, task_id).events]
    assert any("lease of worker dead-worker expired" in message for message in messages)
    runner.shutdown(0)


def test_lease_expired_out_of_attempts_runs_finish_hooks(fast):
    # A build's worker died on its only attempt: the reclaim fails it, and its starter gets the mail
    # every other failed build sends (the finish hooks run as for a task that ended normally).
    fast.config["SMTP_HOST"] = "127.0.0.1"
    with fast.app_context():
        make_user("builder", role="qvp")
        task = make_task("builder", kind="build", target="server:1",
                         payload={"server_id": 1, "tag": "demo:1"})
        task.state, task.claimed_by, task.attempts, task.max_attempts = "running", "dead-worker", 1, 1
        task.lease_expires_at = utcnow() - timedelta(seconds=5)
        db.session.commit()
        task_id = task.id
        assert Runner(fast, worker_id="r-reclaim", concurrency=1).reclaim_expired() == 1
        row = db.session.get(Task, task_id)
        assert row.state == "failed" and "no attempts are left" in row.message
        mails = db.session.scalars(select(Task).where(Task.kind == "send_mail")).all()
    assert [(m.payload["to"], m.payload["subject"]) for m in mails] == [
        ("builder@example.com", "Your build failed: server:1")]


def test_live_lease_is_not_stolen(fast):
    [task_id] = queue(fast, "test_count")
    with fast.app_context():
        task = db.session.get(Task, task_id)
        task.state, task.claimed_by, task.attempts = "running", "alive", 1
        task.lease_expires_at = utcnow() + timedelta(seconds=60)
        db.session.commit()
        runner = Runner(fast, worker_id="r3", concurrency=1)
        assert runner.reclaim_expired() == 0
        assert runner.run_once() == 0
    assert states(fast, [task_id])[task_id].claimed_by == "alive"


def test_cancel_queued_and_running(fast):
    queued_id, running_id = queue(fast, "test_blocking", 2)
    with fast.app_context():
        assert task_queue.cancel(db.session.get(Task, queued_id), "tester")
        db.session.commit()
    assert states(fast, [queued_id])[queued_id].state == "cancelled"
    runner = Runner(fast, worker_id="r4", concurrency=1)
    with fast.app_context():
        assert runner.run_once() == 1
    wait_for(lambda: states(fast, [running_id])[running_id].state == "running")
    with fast.app_context():
        assert task_queue.cancel(db.session.get(Task, running_id), "tester")
        db.session.commit()
    wait_for(lambda: states(fast, [running_id])[running_id].state == "cancelled")
    with fast.app_context():
        assert not task_queue.cancel(db.session.get(Task, running_id), "tester")
    runner.shutdown(0)


def test_shutdown_releases_running_tasks(fast):
    [task_id] = queue(fast, "test_blocking")
    runner = Runner(fast, worker_id="r5", concurrency=1)
    with fast.app_context():
        assert runner.run_once() == 1
    wait_for(lambda: states(fast, [task_id])[task_id].state == "running")
    runner.shutdown(grace_seconds=0.3)
    row = states(fast, [task_id])[task_id]
    assert row.state == "queued" and row.claimed_by is None and row.attempts == 0
    GATE.set()
    other = Runner(fast, worker_id="r6", concurrency=1)
    wait_for(lambda: (other.run_once() and False) or states(fast, [task_id])[task_id].state == "succeeded")
    other.shutdown(0)


def test_lock_key_allows_one_task_in_flight(fast):
    with fast.app_context():
        task_queue.enqueue("test_count", lock_key="server:1", requested_by="a")
        db.session.commit()
        with pytest.raises(task_queue.TaskConflict):
            task_queue.enqueue("test_count", lock_key="server:1", requested_by="b")
