"""Guest OS uploads: stream a tarball to disk, list and delete uploads, import one as an image."""

from __future__ import annotations

from flask import abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user
from flask_wtf.csrf import validate_csrf
from sqlalchemy import select
from werkzeug.wrappers import Response
from wtforms import ValidationError

from app.errors import error_response
from app.extensions import csrf, db
from app.forms_common import ConfirmForm
from app.images.forms import ImportForm
from app.images.routes import bp, load_server_or_404, servers
from app.images.uploads import UploadRefused, receive_upload
from app.models import Upload
from app.permissions import permission_required
from app.services.images import delete_upload as delete_upload_row
from app.services.images import record_upload, refuse_upload, request_import

MULTIPART_OVERHEAD_BYTES = 64 * 1024


def _import_form() -> ImportForm:
    form = ImportForm()
    form.server_id.choices = [(s.id, s.name) for s in servers()]
    return form


@bp.route("/uploads")
@permission_required("view_images")
def uploads() -> str:
    """Uploaded tarballs, newest first, with the upload and import forms."""
    rows = db.session.scalars(select(Upload).order_by(Upload.id.desc())).all()
    return render_template("images/uploads.html", uploads=rows, confirm=ConfirmForm(),
                           import_form=_import_form(),
                           max_bytes=current_app.config["UPLOAD_MAX_BYTES"])


def _check_csrf(fields: dict[str, str]) -> None:
    try:
        validate_csrf(fields.get("csrf_token"))
    except ValidationError as exc:
        raise UploadRefused(f"The form's security token is missing or expired ({exc}). "
                            "Reload the page and try again.") from exc


@bp.route("/uploads", methods=["POST"])
@csrf.exempt  # the token is checked from the stream, before any file byte is written
@permission_required("build_images")
def upload() -> Response | tuple[str, int]:
    """Receive a tarball streamed to disk under a server-chosen name, with its sha256."""
    limit = current_app.config["UPLOAD_MAX_BYTES"]
    request.max_content_length = limit + MULTIPART_OVERHEAD_BYTES
    try:
        received = receive_upload(request.stream, request.content_type, max_bytes=limit,
                                  check_fields=_check_csrf)
    except UploadRefused as exc:
        refuse_upload(exc.message, actor=current_user.username)
        return error_response(exc.status, exc.message)  # not abort(): werkzeug has no 507 (disk full)
    row = record_upload(received, actor=current_user.username)
    flash(f"Uploaded {row.original_name} ({row.size} bytes, sha256 {row.sha256[:12]}…).", "success")
    return redirect(url_for("images.uploads"))


@bp.route("/uploads/<int:upload_id>/delete", methods=["POST"])
@permission_required("delete_image")
def delete_upload(upload_id: int) -> Response:
    """Delete an upload's file and row."""
    row = db.get_or_404(Upload, upload_id)
    if not ConfirmForm().validate_on_submit():
        abort(400)
    delete_upload_row(row, actor=current_user.username)
    flash(f"Upload {row.original_name} deleted.", "success")
    return redirect(url_for("images.uploads"))


@bp.route("/uploads/<int:upload_id>/import", methods=["POST"])
@permission_required("build_images")
def import_upload(upload_id: int) -> Response:
    """Queue an `import` task that streams the upload to a server's agent as an image."""
    row = db.get_or_404(Upload, upload_id)
    form = _import_form()
    if not form.validate_on_submit():
        problems = "; ".join(f"{getattr(form, name).label.text}: {' '.join(errors)}"
                             for name, errors in form.errors.items())
        flash(f"Not imported: {problems}", "danger")
        return redirect(url_for("images.uploads"))
    server = load_server_or_404(form.server_id.data)
    task = request_import(server, row, repository=form.repository.data, tag=form.tag.data,
                          actor=current_user.username)
    return redirect(url_for("tasks.detail", task_id=task.id))
