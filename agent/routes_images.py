"""Images: list, inspect, tag, delete, and import of a streamed rootfs tarball."""

from __future__ import annotations

import datetime as dt
import json
import tempfile

from flask import Blueprint, Response, current_app, request

from agent import validation as v
from agent.auth import verify_streamed
from agent.docker_ops import MANAGED_LABEL, DockerHolder, translate
from agent.errors import AgentError, answer, bad_input

bp = Blueprint("images", __name__, url_prefix="/api/images")


def _docker() -> DockerHolder:
    return current_app.extensions["agent_docker"]


def _iso(created: int | str) -> str:
    if isinstance(created, int):
        return dt.datetime.fromtimestamp(created, dt.UTC).isoformat()
    return created


def _tags(tags: list[str] | None) -> list[str]:
    return [t for t in tags or [] if t != "<none>:<none>"]


@bp.get("")
def list_images() -> tuple[Response, int]:
    """Every image on this host with its tags, size, creation time and labels."""
    with translate():
        rows = _docker().api.images()
    items = [
        {
            "id": row["Id"], "tags": _tags(row.get("RepoTags")), "size": row.get("Size", 0),
            "created": _iso(row.get("Created", 0)), "labels": row.get("Labels") or {},
        }
        for row in rows
    ]
    return answer(items, f"{len(items)} images")


@bp.get("/inspect")
def inspect() -> tuple[Response, int]:
    """One image's details, layer history and configured user."""
    ref = v.image_ref(request.args.get("ref"), "ref")
    with translate("image not found"):
        attrs = _docker().api.inspect_image(ref)
        history = _docker().api.history(ref)
    config = attrs.get("Config") or {}
    data = {
        "id": attrs["Id"], "tags": _tags(attrs.get("RepoTags")), "size": attrs.get("Size", 0),
        "created": attrs.get("Created", ""), "labels": config.get("Labels") or {},
        "history": [{"created_by": h.get("CreatedBy", ""), "size": h.get("Size", 0)} for h in history],
        "user": config.get("User") or "",
    }
    return answer(data, "ok")


def _delete(ref: str, force: bool) -> tuple[Response, int]:
    with translate("image not found"):
        _docker().api.remove_image(ref, force=force)
    return answer({"ref": ref}, "image deleted")


@bp.post("/delete")
def delete_posted() -> tuple[Response, int]:
    """Delete an image named in the JSON body; 404 missing, 409 in use."""
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise bad_input("body", "must be a JSON object")
    force = data.get("force", False)
    if not isinstance(force, bool):
        raise bad_input("force", "must be true or false")
    return _delete(v.image_ref(data.get("ref"), "ref"), force)


def _registry_named(repository: str) -> bool:
    """True when `repository` starts with a registry host (host.name, host:port or localhost)."""
    first, sep, _ = repository.partition("/")
    return bool(sep) and ("." in first or ":" in first or first == "localhost")


def _managed_images() -> set[str]:
    """The image names managed containers were created from (the label fences what a tag may move)."""
    with translate():
        rows = _docker().api.containers(all=True, filters={"label": [f"{MANAGED_LABEL}=true"]})
    return {str(row.get("Image", "")) for row in rows}


@bp.post("/tag")
def tag_image() -> tuple[Response, int]:
    """Give the local image `source` the name `repository:tag` under a registry host, for a push.

    404 when `source` is missing; 400 for a name without a registry host; 409 when the name is
    the image a managed container was created from (moving it would change that workspace on
    its next re-create).
    """
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise bad_input("body", "must be a JSON object")
    source = v.image_ref(data.get("source"), "source")
    repository = v.require_str(data, "repository", v.REPOSITORY_RE, "a repository like 127.0.0.1:5000/name")
    tag = v.require_str(data, "tag", v.TAG_RE, "a tag (letters, digits, . _ -)")
    if len(repository) > 200 or not _registry_named(repository):
        raise bad_input("repository", "must start with a registry host, like 127.0.0.1:5000/name")
    target = f"{repository}:{tag}"
    names = {target, repository} if tag == "latest" else {target}
    if names & _managed_images():
        raise AgentError(409, f"conflict: {target} is the image of a managed container; it was not moved")
    with translate("image not found"):
        image_id = _docker().api.inspect_image(source)["Id"]
        current_app.extensions["agent_known_images"].remember(target, image_id)
        _docker().api.tag(source, repository, tag=tag, force=True)
    return answer({"source": source, "ref": target, "id": image_id}, f"tagged {source} as {target}")


@bp.delete("/<path:ref>")
def delete(ref: str) -> tuple[Response, int]:
    """Delete an image named in the URL (`?force=true` to force)."""
    return _delete(v.image_ref(ref, "ref"), request.args.get("force") == "true")


@bp.post("/import")
def import_image() -> tuple[Response, int]:
    """Import a rootfs tarball streamed as the raw body (signature checked once it has been read)."""
    repository = v.require_str(request.args, "repository", v.REPOSITORY_RE, "a lowercase repository name")
    tag = v.require_str(request.args, "tag", v.TAG_RE, "a tag (letters, digits, . _ -)")
    limit = current_app.config["MAX_IMPORT_MB"] * 1024 * 1024
    request.max_content_length = limit
    with tempfile.NamedTemporaryFile(prefix="slipway-import-", suffix=".tar") as sink:
        size = verify_streamed(request.stream, sink, limit)
        if size == 0:
            raise bad_input("body", "the rootfs tarball is empty")
        sink.flush()
        current_app.extensions["agent_known_images"].remember(f"{repository}:{tag}")
        with translate():
            output = _docker().api.import_image_from_file(sink.name, repository=repository, tag=tag)
    image_id = ""
    for line in str(output).splitlines():
        try:
            status = json.loads(line)
        except ValueError:
            continue
        if status.get("error"):
            raise AgentError(400, f"body: Docker could not import it: {str(status['error'])[:300]}")
        image_id = status.get("status", image_id)
    if not image_id.startswith("sha256:"):
        raise AgentError(500, "Docker did not report the imported image")
    return answer({"id": image_id, "tag": f"{repository}:{tag}"}, "image imported")
