"""Who may see a task: the person who asked for it, and holders of `view_tasks`."""

from __future__ import annotations

from flask import abort
from flask_login import current_user

from app.extensions import db
from app.models import ArchivedTask, Task
from app.permissions import can


def load_visible_task_or_404(task_id: int, *, include_archived: bool = False) -> Task | ArchivedTask:
    """The task if the current user may see it; otherwise 404, exactly like a missing one.

    With `include_archived`, a task moved to the archive is found too (read-only pages).
    """
    task: Task | ArchivedTask | None = db.session.get(Task, task_id)
    if task is None and include_archived:
        task = db.session.get(ArchivedTask, task_id)
    if task is None:
        abort(404)
    if task.requested_by != current_user.username and not can(current_user, "view_tasks"):
        abort(404)
    return task
