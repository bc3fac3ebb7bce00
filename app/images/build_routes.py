"""Build and push forms: each checks its input, queues a task and opens the task's live page."""

from __future__ import annotations

import secrets

from flask import current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import select
from werkzeug.wrappers import Response

from app.extensions import csrf, db
from app.images.context import ContextError, check_context
from app.images.forms import BuildForm, PushForm, parse_buildargs
from app.images.policy import check_dockerfile
from app.images.routes import bp, load_server_or_404, servers
from app.images.uploads import context_dir
from app.models import BuildPolicy, Registry
from app.permissions import permission_required
from app.services import audit, task_queue

FORM_OVERHEAD_BYTES = 1024 * 1024


def _server_choices(form: BuildForm | PushForm) -> None:
    form.server_id.choices = [(s.id, s.name) for s in servers()]


@bp.route("/build", methods=["GET", "POST"])
@csrf.exempt  # the form checks its own token, after the larger per-view body limit is set
@permission_required("build_images")
def build() -> Response | tuple[str, int] | str:
    """The build form; a valid submission that passes the policy queues a `build` task."""
    limit = current_app.config["BUILD_CONTEXT_MAX_BYTES"] + current_app.config["DOCKERFILE_MAX_BYTES"]
    request.max_content_length = limit + FORM_OVERHEAD_BYTES
    form = BuildForm()
    _server_choices(form)
    policy = BuildPolicy.current()
    if not form.validate_on_submit():
        status = 400 if request.method == "POST" else 200
        return render_template("images/build.html", form=form, policy=policy, report=None), status
    report = check_dockerfile(form.dockerfile.data, allowed_bases=policy.allowed_bases,
                              allowed_registries=policy.allowed_registries)
    context_name = None
    context = form.context.data
    if report.ok and context is not None and getattr(context, "filename", ""):
        data = context.read()
        try:
            if len(data) > current_app.config["BUILD_CONTEXT_MAX_BYTES"]:
                raise ContextError("the build context is larger than the limit")
            check_context(data, max_unpacked_bytes=current_app.config["BUILD_CONTEXT_MAX_BYTES"] * 4)
        except ContextError as exc:
            form.context.errors = [f"Build context refused: {exc}"]
            return render_template("images/build.html", form=form, policy=policy, report=report), 400
        context_name = f"{secrets.token_hex(16)}.tar"
        (context_dir() / context_name).write_bytes(data)
    server = load_server_or_404(form.server_id.data)
    tag = f"{form.repository.data}:{form.tag.data}"
    if not report.ok:
        audit.record("build_refused", current_user.username,
                     {"server": server.name, "tag": tag, "rules": [v.rule for v in report.errors]},
                     level="warning", server_id=server.id)
        db.session.commit()
        return render_template("images/build.html", form=form, policy=policy, report=report), 400
    task = task_queue.enqueue(
        "build", target=f"server:{server.id}", requested_by=current_user.username,
        payload={"server_id": server.id, "tag": tag, "dockerfile": form.dockerfile.data,
                 "buildargs": parse_buildargs(form.buildargs.data or ""), "context_file": context_name,
                 "total_steps": report.total_steps,
                 "warnings": [str(w) for w in report.warnings]},
    )
    audit.record("build_requested", current_user.username, {"server": server.name, "tag": tag},
                 server_id=server.id)
    db.session.commit()
    for warning in report.warnings:
        flash(f"Warning: {warning}", "warning")
    flash(f"Build of {tag} queued.", "success")
    return redirect(url_for("tasks.detail", task_id=task.id))


@bp.route("/push", methods=["GET", "POST"])
@permission_required("push_images")
def push() -> Response | tuple[str, int] | str:
    """The push form; queues a `push` task (credentials are read by the task, never stored in it)."""
    form = PushForm(server_id=request.args.get("server", type=int),
                    repository=(request.args.get("repository") or None),
                    tag=(request.args.get("tag") or None))
    _server_choices(form)
    registries = list(db.session.scalars(select(Registry).order_by(Registry.name)))
    form.registry_id.choices = [(r.id, f"{r.name} ({r.host})") for r in registries]
    if not form.validate_on_submit():
        status = 400 if request.method == "POST" else 200
        return render_template("images/push.html", form=form, registries=registries), status
    server = load_server_or_404(form.server_id.data)
    registry = db.get_or_404(Registry, form.registry_id.data)
    source = f"{form.repository.data}:{form.tag.data}"
    task = task_queue.enqueue(
        "push", target=f"server:{server.id}", requested_by=current_user.username,
        payload={"server_id": server.id, "registry_id": registry.id,
                 "repository": form.repository.data, "tag": form.tag.data},
    )
    audit.record("push_requested", current_user.username,
                 {"server": server.name, "image": source, "registry": registry.name}, server_id=server.id)
    db.session.commit()
    flash(f"Push of {source} to {registry.name} queued.", "success")
    return redirect(url_for("tasks.detail", task_id=task.id))
