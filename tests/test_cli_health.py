"""The create-admin command, the health check and the error pages."""

from __future__ import annotations

from sqlalchemy import select

from app.extensions import db
from app.models import AuditLog, User


def test_create_admin_reads_password_from_stdin(app, runner):
    result = runner.invoke(
        args=["create-admin", "--username", "chief", "--email", "chief@example.com", "--password-stdin"],
        input="a long admin password\n",
    )
    assert result.exit_code == 0, result.output
    with app.app_context():
        user = db.session.scalar(select(User))
        assert (user.username, user.role, user.status) == ("chief", "admin", "approved")
        assert db.session.scalar(select(AuditLog.action_type)) == "admin_created"


def test_create_admin_refuses_bad_input(app, runner):
    bad_name = runner.invoke(
        args=["create-admin", "--username", "Root", "--email", "r@example.com", "--password-stdin"],
        input="a long admin password\n",
    )
    short = runner.invoke(
        args=["create-admin", "--username", "chief", "--email", "c@example.com", "--password-stdin"],
        input="short\n",
    )
    no_stdin = runner.invoke(args=["create-admin", "--username", "chief", "--email", "c@example.com"])
    assert bad_name.exit_code != 0 and "lowercase" in bad_name.output
    assert short.exit_code != 0 and "at least 12" in short.output
    assert no_stdin.exit_code != 0
    with app.app_context():
        assert db.session.scalar(select(User.id)) is None


def test_health_reports_database(client):
    response = client.get("/health")
    assert response.status_code == 200
    assert response.get_json()["data"] == {"database": True}


def test_health_503_when_database_unreachable(tmp_path):
    from tests.support import build_app

    broken = build_app("mysql+pymysql://nobody:x@127.0.0.1:1/none", tmp_path)
    response = broken.test_client().get("/health")
    assert response.status_code == 503
    assert response.get_json()["success"] is False


def test_error_pages_use_the_layout_and_hide_internals(client):
    response = client.get("/no/such/page")
    assert response.status_code == 404
    assert "There is nothing here." in response.get_data(as_text=True)
    assert "Traceback" not in response.get_data(as_text=True)
    api = client.get("/api/v1/nothing")
    assert api.status_code == 404 and api.get_json()["success"] is False
    assert client.delete("/login").status_code == 405


def test_security_headers(client):
    response = client.get("/login")
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert "frame-ancestors 'none'" in csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "<script>" not in response.get_data(as_text=True)
