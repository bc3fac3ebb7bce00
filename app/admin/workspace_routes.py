"""Admin workspace pages: provision (with approval), lifecycle buttons, delete, reconcile."""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import select
from werkzeug.wrappers import Response

from app.admin.workspace_forms import DeleteWorkspaceForm, ProvisionForm
from app.extensions import db
from app.forms_common import ConfirmForm
from app.models import Task, User
from app.models.workspace import WORKSPACE_STATUSES, Workspace
from app.permissions import permission_required
from app.services import workspaces as service

bp = Blueprint("workspace_admin", __name__, url_prefix="/admin/workspaces")


def last_tasks(workspaces: list[Workspace]) -> dict[str, Task]:
    """The newest lifecycle task of each workspace, by lock key."""
    keys = [ws.lock_key for ws in workspaces]
    tasks: dict[str, Task] = {}
    if keys:
        for task in db.session.scalars(select(Task).where(Task.lock_key.in_(keys)).order_by(Task.id)):
            tasks[task.lock_key or ""] = task
    return tasks


@bp.route("/")
@permission_required("manage_users")
def index() -> str:
    """Every workspace (or those with `?status=`) with its status, last task and buttons."""
    stmt = select(Workspace).order_by(Workspace.username)
    status = request.args.get("status", "")
    if status in WORKSPACE_STATUSES:
        stmt = stmt.where(Workspace.status == status)
    rows = db.session.scalars(stmt).all()
    return render_template("admin/workspaces.html", rows=rows, tasks=last_tasks(list(rows)),
                           status=status if status in WORKSPACE_STATUSES else "",
                           confirm=ConfirmForm(), delete_form=DeleteWorkspaceForm())


@bp.route("/provision/<int:user_id>", methods=["GET", "POST"])
@permission_required("manage_users")
def provision(user_id: int) -> str | Response:
    """Approve with options: pick server, image and limits (or no workspace) and queue the provision task."""
    user = db.get_or_404(User, user_id)
    form = ProvisionForm()
    form.fill_choices()
    pending = user.status != "approved"
    if not pending:
        del form.without_workspace
    if form.validate_on_submit():
        plan = service.Plan(
            server_id=form.server.data or None,
            image=form.image.data,
            cpu=float(form.cpu.data),
            memory_mb=form.memory_mb.data,
        )
        try:
            if pending:
                task = service.approve_user(user, current_user, None if form.without_workspace.data else plan)
            else:
                task = service.provision(user, current_user, plan)
        except service.WorkspaceError as exc:
            db.session.rollback()
            flash(str(exc), "danger")
        else:
            if task is None:
                flash(f"Approved {user.username} without a workspace.", "success")
                return redirect(url_for("admin.user_detail", user_id=user.id))
            flash(f"Provisioning {user.username}'s workspace.", "success")
            return redirect(url_for("tasks.detail", task_id=task.id))
    return render_template("admin/workspace_provision.html", user=user, form=form)


@bp.route("/<int:ws_id>/<action>", methods=["POST"])
@permission_required("manage_users")
def lifecycle(ws_id: int, action: str) -> Response:
    """Start, stop, restart, re-create or delete a workspace (queued as a task)."""
    ws = db.get_or_404(Workspace, ws_id)
    form = DeleteWorkspaceForm() if action == "delete" else ConfirmForm()
    if action not in (*service.ACTIONS, "delete", "recreate") or not form.validate_on_submit():
        abort(400)
    remove_folder = bool(getattr(form, "remove_folder", None) and form.remove_folder.data)
    try:
        task = service.request(ws, action, current_user, remove_folder=remove_folder)
    except service.WorkspaceError as exc:
        db.session.rollback()
        flash(str(exc), "danger")
        return redirect(url_for("workspace_admin.index"))
    flash(f"{action.capitalize()} queued for {ws.username}.", "success")
    return redirect(url_for("tasks.detail", task_id=task.id))


@bp.route("/reconcile", methods=["POST"])
@permission_required("manage_users")
def reconcile() -> Response:
    """Queue a reconcile pass now."""
    if not ConfirmForm().validate_on_submit():
        abort(400)
    task = service.reconcile_now(current_user.username)
    if task is None:
        flash("A reconcile pass is already queued or running.", "info")
        return redirect(url_for("workspace_admin.index"), code=303)
    return redirect(url_for("tasks.detail", task_id=task.id), code=303)
