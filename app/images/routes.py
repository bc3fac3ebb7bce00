"""Images area: per-server image lists, an image's detail page and delete.

The other topics register their views on the same blueprint from their own modules
(builds, registries, uploads, settings), imported at the bottom.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import select
from werkzeug.wrappers import Response

from app.extensions import db
from app.forms_common import ConfirmForm
from app.permissions import permission_required
from app.services import audit, task_queue

bp = Blueprint("images", __name__, url_prefix="/images")


def servers() -> list[Any]:
    """Every registered server, by name."""
    from app.models.server import Server

    return list(db.session.scalars(select(Server).order_by(Server.name)))


def load_server_or_404(server_id: int) -> Any:
    """The server with `server_id`, or 404."""
    from app.models.server import Server

    return db.get_or_404(Server, server_id)


def agent_for(server: Any, *, interactive: bool = False, **timeouts: float) -> Any:
    """An agent client for `server`: no retries while a page waits, longer timeouts for streams."""
    from app.agent_client.client import AgentClient

    if not timeouts:
        return AgentClient.for_server(server, retries=0 if interactive else None)
    from app.security.crypto import decrypt_secret

    return AgentClient(server.agent_url, decrypt_secret(server.token_encrypted, "server.token"), **timeouts)


def workspaces_using(server_id: int, refs: list[str]) -> list[str]:
    """Usernames whose workspace on `server_id` runs one of the image references `refs`."""
    from app.models.workspace import Workspace

    rows = db.session.scalars(
        select(Workspace.username).where(Workspace.server_id == server_id, Workspace.image.in_(refs))
    )
    return sorted(set(rows))


def _refs(image: dict[str, Any]) -> list[str]:
    return list(image.get("tags") or []) + [image.get("id", "")]


@bp.route("/")
@permission_required("view_images")
def index() -> str:
    """Choose a server and list its images (asked of its agent on demand)."""
    from app.agent_client.client import AgentError

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
            images = agent_for(server, interactive=True).list_images()
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
    from app.agent_client.client import AgentError, AgentNotFound

    server = load_server_or_404(server_id)
    ref = request.args.get("ref", "")[:300]
    if not ref:
        abort(404)
    try:
        image = agent_for(server, interactive=True).inspect_image(ref)
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
    ref = (request.form.get("ref") or "")[:300]
    if not ref:
        flash("Name the image to delete.", "danger")
        return redirect(url_for("images.index", server=server.id))
    refs = [ref] if ":" in ref.rpartition("/")[2] else [ref, f"{ref}:latest"]
    users = workspaces_using(server.id, refs)
    if users:
        flash(f"{ref} is in use by the workspace of {', '.join(users)}; it was not deleted.", "danger")
        return redirect(url_for("images.index", server=server.id))
    try:
        task = task_queue.enqueue("delete_image", target=f"image:{server.id}:{ref}"[:128],
                             requested_by=current_user.username,
                             payload={"server_id": server.id, "ref": ref},
                             lock_key=f"image:{server.id}:{ref}"[:128])
    except task_queue.TaskConflict as exc:
        flash(f"Not deleted: {exc}.", "warning")
        return redirect(url_for("images.index", server=server.id))
    audit.record("delete_image_requested", current_user.username, {"server": server.name, "ref": ref},
                 server_id=server.id)
    db.session.commit()
    return redirect(url_for("tasks.detail", task_id=task.id))
