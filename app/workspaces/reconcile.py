"""The reconciler: compare each server's managed containers with the workspaces table, repair drift.

- a managed container that no workspace claims is an orphan: removed once older than the
  grace period (a provision may be creating it right now);
- a workspace whose container vanished is marked `error` (re-create is offered);
- a container left behind by a failed provision (workspace in `error`, no id) is removed;
- running/stopped drift follows the container; the routes file is regenerated if it differs.
Workspaces with a lifecycle task in flight are skipped. Every repair is audited.
"""

from __future__ import annotations

import threading
from datetime import datetime, timedelta
from typing import Any

from flask import Flask, current_app
from sqlalchemy import select

from app.agent_client import AgentError
from app.backends import backend_for
from app.backends.base import ContainerInfo
from app.extensions import db
from app.models.server import Server
from app.models.workspace import WORKSPACE_APPS, Workspace
from app.routing.nginx import NginxError
from app.routing.sync import regenerate
from app.services import audit
from app.services.task_queue import in_flight
from app.timeutil import utcnow
from app.worker.kinds import PRIORITY_BACKGROUND, TaskContext, TaskFailed, readable, task_kind


def _created(info: ContainerInfo) -> datetime | None:
    if not info.created:
        return None
    text = info.created.replace("Z", "+00:00")
    if "." in text:  # Docker reports nanoseconds; fromisoformat wants at most micro
        head, _, tail = text.partition(".")
        digits = "".join(ch for ch in tail if ch.isdigit())
        text = f"{head}.{digits[:6]}{tail[len(digits):]}"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed.replace(tzinfo=None) - (parsed.utcoffset() or timedelta(0))


def _repair(action: str, details: dict[str, Any], server: Server, level: str = "warning") -> None:
    audit.record(action, None, details, level=level, source="reconciler", server_id=server.id)


def _reconcile_server(ctx: TaskContext, server: Server, grace: timedelta) -> int:
    backend = backend_for(server)
    containers = backend.list_managed()
    by_ref: dict[str, ContainerInfo] = {}
    for info in containers:
        by_ref[info.id] = by_ref[info.name] = info
    repairs = 0
    claimed: set[str] = set()
    for ws in db.session.scalars(select(Workspace).where(Workspace.server_id == server.id)):
        info = by_ref.get(ws.container_id or "") or by_ref.get(ws.container_name)
        if info is not None:
            claimed.add(info.id)
        if in_flight(ws.lock_key) is not None:
            continue
        if ws.status == "error" and not ws.container_id and info is not None:
            backend.remove(info.id)
            _repair("half_workspace_removed", {"user": ws.username, "container": info.name}, server)
            repairs += 1
        elif ws.status in ("running", "stopped", "provisioning") and info is None:
            ws.status, ws.error = "error", "the container vanished; re-create the workspace"
            _repair("workspace_container_vanished", {"user": ws.username}, server, level="error")
            repairs += 1
        elif info is not None and ws.status in ("running", "stopped") and info.running != (
            ws.status == "running"
        ):
            ws.status = "running" if info.running else "stopped"
            ws.ports = {k: v for k, v in info.ports.items() if k in WORKSPACE_APPS} or ws.ports
            _repair("workspace_status_fixed", {"user": ws.username, "status": ws.status}, server)
            repairs += 1
    now = utcnow()
    for info in containers:
        if info.id in claimed:
            continue
        created = _created(info)
        if created is None or now - created < grace:
            ctx.log(f"orphan {info.name} is younger than the grace period; left for now")
            continue
        backend.remove(info.id)
        _repair("orphan_container_removed", {"container": info.name, "id": info.id}, server)
        repairs += 1
    db.session.commit()
    return repairs


@task_kind("reconcile", max_attempts=1, priority=PRIORITY_BACKGROUND)
def reconcile(ctx: TaskContext) -> dict[str, Any]:
    """One pass over every server, then the routes; unreachable servers are skipped and logged."""
    grace = timedelta(seconds=current_app.config["ORPHAN_GRACE_SECONDS"])
    repairs, skipped = 0, []
    for server in db.session.scalars(select(Server).order_by(Server.id)).all():
        try:
            repairs += _reconcile_server(ctx, server, grace)
        except AgentError as exc:
            db.session.rollback()
            skipped.append(server.name)
            ctx.log(f"{server.name}: skipped ({exc})", level="warning")
    try:
        changed = regenerate(only_if_changed=True)
    except NginxError as exc:
        raise TaskFailed(f"nginx refused the routes: {exc}") from exc
    if changed:
        audit.record("routes_regenerated", None, {}, level="warning", source="reconciler")
        db.session.commit()
    ctx.log(f"{repairs} repairs, routes {'regenerated' if changed else 'unchanged'}"
            + (f"; skipped servers: {readable(skipped)}" if skipped else ""))
    return {"repairs": repairs, "skipped": skipped, "routes_changed": changed}


def schedule_loop(app: Flask, stop: threading.Event) -> None:
    """Queue a reconcile pass at start-up and then every RECONCILE_INTERVAL_SECONDS."""
    from app.services.workspaces import reconcile_now

    while not stop.is_set():
        with app.app_context():
            try:
                reconcile_now("scheduler")
            except Exception:  # noqa: BLE001 - a boundary: the scheduler must outlive a bad round
                db.session.rollback()
                app.logger.exception("could not queue the reconciler")
        stop.wait(app.config["RECONCILE_INTERVAL_SECONDS"])
