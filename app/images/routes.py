"""Images area: per-server image lists, an image's detail page and delete.

The other topics register their views on the same blueprint from their own modules
(builds, templates, registries, uploads, settings), which the app factory imports.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import select
from werkzeug.wrappers import Response

from app.agent_client import AgentClient, AgentError, AgentNotFound
from app.extensions import db
from app.forms_common import ConfirmForm
from app.permissions import permission_required
from app.services.images import ImageRequestError, request_delete, workspaces_using

bp = Blueprint("images", __name__, url_prefix="/images")


def servers() -> list[Any]:
    """Every registered server, by name."""
    from app.models.server import Server

    return list(db.session.scalars(select(Server).order_by(Server.name)))


def load_server_or_404(server_id: int) -> Any:
    """The server with `server_id`, or 404."""
    from app.models.server import Server

    return db.get_or_404(Server, server_id)


def _refs(image: dict[str, Any]) -> list[str]:
    return list(image.get("tags") or []) + [image.get("id", "")]


@bp.route("/")
@permission_required("view_images")
def index() -> str:
    """Choose a server and list its images (asked of its agent on demand)."""
    all_servers = servers()
    server_id = request.args.get("server", type=int)
    server = next((s for s in all_servers if s.id == server_id), None)
    if server is None and all_servers and server_id is None:
        server = all_servers[0]
    images: list[dict[str, Any]] = []
    error = None
    if server is not None and server.status == "offline":
        error = f"{server.name} is offline; its images cannot be listed now."
    elif server is not None:
        try:
            images = AgentClient.for_server(server, retries=0).list_images()
        except AgentError as exc:
            error = f"The agent of {server.name} did not answer: {exc.message}"
        for image in images:
            image["in_use"] = len(workspaces_using(server.id, _refs(image)))
    return render_template("images/index.html", servers=all_servers, server=server, images=images,
                           error=error, confirm=ConfirmForm())


@bp.route("/<int:server_id>/detail")
@permission_required("view_images")
def detail(server_id: int) -> str:
    """One image of a server: tags, size, labels, history, and who uses it."""
    server = load_server_or_404(server_id)
    ref = request.args.get("ref", "")[:300]
    if not ref:
        abort(404)
    try:
        image = AgentClient.for_server(server, retries=0).inspect_image(ref)
    except AgentNotFound:
        abort(404)
    except AgentError as exc:
        flash(f"The agent of {server.name} did not answer: {exc.message}", "danger")
        return redirect(url_for("images.index", server=server.id))
    users = workspaces_using(server.id, _refs(image) + [ref])
    return render_template("images/detail.html", server=server, ref=ref, image=image, users=users,
                           confirm=ConfirmForm())


@bp.route("/<int:server_id>/delete", methods=["POST"])
@permission_required("delete_image")
def delete(server_id: int) -> Response:
    """Queue deleting an image, refused while a workspace uses it."""
    server = load_server_or_404(server_id)
    if not ConfirmForm().validate_on_submit():
        abort(400)
    try:
        task = request_delete(server, request.form.get("ref") or "", actor=current_user.username)
    except ImageRequestError as exc:
        flash(str(exc), "danger")
        return redirect(url_for("images.index", server=server.id))
    return redirect(url_for("tasks.detail", task_id=task.id))
