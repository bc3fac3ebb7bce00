"""Workspace lifecycle requests: each one changes rows, audits and queues its task in ONE commit.

The tasks (app/workspaces/handlers.py) do the outside work. Every lifecycle task of a
workspace holds the same lock key, so only one runs at a time; a second request is
refused with a message naming the task in flight.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from flask import current_app
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app.extensions import db
from app.mail import notify
from app.models import Task, User
from app.models.server import Server
from app.models.workspace import Workspace
from app.services import audit
from app.services.default_image import default_workspace_image
from app.services.placement import pick_server
from app.services.task_queue import TaskConflict, enqueue
from app.timeutil import utcnow

ACTIONS = {"start": "start", "stop": "stop", "restart": "start"}
IDLE_STOP_ACTOR = "idle stop"  # requested_by of a stop queued because the workspace was idle


class WorkspaceError(ValueError):
    """A workspace request was refused; the message is meant for the person who asked."""


@dataclass(frozen=True)
class Plan:
    """Where and how to provision: a server (None = placement picks), image and limits."""

    server_id: int | None = None
    image: str | None = None
    cpu: float | None = None
    memory_mb: int | None = None


def container_name(username: str) -> str:
    """The deterministic container name of `username`'s workspace."""
    return f"slipway-ws-{username}"


def _pick_server(plan: Plan, cpu: float, memory_mb: int) -> Server:
    if plan.server_id is not None:
        server = db.session.get(Server, plan.server_id)
        if server is None:
            raise WorkspaceError("That server does not exist.")
        return server
    server = pick_server(cpu, memory_mb)
    if server is None:
        raise WorkspaceError("No online server has room for this workspace; add or choose a server.")
    return server


def _lock_user(user: User) -> User:
    locked = db.session.scalar(select(User).where(User.id == user.id).with_for_update())
    if locked is None:
        raise WorkspaceError("That user no longer exists.")
    return locked


def approve_user(user: User, actor: User, plan: Plan | None) -> Task | None:
    """Approve a pending or rejected account and queue its workspace by `plan` (None: no workspace).

    The one place that writes the approval and its `approve_user` audit row; with a plan the
    workspace row and its provision task go in the same commit, and any refusal changes nothing.
    """
    locked = _lock_user(user)
    if locked.status == "approved":
        db.session.rollback()
        raise WorkspaceError(f"{locked.username} is already approved.")
    if locked.status == "suspended":
        db.session.rollback()
        raise WorkspaceError(f"{locked.username} is suspended; reinstate the account instead.")
    locked.status = "approved"
    locked.meta = {**(locked.meta or {}), "rejection_reason": None}
    audit.record("user_approved", actor.username, {"user": locked.username, "workspace": plan is not None})
    notify.approved(locked, workspace_queued=plan is not None)
    if plan is None:
        db.session.commit()
        return None
    return _provision_locked(locked, actor, plan)


def provision(user: User, actor: User, plan: Plan, *, approve: bool = False) -> Task:
    """Create the workspace row and queue its `provision` task (approving the user too, if asked).

    Two admins approving at once: the user row is locked and the workspace username is
    unique, so the second request is refused and only one container is ever created.
    """
    if approve:
        task = approve_user(user, actor, plan)
        assert task is not None  # a plan was given, so a task was queued
        return task
    return _provision_locked(_lock_user(user), actor, plan)


def _provision_locked(locked: User, actor: User, plan: Plan) -> Task:
    """Add the workspace row, its task and audit for the locked user, and commit; rolls back on refusal."""
    try:
        if db.session.scalar(select(Workspace.id).where(Workspace.username == locked.username)):
            raise WorkspaceError(f"{locked.username} already has a workspace.")
        cfg = current_app.config
        cpu = plan.cpu or cfg["DEFAULT_CPU"]
        memory_mb = plan.memory_mb or cfg["DEFAULT_MEMORY_MB"]
        server = _pick_server(plan, cpu, memory_mb)
    except WorkspaceError:
        db.session.rollback()
        raise
    ws = Workspace(
        user_id=locked.id,
        username=locked.username,
        server_id=server.id,
        container_name=container_name(locked.username),
        image=plan.image or default_workspace_image().ref,
        cpu=cpu,
        memory_mb=memory_mb,
        ports={},
        status="provisioning",
        error="",
    )
    db.session.add(ws)
    try:
        db.session.flush()
        task = enqueue("provision", target=f"workspace:{ws.username}", requested_by=actor.username,
                       payload={"workspace_id": ws.id}, lock_key=ws.lock_key)
        audit.record("workspace_provision_requested", actor.username,
                     {"user": ws.username, "server": server.name, "image": ws.image, "cpu": cpu,
                      "memory_mb": memory_mb}, server_id=server.id)
        db.session.commit()
    except (IntegrityError, TaskConflict) as exc:
        db.session.rollback()
        raise WorkspaceError(f"A workspace for {locked.username} is being set up already.") from exc
    return task


def request(ws: Workspace, action: str, actor: User, *, remove_folder: bool = False) -> Task:
    """Queue start / stop / restart / recreate / delete for `ws`; refused while another task holds it."""
    task = queue(ws, action, actor, remove_folder=remove_folder)
    db.session.commit()
    return task


def queue(ws: Workspace, action: str, actor: User, *, remove_folder: bool = False) -> Task:
    """Add the task, status change and audit row of `action` on `ws` to the session; the caller commits."""
    if action == "delete":
        kind, payload = "delete_workspace", {"workspace_id": ws.id, "remove_folder": remove_folder}
    elif action == "recreate":
        if ws.status != "error":
            raise WorkspaceError("Only a workspace in error can be re-created.")
        kind, payload = "provision", {"workspace_id": ws.id}
    elif action in ACTIONS:
        if ws.status in ("provisioning", "deleting"):
            raise WorkspaceError(f"The workspace is {ws.status}; wait for it to finish.")
        kind, payload = ACTIONS[action], {"workspace_id": ws.id, "restart": action == "restart"}
    else:
        raise WorkspaceError(f"Unknown action {action!r}.")
    try:
        task = enqueue(kind, target=f"workspace:{ws.username}", requested_by=actor.username,
                       payload=payload, lock_key=ws.lock_key)
    except TaskConflict as exc:
        raise WorkspaceError(f"Another operation on this workspace is in progress ({exc}).") from exc
    if action == "delete":
        ws.status = "deleting"
    ws.idle_stopped_at = None  # the owner's page explains an idle stop only until the next action
    audit.record(f"workspace_{action}_requested", actor.username, {"user": ws.username, **payload},
                 server_id=ws.server_id)
    return task


def stop_idle(ws: Workspace, minutes: int, idle_since: datetime) -> Task:
    """Queue the normal stop task for `ws`, idle since `idle_since`, audited `workspace_idle_stopped`.

    Adds to the session (the caller commits); refused with WorkspaceError while another task
    holds the workspace. The workspace is only ever stopped, never deleted.
    """
    if ws.status != "running":
        raise WorkspaceError(f"The workspace is {ws.status}, not running.")
    try:
        task = enqueue("stop", target=f"workspace:{ws.username}", requested_by=IDLE_STOP_ACTOR,
                       payload={"workspace_id": ws.id, "restart": False}, lock_key=ws.lock_key)
    except TaskConflict as exc:
        raise WorkspaceError(f"Another operation on this workspace is in progress ({exc}).") from exc
    ws.idle_stopped_at = utcnow()
    audit.record("workspace_idle_stopped", None,
                 {"user": ws.username, "idle_minutes": minutes, "idle_since": idle_since.isoformat(" ")},
                 source="worker", server_id=ws.server_id)
    return task


def reconcile_now(actor: str | None) -> Task | None:
    """Queue a reconcile pass unless one is already queued or running."""
    try:
        task = enqueue("reconcile", target="workspaces", requested_by=actor, lock_key="reconcile")
    except TaskConflict:
        db.session.rollback()
        return None
    db.session.commit()
    return task
