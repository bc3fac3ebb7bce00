"""Retention: finished tasks past TASK_KEEP_DAYS move, with their events, to the archive tables."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from app.extensions import db
from app.models import ArchivedTask, ArchivedTaskEvent, Task, TaskEvent
from app.services import task_queue
from app.timeutil import utcnow
from app.worker.kinds import task_kind
from app.worker.retention import archive_finished
from app.worker.runner import Runner


@task_kind("test_archive_noop", max_attempts=1)
def noop_handler(ctx):
    """Do nothing."""


def make_task(state: str, finished_days_ago: float | None, message: str = "") -> int:
    """A task in `state`, finished that many days ago (None: not finished), with two events."""
    task = task_queue.enqueue("test_archive_noop", target="x", requested_by="owner")
    task.state = state
    if finished_days_ago is not None:
        task.finished_at = utcnow() - timedelta(days=finished_days_ago)
        task.active_lock = None
    db.session.flush()
    db.session.add(TaskEvent(task_id=task.id, message=message or f"line of task {task.id}"))
    db.session.commit()
    return task.id


def counts() -> tuple[int, int, int, int]:
    """(tasks, task_events, tasks_archive, task_events_archive) row counts."""
    return tuple(db.session.scalar(select(func.count()).select_from(model))
                 for model in (Task, TaskEvent, ArchivedTask, ArchivedTaskEvent))


def test_old_finished_tasks_move_to_the_archive_in_batches(app):
    with app.app_context():
        old = [make_task(state, 40) for state in ("succeeded", "failed", "cancelled", "succeeded", "failed")]
        old_queued = make_task("queued", None)  # never finished: stays whatever its age
        recent = make_task("succeeded", 2)
        newest = make_task("failed", 90)  # the newest row keeps its id in the hot table
        assert counts() == (8, 16, 0, 0)
        assert archive_finished(utcnow(), keep_days=30, batch=2) == 5
        assert counts() == (3, 6, 5, 10)
        assert set(db.session.scalars(select(ArchivedTask.id))) == set(old)
        assert set(db.session.scalars(select(Task.id))) == {old_queued, recent, newest}
        archived = db.session.get(ArchivedTask, old[1])
        assert archived.state == "failed" and archived.requested_by == "owner"
        assert [event.message for event in archived.events] == ["queued by owner", f"line of task {old[1]}"]
        # idempotent: a second run finds nothing to move and changes nothing
        assert archive_finished(utcnow(), keep_days=30, batch=2) == 0
        assert counts() == (3, 6, 5, 10)
        # the claim query sees only hot rows: the old queued task is the one it runs
        db.session.get(Task, old_queued).run_after = utcnow() - timedelta(days=40)
        db.session.commit()
    runner = Runner(app, worker_id="archive-test", concurrency=1)
    with app.app_context():
        assert runner._claim_one() == old_queued
        assert runner._claim_one() is None
    runner.shutdown(0)


def test_task_list_and_page_show_archived_tasks(app, client, auth):
    with app.app_context():
        archived_id = make_task("succeeded", 45, message="pulled layer 3 of 7")
        hot_id = make_task("succeeded", 1)
        assert archive_finished(utcnow(), keep_days=30) == 1
    auth.as_role("qvp")
    recent = client.get("/tasks/").get_data(as_text=True)
    assert f'href="/tasks/{hot_id}"' in recent and f'href="/tasks/{archived_id}"' not in recent
    archive = client.get("/tasks/?archived=1").get_data(as_text=True)
    assert f'href="/tasks/{archived_id}"' in archive and f'href="/tasks/{hot_id}"' not in archive
    page = client.get(f"/tasks/{archived_id}")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "archived" in html and "pulled layer 3 of 7" in html
    assert "data-stream-url" not in html and "/cancel" not in html and "/retry" not in html


def test_archived_task_of_someone_else_is_404_for_a_regular_user(app, client, auth):
    auth.as_role("regular")
    with app.app_context():
        archived_id = make_task("succeeded", 45)
        make_task("succeeded", 1)
        assert archive_finished(utcnow(), keep_days=30) == 1
    assert client.get(f"/tasks/{archived_id}").status_code == 404
