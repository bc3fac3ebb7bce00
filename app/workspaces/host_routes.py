"""Views nginx reaches on workspace hosts: the owner check, the token exchange, status pages.

These run on the workspace host (nginx forwards `/_slipway/*` here and sends every other
request through `auth_request` to `check`), where the management session cookie is never
present: they are authorised by the hand-off token or the workspace cookie instead.
"""

from __future__ import annotations

from flask import Blueprint, abort, current_app, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from app.extensions import db
from app.models import User
from app.routing.edge_server import cookie_seconds, edge_cookie_name, shared_keys
from app.routing.signing import SIGNATURE_HEADER, SignatureError, edge_cookie_value, verify
from app.routing.sync import table_text
from app.security.tokens import TokenError, cookie_name, cookie_value, read_cookie, redeem_handoff
from app.services import audit
from app.workspaces.access import decide, live_user, may_enter, owner_of, request_host

bp = Blueprint("workspace_edge", __name__, url_prefix="/workspaces")


def _plain(status: int, title: str, message: str, link: str | None = None, label: str = "") -> Response:
    response = Response(
        render_template("workspaces/edge.html", title=title, message=message, link=link, label=label),
        status=status,
        mimetype="text/html",
    )
    response.headers["Cache-Control"] = "no-store"
    return response


def _public(endpoint: str, **values: str) -> str:
    return current_app.config["PUBLIC_URL"].rstrip("/") + url_for(endpoint, **values)


@bp.route("/_auth")
def check() -> Response:
    """nginx auth_request: 200 for the owner's valid cookie on this host, else 401/403/404."""
    decision = decide()
    if decision.status == 200 and decision.user is not None and decision.user.username != decision.owner:
        # An admin let in by SLIPWAY_WORKSPACE_ADMIN_ACCESS: audited (nginx caches the answer for
        # a few seconds, so this is one row per few seconds of use, not one per asset).
        uri = request.headers.get("X-Original-URI", "")[:200]
        audit.record("workspace_admin_requested", decision.user.username,
                     {"owner": decision.owner, "app": decision.app, "uri": uri}, level="warning")
        db.session.commit()
    response = Response(status=decision.status)
    if decision.status == 200 and decision.user is not None:
        # nginx copies it into its access log: the connection log records who used the workspace.
        response.headers["X-Slipway-User"] = decision.user.username
    if decision.status == 200 and decision.user is not None and decision.user.username == decision.owner:
        # Read by the edge only (never passed to the browser as is): a fresh signed edge cookie, so
        # the next requests pass in the edge without calling here.
        fresh = _edge_cookie_header(decision.user.username)
        if fresh:
            response.headers["X-Slipway-Edge-Cookie"] = fresh
    return response


def _edge_cookie_header(username: str) -> str | None:
    """A Set-Cookie value for the signed edge cookie of this host, user and login session."""
    config = current_app.config
    keys = shared_keys(config)
    if not keys:
        return None
    lifetime = cookie_seconds(config)
    value = edge_cookie_value(keys, request_host(), username, _session_id(), lifetime)
    secure = "; Secure" if config["HTTPS"] else ""
    return f"{edge_cookie_name(config)}={value}; Max-Age={lifetime}; Path=/; HttpOnly; SameSite=Lax{secure}"


def _session_id() -> int:
    """The login session behind this request's valid workspace cookie (decide() found one)."""
    for value in request.cookies.getlist(cookie_name()):
        grant = read_cookie(value, request_host())
        if grant is not None and live_user(grant) is not None:
            return grant.session_id
    return 0


@bp.route("/_edge/routes")
def edge_routes() -> Response:
    """The full route table for an edge that starts or re-checks: signed requests only (the key file)."""
    try:
        verify(shared_keys(current_app.config), request.headers.get(SIGNATURE_HEADER), "GET",
               "/workspaces/_edge/routes")
    except SignatureError as exc:
        current_app.logger.warning("edge table request refused from %s: %s", request.remote_addr, exc)
        return Response(f"refused: {exc}\n", status=401, mimetype="text/plain")
    response = Response(table_text(), mimetype="text/plain")
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.route("/edge/exchange")
def exchange() -> Response:
    """Redeem a one-time hand-off token for a cookie scoped to this host, then drop the token."""
    host = request_host()
    parsed = owner_of(host)
    if parsed is None:
        abort(404)
    owner, app = parsed
    try:
        grant = redeem_handoff(request.args.get("token", ""), host)
    except TokenError as exc:
        db.session.rollback()
        return _plain(400, "Link not valid", str(exc), _public("workspaces.open_app", app=app), "Open again")
    user: User | None = live_user(grant)
    if user is None or not may_enter(user, owner):
        db.session.rollback()
        return _plain(403, "Forbidden", "This workspace belongs to someone else.")
    if user.username != owner:
        audit.record("workspace_admin_accessed", user.username, {"owner": owner, "app": app, "host": host},
                     level="warning")
    db.session.commit()
    response = redirect("/", code=302)
    response.set_cookie(
        cookie_name(),
        cookie_value(grant),
        max_age=current_app.config["SESSION_LIFETIME_HOURS"] * 3600,
        path="/",
        secure=bool(current_app.config["HTTPS"]),
        httponly=True,
        samesite="Lax",
    )
    lifetime = cookie_seconds(current_app.config)
    keys = shared_keys(current_app.config)
    if keys and user.username == owner:
        response.set_cookie(
            edge_cookie_name(current_app.config),
            edge_cookie_value(keys, host, user.username, grant.session_id, lifetime),
            max_age=lifetime,
            path="/",
            secure=bool(current_app.config["HTTPS"]),
            httponly=True,
            samesite="Lax",
        )
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.route("/edge/login")
def login() -> Response:
    """No valid cookie on this host: go through the web app's login and open flow."""
    parsed = owner_of(request_host())
    if parsed is None:
        abort(404)
    return redirect(_public("workspaces.open_app", app=parsed[1], user=parsed[0]), code=302)


@bp.route("/edge/forbidden")
def forbidden() -> Response:
    """The page another user sees on a workspace host."""
    return _plain(403, "Forbidden", "This workspace belongs to someone else.")


@bp.route("/edge/stopped")
def stopped() -> Response:
    """A workspace that is not running: say so and offer to start it; never start it here."""
    decision = decide()
    if decision.status == 401:
        target = _public("workspaces.open_app", app=decision.app or "vscode", user=decision.owner or "")
        return redirect(target, code=302)
    if decision.status != 200:
        return forbidden() if decision.status == 403 else _plain(404, "Not found", "There is nothing here.")
    return _plain(
        503,
        "Workspace not running",
        "Your workspace is not running. Requests here never start it; start it from your workspace page.",
        _public("workspaces.home", start="1"),
        "Go to my workspace to start it",
    )
