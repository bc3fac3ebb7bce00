"""Project the workspaces table onto every edge: desired routes, push them, record refusals."""

from __future__ import annotations

from collections.abc import Collection
from functools import lru_cache

from flask import current_app
from sqlalchemy import bindparam, text

from app.extensions import db
from app.models.workspace import GATE_SECRET_PURPOSE
from app.routing import nginx
from app.routing.edge_server import key_file
from app.routing.nginx import NginxError, WorkspaceRoutes
from app.routing.push import push
from app.routing.signing import ensure_key_file
from app.security.crypto import SecretDecryptError, decrypt_secret
from app.services import audit

# Plain SQL shaped like WorkspaceRoutes, the upstream left NULL (the stopped page) unless the
# workspace runs with both ports known: at 10,000 workspaces it reads in ~10 ms where ORM objects
# take ~10x more, on every full table.
_SELECT = (
    "SELECT w.username, CASE WHEN w.status = 'running' AND w.vscode_port IS NOT NULL "
    "AND w.jupyter_port IS NOT NULL THEN s.publish_host END, w.vscode_port, w.jupyter_port, "
    "w.gate_secret FROM workspaces w JOIN servers s ON s.id = w.server_id"
)
_ROUTES_SQL = text(_SELECT + " ORDER BY w.username")
_SOME_ROUTES_SQL = text(_SELECT + " WHERE w.username IN :names").bindparams(
    bindparam("names", expanding=True))


@lru_cache(maxsize=65536)
def _gate_secret(stored: str, key: str) -> str:
    """The plain gate secret (cached: 10,000 decryptions on every full table would cost ~0.1 s)."""
    del key  # part of the cache key only: a new secrets key must not reuse old plain texts
    return decrypt_secret(stored, GATE_SECRET_PURPOSE)


def desired_routes(usernames: Collection[str] | None = None) -> list[WorkspaceRoutes]:
    """Every workspace: to its published ports while running, else to the stopped page.

    A running workspace whose stored secret cannot be decrypted (the secrets key changed)
    gets the stopped page: its gate would refuse every request anyway.
    """
    key = current_app.config["SECRETS_KEY"]
    routes = []
    query = _ROUTES_SQL if usernames is None else _SOME_ROUTES_SQL.bindparams(names=sorted(usernames))
    for username, host, vscode, jupyter, stored in db.session.execute(query).all():
        secret = None
        if host is not None and stored is not None:
            try:
                secret = _gate_secret(stored, key)
            except SecretDecryptError:
                host = None
        routes.append(WorkspaceRoutes(username, host, vscode, jupyter, secret))
    return routes


def admin_urls() -> list[str]:
    """Every edge's admin URL (SLIPWAY_EDGE_ADMIN_URLS, default this host's edge)."""
    config = current_app.config
    listed = str(config.get("EDGE_ADMIN_URLS") or "").split(",")
    urls = [url.strip().rstrip("/") for url in listed if url.strip()]
    return urls or [f"http://127.0.0.1:{config['EDGE_ADMIN_PORT']}"]


def table_text() -> str:
    """The full route table as every edge loads it (RouteError on a value that fails the whitelist)."""
    return nginx.table_text(desired_routes())


def regenerate(actor: str | None = None, *, only_if_changed: bool = False,
               usernames: Collection[str] | None = None) -> bool:
    """Push the routes from the database to every edge; True when an edge's table changed.

    With `usernames`, only those workspaces' lines are pushed (one route change: a few ms at the
    edge); otherwise the full table replaces each edge's. An edge that is down is not an error:
    it loads the full table when it starts and re-checks it every few seconds. An edge that
    refuses the push commits an error audit row `nginx_reload_failed` (the alert) on its own and
    raises NginxError. `only_if_changed` is kept for callers: a push is idempotent either way.
    """
    del only_if_changed
    if usernames is None:
        lines = ["replace", *nginx.route_lines(desired_routes())]
    else:
        wanted = set(usernames)
        present = desired_routes(wanted) if wanted else []
        gone = wanted - {route.username for route in present}
        lines = [*nginx.route_lines(present), *(f"del {name}" for name in sorted(gone))]
    path = key_file(current_app.config)
    ensure_key_file(path)
    result = push(lines, admin_urls(), path)
    if result.refused:
        db.session.rollback()
        message = "; ".join(result.refused)
        # The caller's transaction will roll back when its task fails; the alert must survive it.
        audit.record("nginx_reload_failed", actor, {"error": message[:900]}, level="error", source="worker")
        db.session.commit()
        raise NginxError(message)
    return result.changed > 0


def revoke_sessions(username: str, session_ids: Collection[int]) -> None:
    """Tell every edge these login sessions ended: their edge cookies are refused at once.

    Best effort by design: an edge that misses it still refuses the cookie when it expires
    (SLIPWAY_EDGE_COOKIE_MINUTES), and the web app's own check already refuses the session.
    """
    lines = [f"revoke {username} {int(sid)}" for sid in session_ids]
    if not lines:
        return
    path = key_file(current_app.config)
    ensure_key_file(path)
    result = push(lines, admin_urls(), path)
    if result.refused:
        current_app.logger.warning("edge refused a revocation: %s", "; ".join(result.refused))
