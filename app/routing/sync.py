"""Project the workspaces table onto the edge: desired routes, regenerate, record failures."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from flask import current_app
from sqlalchemy import text

from app.extensions import db
from app.models.workspace import GATE_SECRET_PURPOSE
from app.routing.edge_server import write_main_config
from app.routing.nginx import EdgePaths, NginxError, WorkspaceRoutes, install, render_routes
from app.security.crypto import SecretDecryptError, decrypt_secret
from app.services import audit

# Plain SQL shaped like WorkspaceRoutes, the upstream left NULL (the stopped page) unless the
# workspace runs with both ports known: at 10,000 workspaces it reads in ~10 ms where ORM objects
# take ~10x more, on every route change.
_ROUTES_SQL = text(
    "SELECT w.username, CASE WHEN w.status = 'running' AND w.vscode_port IS NOT NULL "
    "AND w.jupyter_port IS NOT NULL THEN s.publish_host END, w.vscode_port, w.jupyter_port, "
    "w.gate_secret FROM workspaces w JOIN servers s ON s.id = w.server_id ORDER BY w.username"
)


@lru_cache(maxsize=65536)
def _gate_secret(stored: str, key: str) -> str:
    """The plain gate secret (cached: 10,000 decryptions on every route change would cost ~0.1 s)."""
    del key  # part of the cache key only: a new secrets key must not reuse old plain texts
    return decrypt_secret(stored, GATE_SECRET_PURPOSE)


def desired_routes() -> list[WorkspaceRoutes]:
    """Every workspace: to its published ports while running, else to the stopped page.

    A running workspace whose stored secret cannot be decrypted (the secrets key changed)
    gets the stopped page: its gate would refuse every request anyway.
    """
    key = current_app.config["SECRETS_KEY"]
    routes = []
    for username, host, vscode, jupyter, stored in db.session.execute(_ROUTES_SQL).all():
        secret = None
        if host is not None and stored is not None:
            try:
                secret = _gate_secret(stored, key)
            except SecretDecryptError:
                host = None
        routes.append(WorkspaceRoutes(username, host, vscode, jupyter, secret))
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
