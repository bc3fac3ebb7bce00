"""Alerts: the list with filters, one alert with the entries that raised it, acknowledge and resolve.

Holders of `view_logs` read alerts (qvp only those about themselves, e.g. their failing builds);
acknowledging and resolving is for those who manage the rules that raise them.
"""

from __future__ import annotations

from collections.abc import Callable

from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import select
from werkzeug.wrappers import Response

from app.extensions import db
from app.logs.alert_forms import AlertFilterForm, AlertNoteForm
from app.logs.query import entry_fence, load_alert_or_404, visible_alerts
from app.logs.routes import bp
from app.models import Alert, AlertEntry, LogEntry
from app.permissions import permission_required
from app.services import alerts

LINKED_SHOWN = 200


@bp.route("/alerts")
@permission_required("view_logs")
def alerts_index() -> str:
    """Alerts, most recently seen first, filtered by state, severity and rule."""
    form = AlertFilterForm(request.args)
    page = None
    if form.validate():
        stmt = visible_alerts(current_user)
        if form.state.data == "unresolved":
            stmt = stmt.where(Alert.state != "resolved")
        elif form.state.data:
            stmt = stmt.where(Alert.state == form.state.data)
        if form.severity.data:
            stmt = stmt.where(Alert.severity == form.severity.data)
        if form.rule.data:
            stmt = stmt.where(Alert.rule_name == form.rule.data.strip())
        stmt = stmt.order_by(Alert.last_seen.desc(), Alert.id.desc())
        page = db.paginate(stmt, per_page=50, error_out=False)
    return render_template("logs/alerts.html", form=form, page=page)


@bp.route("/alerts/<int:alert_id>")
@permission_required("view_logs")
def alert_detail(alert_id: int) -> str:
    """One alert: its rule, group, count, who acted and their notes, and the entries that raised it."""
    alert = load_alert_or_404(alert_id, current_user)
    stmt = (select(LogEntry).join(AlertEntry, AlertEntry.entry_id == LogEntry.id)
            .where(AlertEntry.alert_id == alert.id).order_by(LogEntry.id.desc()).limit(LINKED_SHOWN))
    fence = entry_fence(current_user)
    if fence is not None:
        stmt = stmt.where(fence)
    return render_template("logs/alert.html", alert=alert, entries=db.session.scalars(stmt).all(),
                           form=AlertNoteForm(), shown=LINKED_SHOWN)


def _step(alert_id: int, move: Callable[[Alert, str, str], None], done: str) -> Response:
    alert = load_alert_or_404(alert_id, current_user)
    form = AlertNoteForm()
    if not form.validate_on_submit():
        abort(400, "The note is too long (1000 characters at most)." if form.note.errors else None)
    try:
        move(alert, current_user.username, form.note.data or "")
    except alerts.AlertStateError as exc:
        db.session.rollback()
        flash(str(exc), "warning")
    else:
        db.session.commit()
        flash(f"Alert #{alert.id} {done}.", "success")
    return redirect(url_for("logs.alert_detail", alert_id=alert.id))


@bp.route("/alerts/<int:alert_id>/acknowledge", methods=["POST"])
@permission_required("manage_rules")
def alert_acknowledge(alert_id: int) -> Response:
    """Acknowledge an open alert, with an optional note (audited)."""
    return _step(alert_id, alerts.acknowledge, "acknowledged")


@bp.route("/alerts/<int:alert_id>/resolve", methods=["POST"])
@permission_required("manage_rules")
def alert_resolve(alert_id: int) -> Response:
    """Resolve an open or acknowledged alert, with an optional note (audited)."""
    return _step(alert_id, alerts.resolve, "resolved")

