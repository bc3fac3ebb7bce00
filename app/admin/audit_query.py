"""The audit log's filters as one select, shared by the audit page and its export."""

from __future__ import annotations

from datetime import datetime, time, timedelta

from sqlalchemy import Select, select

from app.admin.forms import AuditFilterForm
from app.models import AuditLog


def audit_filtered(form: AuditFilterForm, *columns: object) -> Select:
    """`select(AuditLog)` (or `columns`) narrowed by a validated filter form; unordered."""
    stmt = select(*columns) if columns else select(AuditLog)
    if form.user.data:
        stmt = stmt.where(AuditLog.username == form.user.data.strip())
    if form.action.data:
        stmt = stmt.where(AuditLog.action_type == form.action.data.strip())
    if form.date_from.data:
        stmt = stmt.where(AuditLog.created_at >= datetime.combine(form.date_from.data, time.min))
    if form.date_to.data:
        end = datetime.combine(form.date_to.data, time.min) + timedelta(days=1)
        stmt = stmt.where(AuditLog.created_at < end)
    return stmt
