"""Claim order: priority first (user-facing work before background work), then due time, then id."""

from __future__ import annotations

import threading
import time

from app.extensions import db
from app.services import task_queue
from app.worker import load_kinds
from app.worker.kinds import HANDLERS, PRIORITY_BACKGROUND, PRIORITY_INTERACTIVE, task_kind
from app.worker.runner import Runner

ORDER: list[int] = []
ORDER_LOCK = threading.Lock()


@task_kind("test_prio_background", max_attempts=1, priority=PRIORITY_BACKGROUND)
def background_handler(ctx):
    """Record when it ran."""
    with ORDER_LOCK:
        ORDER.append(ctx.task.id)


@task_kind("test_prio_start", max_attempts=1, priority=PRIORITY_INTERACTIVE)
def start_handler(ctx):
    """Record when it ran."""
    with ORDER_LOCK:
        ORDER.append(ctx.task.id)


def run_all(app, expected: int) -> list[int]:
    """Run queued tasks one at a time until `expected` have run; returns their ids in run order."""
    ORDER.clear()
    runner = Runner(app, worker_id="prio", concurrency=1)
    deadline = time.monotonic() + 20
    try:
        while len(ORDER) < expected and time.monotonic() < deadline:
            runner.run_once()
            time.sleep(0.02)
    finally:
        runner.shutdown(2)
    return list(ORDER)


def test_user_facing_kinds_outrank_background_kinds():
    load_kinds()
    for kind in ("provision", "start", "stop", "delete_workspace", "refresh_server"):
        assert HANDLERS[kind].priority == PRIORITY_INTERACTIVE, kind
    for kind in ("reconcile", "import", "push"):
        assert HANDLERS[kind].priority == PRIORITY_BACKGROUND, kind


def test_a_start_overtakes_a_queue_of_background_tasks(app):
    with app.app_context():
        queued = [task_queue.enqueue("test_prio_background", target=f"bg{n}") for n in range(6)]
        db.session.commit()  # the background tasks are older, and due first
        background = [task.id for task in queued]
        start_task = task_queue.enqueue("test_prio_start", target="ws:alice")
        db.session.commit()
        start = start_task.id
    order = run_all(app, 7)
    assert order == [start, *background]  # the start first, then the background ones oldest first


def test_enqueue_overrides_the_kinds_priority(app):
    with app.app_context():
        routine = task_queue.enqueue("test_prio_background", target="routine")
        urgent = task_queue.enqueue("test_prio_background", target="urgent", priority=PRIORITY_INTERACTIVE)
        db.session.commit()
        assert (routine.priority, urgent.priority) == (PRIORITY_BACKGROUND, PRIORITY_INTERACTIVE)
        ids = [urgent.id, routine.id]
    assert run_all(app, 2) == ids
