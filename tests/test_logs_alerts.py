"""Alerts pages: list filters, detail with linked entries, acknowledge/resolve (audited), who sees what."""

from __future__ import annotations

import re

from sqlalchemy import select, update

from app.extensions import db
from app.models import Alert, AuditLog
from tests.builders import make_server
from tests.logkit import add_alert, add_logs
from tests.support import form_post


def alert_ids(page: str) -> list[int]:
    """The alert ids linked from a list page."""
    return [int(i) for i in re.findall(r'href="/logs/alerts/(\d+)"', page)]


def test_admin_acknowledges_then_resolves_with_notes_each_step_audited(app, client, auth):
    admin = auth.as_role("admin")
    entries = add_logs(app, {"message": "OOM killed <script>x</script>", "category": "container.oom"},
                       {"message": "unrelated"})
    alert_id = add_alert(app, entries[:1], rule_name="workspace OOM-killed", group_value="alice",
                         severity="high", open_key="1:alice")
    detail = client.get(f"/logs/alerts/{alert_id}").get_data(as_text=True)
    assert "OOM killed &lt;script&gt;" in detail and "unrelated" not in detail
    assert "Acknowledge" in detail

    response = form_post(client, f"/logs/alerts/{alert_id}/acknowledge", {"note": "looking <b>now</b>"},
                         page=f"/logs/alerts/{alert_id}", follow_redirects=True)
    page = response.get_data(as_text=True)
    assert f"Alert #{alert_id} acknowledged." in page and "looking &lt;b&gt;now&lt;/b&gt;" in page
    response = form_post(client, f"/logs/alerts/{alert_id}/resolve", {"note": "limit raised"},
                         page=f"/logs/alerts/{alert_id}", follow_redirects=True)
    assert f"Alert #{alert_id} resolved." in response.get_data(as_text=True)
    with app.app_context():
        alert = db.session.get(Alert, alert_id)
        assert (alert.state, alert.open_key) == ("resolved", None)
        assert (alert.acknowledged_by, alert.resolved_by) == (admin.username, admin.username)
        assert "looking <b>now</b>" in alert.note and "limit raised" in alert.note
        rows = db.session.scalars(select(AuditLog).where(AuditLog.action_type.like("alert_%"))
                                  .order_by(AuditLog.id)).all()
        assert [(r.action_type, r.details["alert"], r.details["note"]) for r in rows] == [
            ("alert_acknowledged", alert_id, "looking <b>now</b>"),
            ("alert_resolved", alert_id, "limit raised")]

    # a second resolve changes nothing and says why
    again = form_post(client, f"/logs/alerts/{alert_id}/resolve", {"note": "twice"},
                      page=f"/logs/alerts/{alert_id}", follow_redirects=True)
    assert "is already resolved" in again.get_data(as_text=True)
    with app.app_context():
        assert "twice" not in db.session.get(Alert, alert_id).note
        assert db.session.scalar(select(db.func.count()).select_from(AuditLog)
                                 .where(AuditLog.action_type == "alert_resolved")) == 1


def test_state_changes_need_post_with_csrf_and_a_sane_note(app, client, auth):
    auth.as_role("admin")
    alert_id = add_alert(app)
    assert client.get(f"/logs/alerts/{alert_id}/resolve").status_code == 405
    assert client.post(f"/logs/alerts/{alert_id}/resolve", data={"note": "no token"}).status_code == 400
    too_long = form_post(client, f"/logs/alerts/{alert_id}/resolve", {"note": "x" * 1001},
                         page=f"/logs/alerts/{alert_id}")
    assert too_long.status_code == 400 and "too long" in too_long.get_data(as_text=True)
    with app.app_context():
        assert db.session.get(Alert, alert_id).state == "open"


def test_list_filters_by_state_severity_and_rule(app, client, auth):
    auth.as_role("admin")
    high = add_alert(app, severity="high", rule_name="disk", group_value="a")
    low = add_alert(app, severity="low", rule_name="disk", group_value="b")
    acked = add_alert(app, severity="high", rule_name="oom", state="acknowledged", group_value="c")
    done = add_alert(app, severity="high", rule_name="oom", state="resolved", group_value="d")

    def ids(query: str) -> list[int]:
        return sorted(alert_ids(client.get(f"/logs/alerts?{query}").get_data(as_text=True)))

    assert ids("") == sorted([high, low, acked, done])
    assert ids("state=open") == sorted([high, low])
    assert ids("state=unresolved&severity=high") == sorted([high, acked])
    assert ids("rule=oom") == sorted([acked, done])
    for bad in ("state=bogus", "severity=%3Cscript%3E", "rule=" + "r" * 200):
        response = client.get(f"/logs/alerts?{bad}")
        assert response.status_code == 200 and alert_ids(response.get_data(as_text=True)) == [], bad
        assert "alert-warning" in response.get_data(as_text=True)


def test_qvp_reads_only_alerts_about_themselves_and_cannot_act(app, client, auth):
    qvp = auth.as_role("qvp")
    mine = add_alert(app, rule_name="build failures in a row", username=qvp.username,
                     group_value=qvp.username)
    theirs = add_alert(app, rule_name="failed-login burst", username="someone", group_value="10.0.0.9")
    assert alert_ids(client.get("/logs/alerts").get_data(as_text=True)) == [mine]
    page = client.get(f"/logs/alerts/{mine}").get_data(as_text=True)
    assert "Acknowledge" not in page
    assert client.get(f"/logs/alerts/{theirs}").status_code == 404
    response = form_post(client, f"/logs/alerts/{mine}/acknowledge", {}, page=f"/logs/alerts/{mine}")
    assert response.status_code == 403


def test_navbar_badge_counts_open_alerts_for_admins(app, client, auth):
    auth.as_role("admin")
    add_alert(app, group_value="a")
    add_alert(app, group_value="b")
    add_alert(app, group_value="c", state="acknowledged")
    page = client.get("/workspaces/").get_data(as_text=True)
    assert re.search(r'nav-alerts-badge"[^>]*>2<', page)
    with app.app_context():
        db.session.execute(update(Alert).values(state="acknowledged"))
        db.session.commit()
    assert "nav-alerts-badge" not in client.get("/workspaces/").get_data(as_text=True)


def test_qvp_gets_no_badge(app, client, auth):
    auth.as_role("qvp")
    add_alert(app, group_value="a")
    assert "nav-alerts-badge" not in client.get("/workspaces/").get_data(as_text=True)


def test_dashboard_counts_open_alerts_by_severity_with_links(app, client, auth):
    from tests.page_helpers import count_of, href_of

    auth.as_role("admin")
    add_alert(app, severity="critical", group_value="a")
    add_alert(app, severity="critical", group_value="b")
    add_alert(app, severity="low", group_value="c")
    add_alert(app, severity="critical", group_value="d", state="resolved")
    page = client.get("/admin/").get_data(as_text=True)
    assert [count_of(page, f"alerts-{s}") for s in ("critical", "high", "medium", "low")] == [2, 0, 0, 1]
    listed = client.get(href_of(page, "alerts-critical")).get_data(as_text=True)
    assert len(alert_ids(listed)) == 2


def test_server_page_lists_its_open_alerts_and_recent_events(app, client, auth):
    auth.as_role("admin")
    with app.app_context():
        server_id, other_id = make_server("alpha").id, make_server("beta").id
    add_logs(app, {"server_id": server_id, "message": "alpha event <i>x</i>"},
             {"server_id": other_id, "message": "beta event"})
    mine = add_alert(app, server_id=server_id, group_value="alpha", message="disk above 90 %")
    add_alert(app, server_id=server_id, group_value="old", state="resolved", message="resolved one")
    page = client.get(f"/servers/{server_id}").get_data(as_text=True)
    assert "alpha event &lt;i&gt;x&lt;/i&gt;" in page and "beta event" not in page
    assert f'href="/logs/alerts/{mine}"' in page and "resolved one" not in page
    assert f'href="/logs/?server={server_id}"' in page
