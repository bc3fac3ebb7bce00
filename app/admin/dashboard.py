"""The dashboard: what needs acting on, counted in a fixed number of queries, each count a link."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from flask import render_template, url_for
from flask_login import current_user
from sqlalchemy import func, select, union_all

from app.admin.routes import bp
from app.extensions import db
from app.logs.query import visible_alerts
from app.models import ALERT_SEVERITIES, Alert, Server, Task, User
from app.models.workspace import Workspace
from app.permissions import can, permission_required
from app.timeutil import utcnow

RECENT_HOURS = 24
# Task kinds that are image work; their counts make the images card.
IMAGE_KINDS = (("build", "Builds"), ("push", "Pushes"), ("import", "Imports"))


@dataclass
class Count:
    """One figure on a card and the filtered list it opens."""

    key: str
    label: str
    value: int
    url: str
    alarm: bool = False  # shown in red while non-zero


@dataclass
class Card:
    """A dashboard card: a title, its figures and links to the pages where one acts on them."""

    key: str
    title: str
    counts: list[Count] = field(default_factory=list)
    links: list[tuple[str, str]] = field(default_factory=list)


def _grouped(column: object, count_of: object) -> dict[str, int]:
    rows = db.session.execute(select(column, func.count(count_of)).group_by(column))
    return {key: value for key, value in rows}


def _people_card() -> Card:
    by_status = _grouped(User.status, User.id)
    pending = by_status.get("pending", 0)
    return Card("people", "People", [
        Count("pending", "Pending approvals", pending, url_for("admin.approvals"), alarm=True),
        Count("approved", "Approved users", by_status.get("approved", 0),
              url_for("admin.users", status="approved")),
    ], [(f"Review {pending} pending", url_for("admin.approvals"))] if pending else [])


def _servers_card() -> Card:
    by_status = _grouped(Server.status, Server.id)
    counts = [Count(status, status.capitalize(), by_status.get(status, 0),
                    url_for("servers.index", status=status), alarm=status == "offline")
              for status in ("online", "offline", "degraded", "unknown")
              if status in ("online", "offline") or by_status.get(status)]
    links = [("Add a server", url_for("servers.add"))] if can(current_user, "manage_servers") else []
    return Card("servers", "Servers", counts, links)


def _workspaces_card() -> Card:
    by_status = _grouped(Workspace.status, Workspace.id)
    shown = (("running", "Running"), ("stopped", "Stopped"), ("error", "Failed"),
             ("provisioning", "Provisioning"), ("deleting", "Deleting"))
    counts = [Count(status, label, by_status.get(status, 0),
                    url_for("workspace_admin.index", status=status), alarm=status == "error")
              for status, label in shown
              if status in ("running", "stopped", "error") or by_status.get(status)]
    return Card("workspaces", "Workspaces", counts)


def _open_tasks() -> dict[tuple[str, str], int]:
    """(kind, state) → count of queued and running tasks, and of those that failed recently."""
    since = utcnow() - timedelta(hours=RECENT_HOURS)
    # Two branches in one statement, each a range on the claim index (state first): with an OR the
    # optimizer scans the whole table, which grows with every finished task.
    rows = db.session.execute(union_all(
        select(Task.kind, Task.state, func.count(Task.id)).where(Task.state.in_(("queued", "running")))
        .group_by(Task.kind, Task.state),
        select(Task.kind, Task.state, func.count(Task.id))
        .where(Task.state == "failed", Task.created_at >= since)
        .group_by(Task.kind, Task.state),
    ))
    return {(kind, state): value for kind, state, value in rows}


def _total(tasks: dict[tuple[str, str], int], state: str, kind: str | None = None) -> int:
    return sum(value for (k, s), value in tasks.items() if s == state and kind in (None, k))


def _tasks_card(tasks: dict[tuple[str, str], int]) -> Card:
    return Card("tasks", "Tasks", [
        Count("running", "Running", _total(tasks, "running"), url_for("tasks.index", state="running")),
        Count("queued", "Queued", _total(tasks, "queued"), url_for("tasks.index", state="queued")),
        Count("failed", f"Failed (last {RECENT_HOURS} h)", _total(tasks, "failed"),
              url_for("tasks.index", state="failed", hours=RECENT_HOURS), alarm=True),
    ])


def _images_card(tasks: dict[tuple[str, str], int]) -> Card:
    counts = []
    for kind, label in IMAGE_KINDS:
        counts += [
            Count(f"{kind}-running", f"{label} running", _total(tasks, "running", kind),
                  url_for("tasks.index", kind=kind, state="running")),
            Count(f"{kind}-failed", f"{label} failed (last {RECENT_HOURS} h)", _total(tasks, "failed", kind),
                  url_for("tasks.index", kind=kind, state="failed", hours=RECENT_HOURS), alarm=True),
        ]
    links = [("Images", url_for("images.index"))]
    if can(current_user, "build_images"):
        links.append(("Build an image", url_for("images.build")))
    if can(current_user, "push_images"):
        links.append(("Push an image", url_for("images.push")))
    return Card("images", "Images", counts, links)


def _alerts_card() -> Card:
    """Open alerts by severity (one grouped query), each count opening the alerts list so filtered."""
    stmt = (visible_alerts(current_user).where(Alert.state == "open")
            .with_only_columns(Alert.severity, func.count(Alert.id)).group_by(Alert.severity))
    by_severity = {severity: value for severity, value in db.session.execute(stmt)}
    counts = [Count(severity, severity.capitalize(), by_severity.get(severity, 0),
                    url_for("logs.alerts_index", state="open", severity=severity),
                    alarm=severity in ("high", "critical"))
              for severity in reversed(ALERT_SEVERITIES)]
    links = [("All unresolved alerts", url_for("logs.alerts_index", state="unresolved"))]
    return Card("alerts", "Open alerts", counts, links)


@bp.route("/")
@permission_required("view_dashboard")
def dashboard() -> str:
    """The cards the user's role acts on: open alerts, approvals, servers, workspaces, tasks, image work."""
    cards: list[Card] = []
    if can(current_user, "view_logs"):
        cards.append(_alerts_card())
    if can(current_user, "manage_users"):
        cards.append(_people_card())
    if can(current_user, "view_servers"):
        cards.append(_servers_card())
    if can(current_user, "manage_users"):
        cards.append(_workspaces_card())
    if can(current_user, "view_tasks"):
        tasks = _open_tasks()
        cards.append(_tasks_card(tasks))
        if can(current_user, "view_images"):
            cards.append(_images_card(tasks))
    return render_template("admin/dashboard.html", cards=cards)
