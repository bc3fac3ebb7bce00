"""Alert rules pages: admins create, edit, toggle and delete rules; forms check regex and values."""

from __future__ import annotations

from sqlalchemy import select

from app.extensions import db
from app.logs.defaults import seed_rules
from app.models import AlertRule, AuditLog
from tests.support import form_post

FORM = {"name": "Panic in app logs", "description": "", "source": "shop", "category": "", "level": "error",
        "field_equals": "service=api\nregion = eu", "message_regex": r"panic: \w+", "threshold_count": "3",
        "window_seconds": "60", "group_by": "host", "risk_score": "65", "severity": "high",
        "webhook_url": "", "enabled": "y"}


def rules_by_name(app):
    with app.app_context():
        return {rule.name: rule for rule in db.session.scalars(select(AlertRule))}


def audit_actions(app):
    with app.app_context():
        return [row.action_type for row in db.session.scalars(select(AuditLog).order_by(AuditLog.id))]


def test_admin_creates_edits_toggles_and_deletes_a_rule(app, client, auth):
    auth.as_role("admin")
    page = "/logs/rules/new"
    response = form_post(client, page, FORM, page=page)
    assert response.status_code == 302
    rule = rules_by_name(app)["Panic in app logs"]
    assert (rule.source, rule.category, rule.level, rule.group_by) == ("shop", None, "error", "host")
    assert rule.field_equals == {"service": "api", "region": "eu"}
    assert (rule.threshold_count, rule.window_seconds, rule.risk_score, rule.builtin) == (3, 60, 65, False)
    listing = client.get("/logs/rules").get_data(as_text=True)
    assert "Panic in app logs" in listing and "panic: \\w+" in listing

    edit = f"/logs/rules/{rule.id}/edit"
    assert "service=api" in client.get(edit).get_data(as_text=True)
    assert form_post(client, edit, {**FORM, "risk_score": "90"}, page=edit).status_code == 302
    assert rules_by_name(app)["Panic in app logs"].risk_score == 90

    assert form_post(client, f"/logs/rules/{rule.id}/toggle", {}, page="/logs/rules").status_code == 302
    assert rules_by_name(app)["Panic in app logs"].enabled is False
    assert form_post(client, f"/logs/rules/{rule.id}/delete", {}, page="/logs/rules").status_code == 302
    assert "Panic in app logs" not in rules_by_name(app)
    assert audit_actions(app)[-4:] == ["rule_created", "rule_updated", "rule_disabled", "rule_deleted"]


def test_bad_values_are_refused_and_nothing_is_stored(app, client, auth):
    auth.as_role("admin")
    page = "/logs/rules/new"
    cases = {
        "message_regex": "(a+",
        "field_equals": "no equals sign here",
        "risk_score": "101",
        "group_by": "bad group!",
        "window_seconds": "0",
        "webhook_url": "ftp://example.com/hook",
    }
    for field, value in cases.items():
        response = form_post(client, page, {**FORM, field: value}, page=page)
        assert response.status_code == 200, field
        assert "is-invalid" in response.get_data(as_text=True), field
    response = form_post(client, page, {**FORM, "message_regex": "x" * 501}, page=page)
    assert response.status_code == 200
    assert rules_by_name(app) == {}


def test_builtin_rule_cannot_be_deleted_or_renamed(app, client, auth):
    with app.app_context():
        seed_rules()
    auth.as_role("admin")
    rule = rules_by_name(app)["Workspace OOM-killed"]
    assert form_post(client, f"/logs/rules/{rule.id}/delete", {}, page="/logs/rules").status_code == 302
    assert "Workspace OOM-killed" in rules_by_name(app)
    edit = f"/logs/rules/{rule.id}/edit"
    response = form_post(client, edit, {**FORM, "name": "Renamed"}, page=edit)
    assert response.status_code == 200 and "keeps its name" in response.get_data(as_text=True)


def test_posts_need_csrf_and_qvp_is_forbidden(app, client, auth):
    with app.app_context():
        seed_rules()
    rule = rules_by_name(app)["Agent offline"]
    auth.as_role("admin")
    assert client.post(f"/logs/rules/{rule.id}/toggle").status_code == 400
    assert client.post("/logs/rules/new", data=FORM).status_code == 400
    assert "Panic in app logs" not in rules_by_name(app)
    assert rules_by_name(app)["Agent offline"].enabled is True
    auth.logout()
    auth.as_role("qvp")
    assert client.get("/logs/rules").status_code == 403
    assert form_post(client, f"/logs/rules/{rule.id}/toggle", {}).status_code == 403
