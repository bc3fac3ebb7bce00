"""Dockerfile templates: admins keep named Dockerfiles the build form offers."""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, url_for
from flask_login import current_user
from sqlalchemy import select
from werkzeug.wrappers import Response

from app.extensions import db
from app.forms_common import ConfirmForm
from app.images.forms import BuildTemplateForm
from app.images.policy import ALLOWED_MOUNT_TYPES
from app.images.routes import bp
from app.models import BuildPolicy, BuildTemplate
from app.permissions import permission_required
from app.services.images import BuildRefused, ImageRequestError, delete_template, save_template


@bp.route("/templates")
@permission_required("manage_build_templates")
def templates() -> str:
    """Every Dockerfile template, by name."""
    rows = db.session.scalars(select(BuildTemplate).order_by(BuildTemplate.name)).all()
    return render_template("images/templates.html", templates=rows, confirm=ConfirmForm())


def _edit(template: BuildTemplate | None) -> Response | tuple[str, int]:
    form = BuildTemplateForm(obj=template)
    report = None
    if form.validate_on_submit():
        try:
            saved = save_template(template, name=form.name.data, description=form.description.data or "",
                                  dockerfile=form.dockerfile.data, actor=current_user.username)
        except BuildRefused as exc:
            report = exc.report
        except ImageRequestError as exc:
            form.name.errors = [str(exc)]
        else:
            flash(f"Template {saved.name} saved.", "success")
            return redirect(url_for("images.templates"))
    status = 400 if form.is_submitted() else 200
    return render_template("images/template_edit.html", form=form, template=template, report=report,
                           policy=BuildPolicy.current(), mount_types=ALLOWED_MOUNT_TYPES), status


@bp.route("/templates/new", methods=["GET", "POST"])
@permission_required("manage_build_templates")
def new_template() -> Response | tuple[str, int]:
    """Add a template; the build policy must accept its Dockerfile."""
    return _edit(None)


@bp.route("/templates/<int:template_id>/edit", methods=["GET", "POST"])
@permission_required("manage_build_templates")
def edit_template(template_id: int) -> Response | tuple[str, int]:
    """Change a template; the build policy must accept its Dockerfile."""
    return _edit(db.get_or_404(BuildTemplate, template_id))


@bp.route("/templates/<int:template_id>/delete", methods=["POST"])
@permission_required("manage_build_templates")
def delete_template_view(template_id: int) -> Response:
    """Delete a template."""
    template = db.get_or_404(BuildTemplate, template_id)
    if not ConfirmForm().validate_on_submit():
        abort(400)
    name = template.name
    delete_template(template, actor=current_user.username)
    flash(f"Template {name} deleted.", "success")
    return redirect(url_for("images.templates"))
