"""Project the workspaces table onto the edge: desired routes, regenerate, record failures."""

from __future__ import annotations

from pathlib import Path

from flask import current_app
from sqlalchemy import select
from sqlalchemy.orm import joinedload

from app.extensions import db
from app.models.workspace import WORKSPACE_APPS, Workspace
from app.routing.edge import write_main_config
from app.routing.nginx import EdgePaths, NginxError, Route, install, render_routes
from app.services import audit


def desired_routes() -> list[Route]:
    """Two routes per workspace: to its published ports while running, else the stopped page."""
    routes = []
    stmt = select(Workspace).options(joinedload(Workspace.server)).order_by(Workspace.username)
    for ws in db.session.scalars(stmt):
        for app in WORKSPACE_APPS:
            port = (ws.ports or {}).get(app)
            if ws.status == "running" and port:
                routes.append(Route(ws.username, app, ws.server.publish_host, int(port)))
            else:
                routes.append(Route(ws.username, app))
    return routes


def edge_paths() -> EdgePaths:
    """The edge's files for this app (the main configuration is written when missing)."""
    paths = EdgePaths(Path(current_app.config["EDGE_DIR"]).resolve())
    if not paths.test_conf.exists():
        write_main_config(current_app.config)
    return paths


def regenerate(actor: str | None = None, *, only_if_changed: bool = False) -> bool:
    """Render the routes from the database and install them; True when the file changed.

    On failure the last good file stays, an error audit row `nginx_reload_failed` (the
    alert) is committed on its own, and NginxError is raised with nginx's message.
    """
    text = render_routes(desired_routes(), current_app.config)
    paths = edge_paths()
    if only_if_changed and paths.routes.exists() and paths.routes.read_text() == text:
        return False
    try:
        install(text, paths, current_app.config["NGINX_BIN"])
    except NginxError as exc:
        db.session.rollback()
        # The caller's transaction will roll back when its task fails; the alert must survive it.
        audit.record("nginx_reload_failed", actor, {"error": str(exc)[:900]}, level="error", source="worker")
        db.session.commit()
        raise
    return True
