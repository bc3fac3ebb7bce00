"""Who may reach a workspace host: the owner's valid cookie for that host, nobody else.

Admins pass only when SLIPWAY_WORKSPACE_ADMIN_ACCESS is true (and each hand-off to
them is audited). The cookie points at a login session; a revoked, logged-out or
expired session ends workspace access as well.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app, request

from app.extensions import db
from app.models import User, UserSession
from app.routing.nginx import RouteError, parse_workspace_host
from app.security.tokens import Grant, cookie_name, read_cookie
from app.timeutil import utcnow


@dataclass(frozen=True)
class Decision:
    """The answer for one request: an HTTP status (200/401/403/404) and who is asking."""

    status: int
    owner: str | None = None
    app: str | None = None
    user: User | None = None


def request_host() -> str:
    """The host this request was made to, lowercase and without a port."""
    host = (request.host or "").lower()
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def owner_of(host: str) -> tuple[str, str] | None:
    """(owner username, app) for a workspace host under WORKSPACE_DOMAIN, else None."""
    try:
        return parse_workspace_host(host, current_app.config["WORKSPACE_DOMAIN"])
    except RouteError:
        return None


def live_user(grant: Grant) -> User | None:
    """The approved user behind `grant` while its login session is active and unexpired."""
    row = db.session.get(UserSession, grant.session_id)
    # No idle limit here: working inside a workspace does not touch the management session.
    if row is None or not row.is_live(utcnow()) or row.user_id != grant.user_id:
        return None
    user = row.user
    if user.username != grant.username or not user.is_approved:
        return None
    return user


def may_enter(user: User, owner: str) -> bool:
    """True for the owner, and for admins only when the config flag allows it."""
    if user.username == owner:
        return True
    return user.role == "admin" and bool(current_app.config["WORKSPACE_ADMIN_ACCESS"])


MAX_COOKIE_CANDIDATES = 8  # bounds the work a request stuffed with copies can cause


def decide() -> Decision:
    """Decide whether this request (to a workspace host) may pass, from its workspace cookies.

    Without `__Host-` cookies (development over plain HTTP) a sibling workspace host can set a
    cookie of the same name for the parent domain, so the browser sends two: every candidate is
    checked, and the request passes when any of them is valid for this host and its owner.
    """
    host = request_host()
    parsed = owner_of(host)
    if parsed is None:
        return Decision(404)
    owner, app = parsed
    refused: User | None = None
    for value in request.cookies.getlist(cookie_name())[:MAX_COOKIE_CANDIDATES]:
        grant = read_cookie(value, host)
        user = live_user(grant) if grant else None
        if user is None:
            continue
        if may_enter(user, owner):
            return Decision(200, owner, app, user)
        refused = refused or user
    if refused is not None:
        return Decision(403, owner, app, refused)
    return Decision(401, owner, app)
