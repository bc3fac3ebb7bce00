"""Workspace task kinds: provision, start, stop, delete_workspace. Each is idempotent.

A transient backend failure (agent unreachable) is retried by the runner; on the last
attempt the workspace is marked `error` (committed before the task fails, since the
runner rolls back) so the page shows why and offers a retry.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

from app.agent_client import AgentError, AgentUnavailable
from app.backends import backend_for
from app.backends.base import ContainerInfo, ContainerSpec
from app.extensions import db
from app.models.workspace import APP_PORTS, GATE_SECRET_PURPOSE, WORKSPACE_APPS, Workspace
from app.routing.nginx import NginxError
from app.routing.sync import regenerate
from app.security.crypto import encrypt_secret
from app.services import audit
from app.worker.kinds import PRIORITY_INTERACTIVE, TaskContext, TaskFailed, readable, task_kind

GATE_ENV = "SLIPWAY_GATE_SECRET"  # the variable the image's gate reads its secret from


def _load(ctx: TaskContext) -> Workspace:
    ws = db.session.get(Workspace, int(ctx.payload.get("workspace_id", 0)))
    if ws is None:
        raise TaskFailed("the workspace no longer exists")
    return ws


def _guard(ctx: TaskContext, ws: Workspace, step: Callable[[], Any]) -> Any:
    """Run one backend step; mark the workspace `error` when this failure is final."""
    try:
        return step()
    except AgentUnavailable as exc:
        if ctx.task.attempts < ctx.task.max_attempts:
            ctx.log(f"agent unavailable, will retry: {exc}", level="warning")
            raise
        _fail(ws, f"agent unavailable: {exc}")
        raise TaskFailed(f"agent unavailable: {exc}") from exc
    except AgentError as exc:
        _fail(ws, str(exc))
        raise TaskFailed(str(exc)) from exc


def _fail(ws: Workspace, message: str) -> None:
    db.session.rollback()
    ws = db.session.get(Workspace, ws.id)
    if ws is not None:
        ws.status = "error"
        ws.error = message[:1000]
        audit.record("workspace_failed", None, {"user": ws.username, "error": message[:500]},
                     level="error", source="worker", server_id=ws.server_id)
        db.session.commit()


def _routes(ctx: TaskContext, username: str) -> None:
    try:
        regenerate(usernames=[username])  # one workspace's line to every edge; the reconciler pushes all
    except NginxError as exc:
        raise TaskFailed(f"nginx refused the new routes: {exc}") from exc
    ctx.log("routes pushed")


def _adopt(ws: Workspace, info: ContainerInfo, status: str) -> None:
    ws.container_id = info.id
    ws.ports = {app: port for app, port in info.ports.items() if app in WORKSPACE_APPS}
    ws.status = status
    ws.error = ""


def _new_container_spec(ws: Workspace) -> ContainerSpec:
    """The spec of a new container, with a fresh gate secret stored (and committed) first.

    Committed before the create call so that a retry adopting this container routes with its
    secret; a container found already existing keeps the secret it was created with.
    """
    secret = secrets.token_urlsafe(32)
    ws.gate_secret = encrypt_secret(secret, GATE_SECRET_PURPOSE)
    db.session.commit()
    return ContainerSpec(
        name=ws.container_name,
        image=ws.image,
        cpu=ws.cpu,
        memory_mb=ws.memory_mb,
        ports=dict(APP_PORTS),
        workspace_dir=ws.username,
        labels={"slipway.user": ws.username, "slipway.workspace_id": str(ws.id)},
        env={GATE_ENV: secret},
    )


@task_kind("provision", max_attempts=3, priority=PRIORITY_INTERACTIVE)
def provision(ctx: TaskContext) -> dict[str, Any]:
    """Create (or adopt, on a retry) the workspace's container, record it and route it."""
    ws = _load(ctx)
    if ws.status == "deleting":
        raise TaskFailed("the workspace is being deleted")
    ws.status, ws.error = "provisioning", ""
    db.session.commit()
    backend = backend_for(ws.server)
    ctx.progress(10, f"creating {ws.container_name} from {ws.image} on {ws.server.name}")
    info = _guard(ctx, ws, lambda: backend.status(ws.container_name))
    if info is None:
        spec = _new_container_spec(ws)
        info = _guard(ctx, ws, lambda: backend.create(spec))
    elif not info.running:
        info = _guard(ctx, ws, lambda: backend.start(ws.container_name))
    if not all(app in info.ports for app in WORKSPACE_APPS):
        _fail(ws, f"the container did not publish ports for {', '.join(WORKSPACE_APPS)}")
        raise TaskFailed("the container did not publish both apps' ports")
    _adopt(ws, info, "running")
    audit.record("workspace_provisioned", ctx.task.requested_by,
                 {"user": ws.username, "container": info.name, "ports": ws.ports},
                 source="worker", server_id=ws.server_id)
    db.session.commit()
    ctx.progress(80, f"container {info.id[:12]} running. Ports: {readable(ws.ports)}")
    _routes(ctx, ws.username)
    return {"container_id": info.id, "ports": ws.ports}


@task_kind("start", max_attempts=3, priority=PRIORITY_INTERACTIVE)
def start(ctx: TaskContext) -> dict[str, Any]:
    """Start (or, with payload restart, stop then start) the container and route it."""
    ws = _load(ctx)
    backend = backend_for(ws.server)
    ref = ws.container_id or ws.container_name
    if ctx.payload.get("restart"):
        _guard(ctx, ws, lambda: backend.stop(ref))
    info = _guard(ctx, ws, lambda: backend.start(ref))
    _adopt(ws, info, "running")
    audit.record("workspace_started", ctx.task.requested_by, {"user": ws.username, "ports": ws.ports},
                 source="worker", server_id=ws.server_id)
    db.session.commit()
    ctx.progress(80, f"container {info.id[:12]} running. Ports: {readable(ws.ports)}")
    _routes(ctx, ws.username)
    return {"ports": ws.ports}


@task_kind("stop", max_attempts=3, priority=PRIORITY_INTERACTIVE)
def stop(ctx: TaskContext) -> dict[str, Any]:
    """Route the hosts to the "stopped" page first (no 502 window), then stop the container."""
    ws = _load(ctx)
    backend = backend_for(ws.server)
    ref = ws.container_id or ws.container_name
    ws.status, ws.error = "stopped", ""
    db.session.commit()
    _routes(ctx, ws.username)
    _guard(ctx, ws, lambda: backend.stop(ref))
    audit.record("workspace_stopped", ctx.task.requested_by, {"user": ws.username},
                 source="worker", server_id=ws.server_id)
    db.session.commit()
    return {}


@task_kind("delete_workspace", max_attempts=3, priority=PRIORITY_INTERACTIVE)
def delete_workspace(ctx: TaskContext) -> dict[str, Any]:
    """Remove the container (and the folder, if asked), then the row and its routes."""
    ws = _load(ctx)
    ws.status = "deleting"
    db.session.commit()
    backend = backend_for(ws.server)
    remove_folder = bool(ctx.payload.get("remove_folder"))
    removed = False
    for ref in dict.fromkeys(r for r in (ws.container_id, ws.container_name) if r):
        # "Not found" means done: the id and the name may name the same, already removed, container.
        gone = _guard(ctx, ws, lambda r=ref: backend.remove(r, remove_workspace=remove_folder))
        removed = removed or gone
    username, server_id = ws.username, ws.server_id
    db.session.delete(ws)
    audit.record("workspace_deleted", ctx.task.requested_by,
                 {"user": username, "container_removed": removed, "folder_removed": remove_folder},
                 level="warning", source="worker", server_id=server_id)
    db.session.commit()
    _routes(ctx, username)
    return {"container_removed": removed}
