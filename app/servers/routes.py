"""Servers: list with health bars, detail with charts and containers, add/edit/test/delete."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import delete as sql_delete
from sqlalchemy import select
from werkzeug.wrappers import Response

from app.backends.swarm_client import TLS_PURPOSE, is_socket_url
from app.extensions import db
from app.forms_common import ConfirmForm
from app.logs.query import Filters, recent_entries, unresolved_alerts_of_server
from app.models import SERVER_STATUSES, Server, ServerMetric, Task
from app.permissions import permission_required
from app.security.crypto import encrypt_secret
from app.servers.charts import build_chart
from app.servers.forms import ServerForm
from app.services import audit, task_queue
from app.timeutil import utcnow

bp = Blueprint("servers", __name__, url_prefix="/servers")


def _load_or_404(server_id: int) -> Server:
    server = db.session.get(Server, server_id)
    if server is None:
        abort(404)
    return server


def workspaces_on(server: Server) -> list[str]:
    """Names of the workspaces placed on `server` (empty until the workspaces table exists)."""
    table = db.metadata.tables.get("workspaces")
    if table is None or "server_id" not in table.c:
        return []
    label = next((table.c[name] for name in ("username", "container_name", "name") if name in table.c),
                 table.c[next(iter(table.primary_key.columns)).name])
    rows = db.session.execute(select(label).where(table.c.server_id == server.id).limit(20)).scalars()
    return [str(value) for value in rows]


def queue_refresh(server: Server) -> Task:
    """Queue a `refresh_server` task for `server` (TaskConflict while one is in flight)."""
    return task_queue.enqueue("refresh_server", target=f"server:{server.id}",
                              requested_by=current_user.username,
                              payload={"server_id": server.id}, lock_key=f"server:{server.id}:refresh")


@bp.route("/")
@permission_required("view_servers")
def index() -> str:
    """Every server (or those with `?status=`) with status, load bars, containers and last contact."""
    # Plain rows, not ORM objects: the page needs a dozen columns of every server, not the stats JSON.
    stmt = select(Server.id, Server.name, Server.status, Server.cpu_percent, Server.memory_percent,
                  Server.disk_percent, Server.containers_running, Server.containers_total,
                  Server.last_seen_at).order_by(Server.name)
    status = request.args.get("status", "")
    if status in SERVER_STATUSES:
        stmt = stmt.where(Server.status == status)
    servers = db.session.execute(stmt).all()
    counts: dict[str, int] = {}
    for server in servers:
        counts[server.status] = counts.get(server.status, 0) + 1
    fresh_after = utcnow() - timedelta(seconds=current_app.config["SERVER_STATS_TTL_SECONDS"])
    return render_template("servers/index.html", servers=servers, counts=counts, fresh_after=fresh_after,
                           status=status if status in SERVER_STATUSES else "")


@bp.route("/<int:server_id>")
@permission_required("view_servers")
def detail(server_id: int) -> str:
    """One server: figures, charts for the last hour and day, and its managed containers."""
    server = _load_or_404(server_id)
    now = utcnow()
    charts = [build_chart(server.id, "Last hour", timedelta(hours=1), now),
              build_chart(server.id, "Last day", timedelta(days=1), now)]
    containers: list[dict[str, Any]] = list((server.stats or {}).get("managed_containers") or [])
    return render_template("servers/detail.html", server=server, charts=charts, containers=containers,
                           now=now, ttl=current_app.config["SERVER_STATS_TTL_SECONDS"],
                           confirm=ConfirmForm(), workspaces=workspaces_on(server),
                           events=recent_entries(Filters(server=server.id), current_user),
                           alerts=unresolved_alerts_of_server(server.id, current_user))


@bp.route("/new", methods=["GET", "POST"])
@permission_required("manage_servers")
def add() -> str | Response:
    """Register a server by its agent URL and token (stored encrypted)."""
    form = ServerForm()
    if form.validate_on_submit():
        swarm = form.is_swarm()
        server = Server(name=form.name.data, agent_url=form.agent_url.data, backend=form.backend.data,
                        token_encrypted="" if swarm else encrypt_secret(form.token.data, "server.token"),
                        tls_encrypted=encrypt_secret(form.tls_bundle.data, TLS_PURPOSE)
                        if swarm and form.tls_bundle.data else None,
                        swarm_placement=form.swarm_placement.data or "",
                        publish_host=form.resolved_publish_host(), status="unknown")
        db.session.add(server)
        db.session.flush()
        audit.record("server_added", current_user.username,
                     {"server": server.name, "agent_url": server.agent_url, "backend": server.backend},
                     server_id=server.id)
        task = queue_refresh(server)
        db.session.commit()
        flash(f"Server {server.name} added; testing the connection now.", "success")
        return redirect(url_for("tasks.detail", task_id=task.id))
    return render_template("servers/form.html", form=form, server=None)


@bp.route("/<int:server_id>/edit", methods=["GET", "POST"])
@permission_required("manage_servers")
def edit(server_id: int) -> str | Response:
    """Change a server's name, agent URL, publish host or token (blank keeps the token)."""
    server = _load_or_404(server_id)
    form = ServerForm(obj=server, editing=server)
    if form.validate_on_submit():
        changed = [name for name in ("name", "agent_url")
                   if getattr(server, name) != getattr(form, name).data]
        server.name, server.agent_url = form.name.data, form.agent_url.data
        if server.publish_host != form.resolved_publish_host():
            server.publish_host = form.resolved_publish_host()
            changed.append("publish_host")
        if form.token.data:
            server.token_encrypted = encrypt_secret(form.token.data, "server.token")
            changed.append("token")
        if form.tls_bundle.data:
            server.tls_encrypted = encrypt_secret(form.tls_bundle.data, TLS_PURPOSE)
            changed.append("token")
        elif server.backend == "swarm" and is_socket_url(server.agent_url):
            server.tls_encrypted = None
        if server.swarm_placement != (form.swarm_placement.data or ""):
            server.swarm_placement = form.swarm_placement.data or ""
            changed.append("swarm_placement")
        audit.record("server_updated", current_user.username, {"server": server.name, "changed": changed},
                     server_id=server.id)
        if {"agent_url", "token"} & set(changed):
            # another agent or secret: what we knew about the old one no longer holds
            server.status, server.consecutive_failures, server.consecutive_successes = "unknown", 0, 0
            try:
                queue_refresh(server)
            except task_queue.TaskConflict:
                pass  # a connection test is already queued; it will use the new settings
        db.session.commit()
        flash(f"Server {server.name} saved.", "success")
        return redirect(url_for("servers.detail", server_id=server.id))
    form.token.data = form.tls_bundle.data = ""
    return render_template("servers/form.html", form=form, server=server)


@bp.route("/<int:server_id>/test", methods=["POST"])
@permission_required("manage_servers")
def test_connection(server_id: int) -> Response:
    """Queue a `refresh_server` task and show its progress."""
    server = _load_or_404(server_id)
    if not ConfirmForm().validate_on_submit():
        abort(400)
    try:
        task = queue_refresh(server)
    except task_queue.TaskConflict as exc:
        flash(f"A connection test is already running: {exc}", "warning")
        return redirect(url_for("servers.detail", server_id=server.id))
    audit.record("server_refresh_requested", current_user.username, {"server": server.name},
                 server_id=server.id)
    db.session.commit()
    return redirect(url_for("tasks.detail", task_id=task.id))


@bp.route("/<int:server_id>/delete", methods=["POST"])
@permission_required("delete_server")
def delete(server_id: int) -> Response:
    """Remove a server, refused while workspaces live there."""
    server = _load_or_404(server_id)
    if not ConfirmForm().validate_on_submit():
        abort(400)
    names = workspaces_on(server)
    if names:
        flash(f"{server.name} still hosts workspaces ({', '.join(names)}); move or delete them first.",
              "danger")
        return redirect(url_for("servers.detail", server_id=server.id))
    audit.record("server_deleted", current_user.username,
                 {"server": server.name, "agent_url": server.agent_url}, server_id=server.id)
    # explicit, because SQLite only honours ON DELETE CASCADE with its foreign_keys pragma on
    db.session.execute(sql_delete(ServerMetric).where(ServerMetric.server_id == server.id))
    db.session.delete(server)
    db.session.commit()
    flash(f"Server {server.name} deleted.", "success")
    return redirect(url_for("servers.index"))
