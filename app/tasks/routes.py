"""Task list and detail pages, cancel/retry buttons, and the live event stream."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from typing import Any

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from simple_websocket import ConnectionClosed
from sqlalchemy import select
from werkzeug.wrappers import Response

from app.extensions import db, sock
from app.forms_common import ConfirmForm
from app.models import TASK_STATES, ArchivedTask, Task, TaskEvent, UserSession
from app.permissions import permission_required
from app.services import audit, task_queue
from app.tasks.access import load_visible_task_or_404
from app.timeutil import utcnow

bp = Blueprint("tasks", __name__, url_prefix="/tasks")

STREAM_POLL_SECONDS = 0.5
STREAM_MAX_SECONDS = 3600


@bp.route("/")
@permission_required("view_tasks")
def index() -> str:
    """All tasks, newest first, filtered by state, kind and age (`hours`: created in the last N hours).

    `?archived=1` lists the archive instead.
    """
    archived = request.args.get("archived") == "1"
    model = ArchivedTask if archived else Task
    stmt = select(model).order_by(model.id.desc())
    state = request.args.get("state", "")
    kind = request.args.get("kind", "")[:32]
    if state in TASK_STATES:
        stmt = stmt.where(model.state == state)
    if kind:
        stmt = stmt.where(model.kind == kind)
    hours = request.args.get("hours", type=int)
    if hours is not None and 0 < hours <= 24 * 366:
        stmt = stmt.where(model.created_at >= utcnow() - timedelta(hours=hours))
    else:
        hours = None
    page = db.paginate(stmt, per_page=50, error_out=False)
    return render_template("tasks/index.html", page=page, states=TASK_STATES, state=state, kind=kind,
                           hours=hours, archived=archived)


@bp.route("/<int:task_id>")
@login_required
def detail(task_id: int) -> str:
    """One task: state, progress and every event (the stream only adds to this)."""
    task = load_visible_task_or_404(task_id, include_archived=True)
    return render_template("tasks/detail.html", task=task, events=task.events, confirm=ConfirmForm())


@bp.route("/<int:task_id>/cancel", methods=["POST"])
@login_required
def cancel(task_id: int) -> Response:
    """Cancel a queued task or ask a running one to stop."""
    task = load_visible_task_or_404(task_id)
    if not ConfirmForm().validate_on_submit():
        abort(400)
    if task_queue.cancel(task, current_user.username):
        audit.record("task_cancelled", current_user.username, {"task": task.id, "kind": task.kind})
        flash("Cancel requested." if task.state == "running" else "Task cancelled.", "info")
    else:
        flash(f"The task already {task.state}.", "warning")
    db.session.commit()
    return redirect(url_for("tasks.detail", task_id=task.id))


@bp.route("/<int:task_id>/retry", methods=["POST"])
@login_required
def retry(task_id: int) -> Response:
    """Queue a failed or cancelled task again."""
    task = load_visible_task_or_404(task_id)
    if not ConfirmForm().validate_on_submit():
        abort(400)
    try:
        new_task = task_queue.retry(task, current_user.username)
    except task_queue.TaskConflict as exc:
        flash(str(exc), "danger")
        return redirect(url_for("tasks.detail", task_id=task.id))
    audit.record("task_retried", current_user.username, {"task": task.id, "kind": task.kind})
    db.session.commit()
    flash(f"Queued again as task #{new_task.id}.", "success")
    return redirect(url_for("tasks.detail", task_id=new_task.id))


def _origin_allowed() -> bool:
    origin = request.headers.get("Origin")
    return origin is not None and origin.rstrip("/") == request.host_url.rstrip("/")


def _session_live(session_id: int | None) -> bool:
    db.session.rollback()  # a fresh snapshot each time (MariaDB REPEATABLE READ)
    row = db.session.get(UserSession, session_id) if session_id else None
    return row is not None and row.is_live(utcnow())


@bp.before_request
def guard_stream() -> None:
    """Refuse a stream handshake before it is upgraded: bad Origin 403, foreign task 404."""
    if request.endpoint != "tasks.stream":
        return
    if not _origin_allowed():
        abort(403)
    if not current_user.is_authenticated or not current_user.is_approved:
        abort(401)
    load_visible_task_or_404(int((request.view_args or {})["task_id"]))


def _panel_key(task: Task) -> tuple:
    """Everything the state panel shows that can change while the page is open."""
    return (task.state, task.message, task.progress, task.attempts, task.started_at, task.finished_at,
            task.cancel_requested, json.dumps(task.result, sort_keys=True, default=str))


@sock.route("/<int:task_id>/stream", bp=bp)
def stream(ws: Any, task_id: int) -> None:
    """Send new events, and the re-rendered state panel whenever it changed, until the task ends.

    A revoked session closes the stream.
    """
    session_id = current_user.current_session.id if current_user.current_session else None
    try:
        last_id = max(0, int(request.args.get("after", 0) or 0))
    except ValueError:
        last_id = 0
    poll = current_app.config.get("STREAM_POLL_SECONDS", STREAM_POLL_SECONDS)
    deadline = time.monotonic() + STREAM_MAX_SECONDS
    confirm = ConfirmForm()
    shown: tuple | None = None
    while time.monotonic() < deadline:
        if not _session_live(session_id):
            ws.close(reason=1008, message="session ended")
            return
        events = db.session.scalars(
            select(TaskEvent).where(TaskEvent.task_id == task_id, TaskEvent.id > last_id)
            .order_by(TaskEvent.id).limit(500)
        ).all()
        task = db.session.get(Task, task_id)
        if task is None:
            ws.close(reason=1008, message="task gone")
            return
        if events:
            last_id = events[-1].id
        finished = task.is_finished and len(events) < 500
        message: dict[str, Any] = {"state": task.state, "progress": task.progress, "message": task.message,
                                   "events": [event.as_dict() for event in events], "finished": finished}
        if (key := _panel_key(task)) != shown:
            message["panel"] = render_template("tasks/_state.html", task=task, confirm=confirm)
            shown = key
        try:
            ws.send(json.dumps(message))
        except ConnectionClosed:
            return
        if finished:
            ws.close(reason=1000, message="finished")
            return
        time.sleep(poll)
    ws.close()
