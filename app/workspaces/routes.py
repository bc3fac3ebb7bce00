"""The owner's workspace page, lifecycle buttons, and the hand-off link to a workspace host."""

from __future__ import annotations

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from sqlalchemy import select
from werkzeug.wrappers import Response

from app.connections.idle import idle_note
from app.extensions import db
from app.forms_common import ConfirmForm
from app.logs.plain import workspace_events
from app.models import Task
from app.models.workspace import WORKSPACE_APPS, Workspace
from app.routing.nginx import workspace_host
from app.security.tokens import Grant, issue_handoff
from app.services import audit
from app.services import workspaces as service

bp = Blueprint("workspaces", __name__, url_prefix="/workspaces")
RECENT_TASKS = 5
RECENT_EVENTS = 10


def my_workspace() -> Workspace | None:
    """The signed-in user's workspace, if they have one."""
    return db.session.scalar(select(Workspace).where(Workspace.user_id == current_user.id))


def app_url(host: str, path: str = "/") -> str:
    """An absolute URL on a workspace host, with the edge's scheme and port."""
    domain = current_app.config["WORKSPACE_DOMAIN"]
    port = ":" + domain.rsplit(":", 1)[1] if ":" in domain else ""
    scheme = "https" if current_app.config["HTTPS"] else "http"
    return f"{scheme}://{host}{port}{path}"


@bp.route("/")
@login_required
def home() -> str:
    """The user's home page: their workspace's status, Open links, lifecycle buttons and recent tasks."""
    ws = my_workspace()
    recent: list[Task] = []
    events = []
    if ws is not None:
        recent = list(db.session.scalars(
            select(Task).where(Task.lock_key == ws.lock_key).order_by(Task.id.desc()).limit(RECENT_TASKS)
        ))
        events = workspace_events(ws.id, ws.username, RECENT_EVENTS)
    return render_template("workspaces/home.html", ws=ws, task=recent[0] if recent else None,
                           idle=idle_note(ws, current_app.config) if ws is not None else None,
                           workspace_events=events,
                           recent=recent, apps=WORKSPACE_APPS, confirm=ConfirmForm(),
                           want_start=request.args.get("start") == "1")


@bp.route("/<action>", methods=["POST"])
@login_required
def lifecycle(action: str) -> Response:
    """Start, stop or restart the user's own workspace (queued as a task)."""
    if action not in service.ACTIONS:
        abort(404)
    ws = my_workspace()
    if ws is None:
        abort(404)
    if not ConfirmForm().validate_on_submit():
        abort(400)
    try:
        service.request(ws, action, current_user)
    except service.WorkspaceError as exc:
        db.session.rollback()
        flash(str(exc), "danger")
    else:
        flash(f"Your workspace will {action} in a moment.", "success")
    return redirect(url_for("workspaces.home"))


@bp.route("/open/<app>")
@login_required
def open_app(app: str) -> Response:
    """Send the browser to the workspace host with a one-time token (the owner only)."""
    if app not in WORKSPACE_APPS:
        abort(404)
    # `user` names the workspace host's owner when nginx sent the browser here (a pasted link).
    owner = request.args.get("user") or current_user.username
    if owner != current_user.username:
        if current_user.role != "admin" or not current_app.config["WORKSPACE_ADMIN_ACCESS"]:
            abort(403, "This workspace belongs to someone else.")
        ws = db.session.scalar(select(Workspace).where(Workspace.username == owner))
        if ws is None:
            abort(404)
    else:
        ws = my_workspace()
    if ws is None:
        flash("You have no workspace yet.", "info")
        return redirect(url_for("workspaces.home"))
    host = workspace_host(ws.username, app, current_app.config["WORKSPACE_DOMAIN"])
    if ws.username != current_user.username:
        audit.record("workspace_admin_opened", current_user.username, {"owner": ws.username, "app": app},
                     level="warning")
        db.session.commit()
    grant = Grant(current_user.id, current_user.username, host, current_user.current_session.id)
    token = issue_handoff(grant)
    response = redirect(app_url(host, f"/_slipway/exchange?token={token}"), code=302)
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Cache-Control"] = "no-store"
    return response
