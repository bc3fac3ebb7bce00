"""The audit log as a streamed CSV download, with the audit page's filters; the export is audited."""

from __future__ import annotations

from flask import abort, current_app, request
from flask_login import current_user
from werkzeug.wrappers import Response

from app.admin.audit_query import audit_filtered
from app.admin.forms import AuditFilterForm
from app.admin.routes import bp
from app.extensions import db
from app.logs.exports import csv_lines, keyset_rows, streamed
from app.models import AuditLog
from app.permissions import permission_required
from app.services import audit
from app.timeutil import utcnow

AUDIT_COLUMNS = ("id", "created_at", "username", "action_type", "log_level", "source", "ip_address",
                 "server_id", "details")


@bp.route("/audit/export.csv")
@permission_required("view_audit")
def audit_export_csv() -> Response:
    """The filtered audit log as CSV, oldest first, streamed; a bad filter is a 400 naming it."""
    form = AuditFilterForm(request.args)
    if not form.validate():
        problems = [f"{form[name].label.text}: {' '.join(errors)}" for name, errors in form.errors.items()]
        abort(400, "Bad filter: " + "; ".join(problems))
    filters = {name: request.args[name] for name in ("user", "action", "date_from", "date_to")
               if request.args.get(name)}
    audit.record("audit_exported", current_user.username, {"format": "csv", "filters": filters})
    db.session.commit()
    columns = [getattr(AuditLog, name) for name in AUDIT_COLUMNS]
    rows = keyset_rows(current_app._get_current_object(), audit_filtered(form, *columns), AuditLog.id)
    stamp = utcnow().strftime("%Y%m%d-%H%M%S")
    return streamed(csv_lines(AUDIT_COLUMNS, rows), "text/csv", f"slipway-audit-{stamp}.csv")
