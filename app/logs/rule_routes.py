"""Alert rules pages: list, create, edit, enable/disable, delete (admins, audited)."""

from __future__ import annotations

from typing import Any

from flask import abort, flash, redirect, render_template, url_for
from flask_login import current_user
from sqlalchemy import delete, func, select, update
from werkzeug.wrappers import Response

from app.extensions import db
from app.forms_common import ConfirmForm
from app.logs.forms import RULE_COLUMNS, RuleForm
from app.logs.routes import bp
from app.models import Alert, AlertRule
from app.permissions import permission_required
from app.services import audit


def _rule_or_404(rule_id: int) -> AlertRule:
    rule = db.session.get(AlertRule, rule_id)
    if rule is None:
        abort(404)
    return rule


def _changes(rule: AlertRule, values: dict[str, Any]) -> dict[str, Any]:
    return {name: values[name] for name in RULE_COLUMNS if getattr(rule, name) != values[name]}


@bp.route("/rules")
@permission_required("manage_rules")
def rules() -> str:
    """Every alert rule with its conditions, threshold, score and open alerts."""
    rows = db.session.scalars(select(AlertRule).order_by(AlertRule.name)).all()
    open_counts = dict(db.session.execute(
        select(Alert.rule_id, func.count()).where(Alert.state != "resolved").group_by(Alert.rule_id)).all())
    return render_template("logs/rules.html", rules=rows, open_counts=open_counts, confirm=ConfirmForm())


@bp.route("/rules/new", methods=["GET", "POST"])
@permission_required("manage_rules")
def rule_new() -> str | Response:
    """Create a rule (regex and values checked before anything is stored)."""
    form = RuleForm()
    if form.validate_on_submit():
        rule = AlertRule(builtin=False, **form.values())
        db.session.add(rule)
        db.session.flush()
        audit.record("rule_created", current_user.username, {"rule": rule.id, "name": rule.name})
        db.session.commit()
        flash(f"Rule {rule.name} created.", "success")
        return redirect(url_for("logs.rules"))
    return render_template("logs/rule_form.html", form=form, rule=None)


@bp.route("/rules/<int:rule_id>/edit", methods=["GET", "POST"])
@permission_required("manage_rules")
def rule_edit(rule_id: int) -> str | Response:
    """Change a rule; the audit row lists the fields that changed."""
    rule = _rule_or_404(rule_id)
    form = RuleForm(editing=rule)
    if form.validate_on_submit():
        changed = _changes(rule, form.values())
        for name, value in changed.items():
            setattr(rule, name, value)
        audit.record("rule_updated", current_user.username,
                     {"rule": rule.id, "name": rule.name, "changed": sorted(changed)})
        db.session.commit()
        flash(f"Rule {rule.name} saved.", "success")
        return redirect(url_for("logs.rules"))
    if not form.is_submitted():
        form.load(rule)
    return render_template("logs/rule_form.html", form=form, rule=rule)


@bp.route("/rules/<int:rule_id>/toggle", methods=["POST"])
@permission_required("manage_rules")
def rule_toggle(rule_id: int) -> Response:
    """Enable a disabled rule or disable an enabled one."""
    rule = _rule_or_404(rule_id)
    if not ConfirmForm().validate_on_submit():
        abort(400)
    rule.enabled = not rule.enabled
    audit.record("rule_enabled" if rule.enabled else "rule_disabled", current_user.username,
                 {"rule": rule.id, "name": rule.name})
    db.session.commit()
    flash(f"Rule {rule.name} {'enabled' if rule.enabled else 'disabled'}.", "success")
    return redirect(url_for("logs.rules"))


@bp.route("/rules/<int:rule_id>/delete", methods=["POST"])
@permission_required("manage_rules")
def rule_delete(rule_id: int) -> Response:
    """Delete a rule an admin created; built-in rules can only be disabled. Its alerts stay."""
    rule = _rule_or_404(rule_id)
    if not ConfirmForm().validate_on_submit():
        abort(400)
    if rule.builtin:
        flash(f"{rule.name} is built in: disable it instead.", "danger")
        return redirect(url_for("logs.rules"))
    name = rule.name
    db.session.execute(update(Alert).where(Alert.rule_id == rule.id).values(rule_id=None))
    db.session.execute(delete(AlertRule).where(AlertRule.id == rule.id))
    audit.record("rule_deleted", current_user.username, {"rule": rule_id, "name": name}, level="warning")
    db.session.commit()
    flash(f"Rule {name} deleted.", "success")
    return redirect(url_for("logs.rules"))
