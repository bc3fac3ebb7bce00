"""The connection log page (admins: everyone's, filtered; others: their own) and the keep-running switch."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from sqlalchemy import func, or_, select
from werkzeug.wrappers import Response

from app.connections.idle import idle_stop_enabled
from app.extensions import db
from app.forms_common import ConfirmForm
from app.models import ConnectionSession, ConnectionTail, Workspace
from app.permissions import can
from app.services import audit
from app.validators import is_username_shape

bp = Blueprint("connections", __name__)
PER_PAGE = 50
TIME_FORMATS = ("%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%Y-%m-%d")


@dataclass(frozen=True)
class TailSummary:
    """What the worker(s) read from the edges' access logs, summed over every log's cursor."""

    lines: int
    garbled: int
    updated_at: datetime | None


def _tail_summary() -> TailSummary | None:
    """Lines and garbled lines read from every edge's access log (one cursor per log), last read time."""
    lines, garbled, updated = db.session.execute(select(
        func.sum(ConnectionTail.lines), func.sum(ConnectionTail.garbled),
        func.max(ConnectionTail.updated_at))).one()
    return None if lines is None else TailSummary(int(lines), int(garbled or 0), updated)


def _when(name: str, problems: list[str]) -> datetime | None:
    raw = request.args.get(name, "").strip()
    if not raw:
        return None
    for fmt in TIME_FORMATS:
        try:
            return datetime.strptime(raw[:16], fmt)
        except ValueError:
            continue
    problems.append(f"{name.capitalize()} {raw[:20]!r} is not a time like 2026-01-31 14:00 (UTC); ignored.")
    return None


def _name(name: str, problems: list[str]) -> str:
    raw = request.args.get(name, "").strip()
    if raw and not is_username_shape(raw):
        problems.append(f"{name.capitalize()} {raw[:40]!r} is not a username; ignored.")
        return ""
    return raw


@bp.route("/logs/connections")
@login_required
def index() -> str:
    """Sessions of workspace use: everyone's (admins, filtered by user, workspace, time) or one's own."""
    admin = can(current_user, "view_traffic")
    problems: list[str] = []
    user, workspace = _name("user", problems), _name("workspace", problems)
    since, until = _when("since", problems), _when("until", problems)
    stmt = select(ConnectionSession).order_by(ConnectionSession.last_at.desc(), ConnectionSession.id.desc())
    if not admin:  # their own workspace's sessions and their own visits; the filters are for admins
        mine = current_user.username
        stmt = stmt.where(or_(ConnectionSession.owner == mine, ConnectionSession.username == mine))
        user = workspace = ""
        since = until = None
    if user:
        stmt = stmt.where(ConnectionSession.username == user)
    if workspace:
        stmt = stmt.where(ConnectionSession.owner == workspace)
    if since:
        stmt = stmt.where(ConnectionSession.last_at >= since)
    if until:
        stmt = stmt.where(ConnectionSession.started_at < until + timedelta(minutes=1))
    page = db.paginate(stmt, per_page=PER_PAGE, error_out=False)
    cursor = _tail_summary() if admin else None
    return render_template("logs/connections.html", page=page, admin=admin, problems=problems,
                           filters={"user": user, "workspace": workspace,
                                    "since": request.args.get("since", "")[:16] if since else "",
                                    "until": request.args.get("until", "")[:16] if until else ""},
                           cursor=cursor, idle_on=idle_stop_enabled(current_app.config),
                           idle_minutes=current_app.config["IDLE_STOP_MINUTES"],
                           image_minutes=current_app.config["IDLE_STOP_IMAGE_MINUTES"])


@bp.route("/workspaces/keep-running", methods=["POST"])
@login_required
def keep_running() -> Response:
    """Set or clear the owner's "keep running" flag (exempt from idle stop) where the admin allows it."""
    ws = db.session.scalar(select(Workspace).where(Workspace.user_id == current_user.id))
    if ws is None:
        abort(404)
    wanted = request.form.get("keep")
    if not ConfirmForm().validate_on_submit() or wanted not in ("on", "off"):
        abort(400)
    if not current_app.config["IDLE_KEEP_RUNNING_ALLOWED"]:
        flash("Keeping a workspace running is not allowed here: it stops when idle.", "danger")
        return redirect(url_for("workspaces.home"))
    keep = wanted == "on"
    if ws.keep_running != keep:
        ws.keep_running = keep
        audit.record("workspace_keep_running_set" if keep else "workspace_keep_running_cleared",
                     current_user.username, {"user": ws.username})
        db.session.commit()
    message = "Your workspace keeps running while idle." if keep else "Your workspace stops when idle."
    flash(message, "success")
    return redirect(url_for("workspaces.home"))

