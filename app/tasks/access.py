"""Who may see a task: the person who asked for it, and holders of `view_tasks`."""

from __future__ import annotations

from flask import abort
from flask_login import current_user

from app.extensions import db
from app.models import Task
from app.permissions import can


def load_visible_task_or_404(task_id: int) -> Task:
    """The task if the current user may see it; otherwise 404, exactly like a missing one."""
    task = db.session.get(Task, task_id)
    if task is None:
        abort(404)
    if task.requested_by != current_user.username and not can(current_user, "view_tasks"):
        abort(404)
    return task
