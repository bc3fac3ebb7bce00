"""Admin settings of the images area: workspace images offered on approval, and the build policy."""

from __future__ import annotations

from decimal import Decimal

from flask import abort, flash, redirect, render_template, url_for
from flask_login import current_user
from sqlalchemy import select
from werkzeug.wrappers import Response

from app.extensions import db
from app.forms_common import ConfirmForm
from app.images.forms import PolicyForm, WorkspaceImageForm, lines
from app.images.policy import ALLOWED_MOUNT_TYPES
from app.images.routes import bp
from app.models import BuildPolicy, WorkspaceImage
from app.permissions import permission_required
from app.services.images import (
    ImageRequestError,
    add_workspace_image,
    remove_workspace_image,
    save_policy,
)


@bp.route("/workspace-images", methods=["GET", "POST"])
@permission_required("manage_images")
def workspace_images() -> Response | tuple[str, int] | str:
    """List the images users may get on approval, and add one."""
    form = WorkspaceImageForm()
    if form.validate_on_submit():
        try:
            row = add_workspace_image(ref=form.ref.data, description=form.description.data or "",
                                      cpu=float(form.default_cpu.data or Decimal(1)),
                                      memory_mb=form.default_memory_mb.data, actor=current_user.username)
        except ImageRequestError as exc:
            form.ref.errors = [str(exc)]
        else:
            flash(f"{row.ref} is now offered on approval.", "success")
            return redirect(url_for("images.workspace_images"))
    rows = db.session.scalars(select(WorkspaceImage).order_by(WorkspaceImage.ref)).all()
    status = 400 if form.is_submitted() else 200
    return render_template("images/workspace_images.html", form=form, images=rows,
                           confirm=ConfirmForm()), status


@bp.route("/workspace-images/<int:image_id>/delete", methods=["POST"])
@permission_required("manage_images")
def delete_workspace_image(image_id: int) -> Response:
    """Stop offering an image on approval (existing workspaces keep theirs)."""
    row = db.get_or_404(WorkspaceImage, image_id)
    if not ConfirmForm().validate_on_submit():
        abort(400)
    ref = row.ref
    remove_workspace_image(row, actor=current_user.username)
    flash(f"{ref} is no longer offered.", "success")
    return redirect(url_for("images.workspace_images"))


@bp.route("/policy", methods=["GET", "POST"])
@permission_required("manage_images")
def policy() -> Response | tuple[str, int] | str:
    """Show and edit the build policy's allow-lists."""
    current = BuildPolicy.current()
    form = PolicyForm()
    if form.validate_on_submit():
        save_policy(allowed_bases=lines(form.allowed_bases.data),
                    allowed_registries=lines(form.allowed_registries.data), actor=current_user.username)
        flash("Build policy saved.", "success")
        return redirect(url_for("images.policy"))
    if not form.is_submitted():
        form.allowed_bases.data = "\n".join(current.allowed_bases or [])
        form.allowed_registries.data = "\n".join(current.allowed_registries or [])
    status = 400 if form.is_submitted() else 200
    return render_template("images/policy.html", form=form, policy=current,
                           mount_types=ALLOWED_MOUNT_TYPES), status
