"""Image requests: each validates, queues its task and audits in ONE commit.

Build, push, pull, import and delete of an image run as tasks (app/images/handlers.py) that do the
outside work through the server's agent; these functions are what the views call. A refused
request raises `ImageRequestError` (or `BuildRefused`, which carries the policy's report) and
leaves nothing queued. The area's settings (the build policy, Dockerfile templates, each
checked by the policy, workspace images) and uploads are saved here too, with their audit rows.
"""

from __future__ import annotations

import secrets
from typing import Any, Literal

from flask import current_app
from sqlalchemy import select

from app.extensions import db
from app.images.context import ContextError, check_context
from app.images.policy import PolicyReport, check_dockerfile
from app.images.uploads import STORED_NAME_RE, ReceivedUpload, context_dir, upload_dir
from app.models import BuildPolicy, BuildTemplate, Registry, Task, Upload, WorkspaceImage
from app.models.server import Server
from app.services import audit, task_queue


class ImageRequestError(ValueError):
    """An image request was refused; the message is meant for the person who asked."""


class BuildRefused(ImageRequestError):
    """The build policy refused a Dockerfile; `report` lists every broken rule."""

    def __init__(self, report: PolicyReport) -> None:
        super().__init__("; ".join(str(v) for v in report.errors))
        self.report = report


def workspaces_using(server_id: int, refs: list[str]) -> list[str]:
    """Usernames whose workspace on `server_id` runs one of the image references `refs`."""
    from app.models.workspace import Workspace

    rows = db.session.scalars(
        select(Workspace.username).where(Workspace.server_id == server_id, Workspace.image.in_(refs))
    )
    return sorted(set(rows))


def check_against_policy(dockerfile: str) -> PolicyReport:
    """The current build policy's verdict on `dockerfile`."""
    policy = BuildPolicy.current()
    return check_dockerfile(dockerfile, allowed_bases=policy.allowed_bases or [],
                            allowed_registries=policy.allowed_registries or [])


def _store_context(data: bytes) -> str:
    """Check a build context archive and keep it for the task; returns its stored name."""
    limit = current_app.config["BUILD_CONTEXT_MAX_BYTES"]
    try:
        if len(data) > limit:
            raise ContextError("the build context is larger than the limit")
        check_context(data, max_unpacked_bytes=limit * 4)
    except ContextError as exc:
        raise ImageRequestError(f"Build context refused: {exc}") from exc
    name = f"{secrets.token_hex(16)}.tar"
    (context_dir() / name).write_bytes(data)
    return name


def request_build(server: Server, *, repository: str, tag: str, dockerfile: str,
                  buildargs: dict[str, str], context: bytes | None, actor: str) -> tuple[Task, PolicyReport]:
    """Queue a `build` task; a refusal by the policy is audited (and committed) before raising."""
    ref = f"{repository}:{tag}"
    report = check_against_policy(dockerfile)
    if not report.ok:
        audit.record("build_refused", actor, {"server": server.name, "tag": ref,
                                              "rules": [v.rule for v in report.errors]},
                     level="warning", server_id=server.id)
        db.session.commit()
        raise BuildRefused(report)
    context_name = _store_context(context) if context else None
    task = task_queue.enqueue(
        "build", target=f"server:{server.id}", requested_by=actor,
        payload={"server_id": server.id, "tag": ref, "dockerfile": dockerfile, "buildargs": buildargs,
                 "context_file": context_name, "total_steps": report.total_steps,
                 "warnings": [str(w) for w in report.warnings]},
    )
    audit.record("build_requested", actor, {"server": server.name, "tag": ref}, server_id=server.id)
    db.session.commit()
    return task, report


def request_transfer(kind: Literal["push", "pull"], server: Server, registry: Registry, *, repository: str,
                     tag: str, actor: str) -> Task:
    """Queue a `push` or `pull` task of `repository:tag` with `registry` (the task reads the password)."""
    task = task_queue.enqueue(
        kind, target=f"server:{server.id}", requested_by=actor,
        payload={"server_id": server.id, "registry_id": registry.id, "repository": repository, "tag": tag},
    )
    audit.record(f"{kind}_requested", actor,
                 {"server": server.name, "image": f"{repository}:{tag}", "registry": registry.name},
                 server_id=server.id)
    db.session.commit()
    return task


def request_import(server: Server, upload: Upload, *, repository: str, tag: str, actor: str) -> Task:
    """Queue an `import` task that streams `upload` to the server's agent as `repository:tag`."""
    task = task_queue.enqueue(
        "import", target=f"server:{server.id}", requested_by=actor,
        payload={"server_id": server.id, "upload_id": upload.id, "repository": repository, "tag": tag},
    )
    audit.record("image_import_requested", actor,
                 {"server": server.name, "upload": upload.original_name, "tag": f"{repository}:{tag}"},
                 server_id=server.id)
    db.session.commit()
    return task


def request_delete(server: Server, ref: str, *, actor: str) -> Task:
    """Queue deleting image `ref` on `server`; refused while a workspace uses it or a delete runs."""
    ref = ref.strip()[:300]
    if not ref:
        raise ImageRequestError("Name the image to delete.")
    refs = [ref] if ":" in ref.rpartition("/")[2] else [ref, f"{ref}:latest"]
    users = workspaces_using(server.id, refs)
    if users:
        names = ", ".join(users)
        raise ImageRequestError(f"{ref} is in use by the workspace of {names}; it was not deleted.")
    lock = f"image:{server.id}:{ref}"[:128]
    try:
        task = task_queue.enqueue("delete_image", target=lock, requested_by=actor,
                                  payload={"server_id": server.id, "ref": ref}, lock_key=lock)
    except task_queue.TaskConflict as exc:
        raise ImageRequestError(f"Not deleted: {exc}.") from exc
    audit.record("image_delete_requested", actor, {"server": server.name, "ref": ref}, server_id=server.id)
    db.session.commit()
    return task


def save_template(template: BuildTemplate | None, *, name: str, description: str, dockerfile: str,
                  actor: str) -> BuildTemplate:
    """Create (template None) or update a Dockerfile template; the build policy must accept it."""
    name = name.strip()
    report = check_against_policy(dockerfile)
    if not report.ok:
        raise BuildRefused(report)
    clash = db.session.scalar(select(BuildTemplate.id).where(BuildTemplate.name == name))
    if clash is not None and (template is None or clash != template.id):
        raise ImageRequestError(f"A template named {name} exists already.")
    action = "build_template_edited" if template is not None else "build_template_added"
    if template is None:
        template = BuildTemplate(name=name)
        db.session.add(template)
    template.name, template.description, template.dockerfile = name, description.strip(), dockerfile
    template.updated_by = actor
    db.session.flush()
    details: dict[str, Any] = {"template": template.id, "name": name}
    audit.record(action, actor, details)
    db.session.commit()
    return template


def delete_template(template: BuildTemplate, *, actor: str) -> None:
    """Delete a Dockerfile template (builds queued from it keep their Dockerfile)."""
    audit.record("build_template_deleted", actor, {"template": template.id, "name": template.name})
    db.session.delete(template)
    db.session.commit()


def save_policy(*, allowed_bases: list[str], allowed_registries: list[str], actor: str) -> None:
    """Save the build policy's allow-lists (replacing the default on a fresh install)."""
    policy = BuildPolicy.current()
    policy.allowed_bases, policy.allowed_registries = allowed_bases, allowed_registries
    policy.updated_by = actor
    db.session.merge(policy)
    audit.record("build_policy_edited", actor, {"bases": allowed_bases, "registries": allowed_registries})
    db.session.commit()


def add_workspace_image(*, ref: str, description: str, cpu: float, memory_mb: int,
                        actor: str) -> WorkspaceImage:
    """Offer `ref` to users on approval, with its default resources."""
    ref = ref.strip()
    if db.session.scalar(select(WorkspaceImage.id).where(WorkspaceImage.ref == ref)):
        raise ImageRequestError("That image is already offered.")
    row = WorkspaceImage(ref=ref, description=description.strip(), default_cpu=cpu,
                         default_memory_mb=memory_mb)
    db.session.add(row)
    audit.record("workspace_image_added", actor, {"ref": ref, "cpu": cpu, "memory_mb": memory_mb})
    db.session.commit()
    return row


def remove_workspace_image(row: WorkspaceImage, *, actor: str) -> None:
    """Stop offering an image on approval (existing workspaces keep theirs)."""
    audit.record("workspace_image_removed", actor, {"ref": row.ref})
    db.session.delete(row)
    db.session.commit()


def record_upload(received: ReceivedUpload, *, actor: str) -> Upload:
    """Store the row of a tarball already written to the upload directory."""
    row = Upload(stored_name=received.stored_name, original_name=received.original_name, size=received.size,
                 sha256=received.sha256, compression=received.compression, uploaded_by=actor)
    db.session.add(row)
    audit.record("upload_stored", actor, {"name": row.original_name, "stored": row.stored_name,
                                          "size": row.size, "sha256": row.sha256})
    db.session.commit()
    return row


def refuse_upload(reason: str, *, actor: str) -> None:
    """Audit an upload that was refused (nothing was kept)."""
    audit.record("upload_refused", actor, {"reason": reason}, level="warning")
    db.session.commit()


def delete_upload(row: Upload, *, actor: str) -> None:
    """Delete an upload's file and row."""
    if STORED_NAME_RE.fullmatch(row.stored_name):
        (upload_dir() / row.stored_name).unlink(missing_ok=True)
    audit.record("upload_deleted", actor, {"name": row.original_name, "sha256": row.sha256})
    db.session.delete(row)
    db.session.commit()
