"""Build, push and pull forms: each checks its input, has the images service queue the task, and opens
the task's live page."""

from __future__ import annotations

from typing import Literal

from flask import current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import select
from werkzeug.wrappers import Response

from app.extensions import csrf, db
from app.images.forms import BuildForm, PullForm, PushForm, parse_buildargs
from app.images.policy import ALLOWED_MOUNT_TYPES, PolicyReport
from app.images.routes import bp, load_server_or_404, servers
from app.models import BuildPolicy, BuildTemplate, Registry
from app.permissions import permission_required
from app.services.images import BuildRefused, ImageRequestError, request_build, request_transfer

FORM_OVERHEAD_BYTES = 1024 * 1024


def _server_choices(form: BuildForm | PushForm | PullForm) -> None:
    form.server_id.choices = [(s.id, s.name) for s in servers()]


def _build_page(form: BuildForm, report: PolicyReport | None, status: int = 200) -> tuple[str, int]:
    templates = db.session.scalars(select(BuildTemplate).order_by(BuildTemplate.name)).all()
    return render_template("images/build.html", form=form, policy=BuildPolicy.current(), report=report,
                           templates=templates, mount_types=ALLOWED_MOUNT_TYPES), status


@bp.route("/build", methods=["GET", "POST"])
@csrf.exempt  # the form checks its own token, after the larger per-view body limit is set
@permission_required("build_images")
def build() -> Response | tuple[str, int]:
    """The build form (`?template=<id>` fills the Dockerfile); a valid submission queues a `build` task."""
    limit = current_app.config["BUILD_CONTEXT_MAX_BYTES"] + current_app.config["DOCKERFILE_MAX_BYTES"]
    request.max_content_length = limit + FORM_OVERHEAD_BYTES
    form = BuildForm()
    _server_choices(form)
    if request.method == "GET" and (template_id := request.args.get("template", type=int)):
        template = db.session.get(BuildTemplate, template_id)
        if template is None:
            flash("That template no longer exists.", "warning")
        else:
            form.dockerfile.data = template.dockerfile
    if not form.validate_on_submit():
        return _build_page(form, None, 400 if request.method == "POST" else 200)
    server = load_server_or_404(form.server_id.data)
    context = form.context.data
    data = context.read() if context is not None and getattr(context, "filename", "") else None
    try:
        task, report = request_build(server, repository=form.repository.data, tag=form.tag.data,
                                     dockerfile=form.dockerfile.data,
                                     buildargs=parse_buildargs(form.buildargs.data or ""),
                                     context=data, actor=current_user.username)
    except BuildRefused as exc:
        return _build_page(form, exc.report, 400)
    except ImageRequestError as exc:
        form.context.errors = [str(exc)]
        return _build_page(form, None, 400)
    for warning in report.warnings:
        flash(f"Warning: {warning}", "warning")
    flash(f"Build of {form.repository.data}:{form.tag.data} queued.", "success")
    return redirect(url_for("tasks.detail", task_id=task.id))


def _transfer(kind: Literal["push", "pull"], form: PushForm | PullForm) -> Response | tuple[str, int]:
    """The push or pull form's page, or, once valid, its queued task's page."""
    _server_choices(form)
    registries = list(db.session.scalars(select(Registry).order_by(Registry.name)))
    form.registry_id.choices = [(r.id, f"{r.name} ({r.host})") for r in registries]
    if not form.validate_on_submit():
        status = 400 if request.method == "POST" else 200
        return render_template(f"images/{kind}.html", form=form, registries=registries), status
    server = load_server_or_404(form.server_id.data)
    registry = db.get_or_404(Registry, form.registry_id.data)
    task = request_transfer(kind, server, registry, repository=form.repository.data, tag=form.tag.data,
                            actor=current_user.username)
    ref, direction = f"{form.repository.data}:{form.tag.data}", "to" if kind == "push" else "from"
    flash(f"{kind.capitalize()} of {ref} {direction} {registry.name} queued.", "success")
    return redirect(url_for("tasks.detail", task_id=task.id))


@bp.route("/push", methods=["GET", "POST"])
@permission_required("push_images")
def push() -> Response | tuple[str, int]:
    """The push form; queues a `push` task (credentials are read by the task, never stored in it)."""
    return _transfer("push", PushForm(server_id=request.args.get("server", type=int),
                                      repository=(request.args.get("repository") or None),
                                      tag=(request.args.get("tag") or None)))


@bp.route("/pull", methods=["GET", "POST"])
@permission_required("build_images")
def pull() -> Response | tuple[str, int]:
    """The pull form; queues a `pull` task (credentials are read by the task, never stored in it)."""
    return _transfer("pull", PullForm(server_id=request.args.get("server", type=int)))
