"""E-mail notifications sent through a real SMTP server on loopback (aiosmtpd in-process)."""

from __future__ import annotations

from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from app.extensions import db
from app.logs.evaluate import evaluate_pending
from app.logs.store import add_entries
from app.mail import notify
from app.mail.message import MessageError, compose
from app.models import AlertRule, Task, User
from app.services import accounts, workspaces
from app.settings_checks import validate
from app.timeutil import utcnow
from config import TestingConfig
from tests.builders import PASSWORD, make_alert, make_server, make_task, make_user, make_workspace
from tests.mail_support import (  # noqa: F401 - fixtures app, inbox, smtp
    HungSmtp,
    SmtpInbox,
    body_html,
    body_text,
    clear_tables,
    mail_app,
    mail_test_app,
    smtp_inbox,
    smtp_server,
    start_smtp,
)
from tests.support import AuthActions, form_post, run_tasks


def _only(inbox: SmtpInbox, address: str) -> EmailMessage:
    messages = inbox.to(address)
    assert len(messages) == 1, [m["Subject"] for m in messages]
    return messages[0]


def test_registration_mails_every_admin_with_the_approval_queue(app: Flask, client: FlaskClient,
                                                                 inbox: SmtpInbox) -> None:
    with app.app_context():
        make_user("boss", role="admin")
        make_user("staff", role="qvp")
    form = {"username": "newbie", "email": "newbie@example.com", "password": PASSWORD,
            "password_confirm": PASSWORD}
    response = form_post(client, "/register", form, "/register")
    assert response.status_code == 302
    tasks = run_tasks(app)
    assert [t.state for t in tasks if t.kind == "send_mail"] == ["succeeded"]
    message = _only(inbox, "boss@example.com")
    assert message["Subject"] == "[Slipway] New account waiting for approval: newbie"
    assert message["From"].addresses[0].addr_spec == "slipway@example.org"
    assert message.is_multipart()
    assert "http://slipway.test:8000/admin/approvals" in body_text(message)
    assert 'href="http://slipway.test:8000/admin/approvals"' in body_html(message)
    assert inbox.to("staff@example.com") == [] and inbox.to("newbie@example.com") == []


def test_approval_and_rejection_reach_the_user(app: Flask, inbox: SmtpInbox) -> None:
    with app.app_context():
        admin = make_user("boss", role="admin")
        workspaces.approve_user(make_user("anna", status="pending"), admin, None)
        accounts.reject(make_user("bert", status="pending"), admin, "No budget <b>this</b> year")
    run_tasks(app)
    approved = _only(inbox, "anna@example.com")
    assert approved["Subject"] == "[Slipway] Your account is approved"
    assert "http://slipway.test:8000/workspaces/" in body_text(approved)
    rejected = _only(inbox, "bert@example.com")
    assert "No budget <b>this</b> year" in body_text(rejected)
    assert "No budget &lt;b&gt;this&lt;/b&gt; year" in body_html(rejected)


def test_workspace_ready_mail_links_the_workspace(app: Flask, inbox: SmtpInbox) -> None:
    with app.app_context():
        owner = make_user("anna")
        ws = make_workspace(owner, make_server())
        task = make_task("boss", kind="provision", state="succeeded", payload={"workspace_id": ws.id})
        notify.task_finished(task, "succeeded")
        db.session.commit()
    run_tasks(app)
    message = _only(inbox, "anna@example.com")
    assert message["Subject"] == "[Slipway] Your workspace is ready"
    assert "http://slipway.test:8000/workspaces/" in body_text(message)


def test_a_failed_build_mails_whoever_started_it(app: Flask, inbox: SmtpInbox) -> None:
    with app.app_context():
        make_user("builder", role="qvp")
        make_user("other", role="admin")
        make_task("builder", kind="build", target="image:demo:1",
                  payload={"server_id": 999999, "tag": "demo:1"})
    tasks = run_tasks(app)
    build = next(t for t in tasks if t.kind == "build")
    assert build.state == "failed"
    message = _only(inbox, "builder@example.com")
    assert message["Subject"] == "[Slipway] Your build failed: image:demo:1"
    assert "the server no longer exists" in body_text(message)
    assert f"http://slipway.test:8000/tasks/{build.id}" in body_text(message)
    assert inbox.to("other@example.com") == []


def test_high_alerts_reach_admins_and_lower_ones_do_not(app: Flask, inbox: SmtpInbox) -> None:
    with app.app_context():
        make_user("boss", role="admin")
        make_user("reg")
        notify.alert_opened(make_alert(severity="medium"))
        high = make_alert("reg", severity="critical")
        notify.alert_opened(high)
        db.session.commit()
        alert_id = high.id
    run_tasks(app)
    message = _only(inbox, "boss@example.com")
    assert message["Subject"] == "[Slipway] Critical alert: matrix rule"
    assert f"/logs/alerts/{alert_id}" in body_text(message)
    assert inbox.to("reg@example.com") == []


def test_security_mail_password_change_mfa_off_admin_reset_and_new_address(app: Flask, client: FlaskClient,
                                                                            inbox: SmtpInbox) -> None:
    auth = AuthActions(client)
    user = auth.as_role("regular")
    new = "a fresh and long passphrase 42"
    response = form_post(client, "/account/password", {"current_password": PASSWORD, "new_password": new,
                                                       "new_password_confirm": new}, "/account/password")
    assert response.status_code == 302
    with app.app_context():
        admin = make_user("boss", role="admin")
        target = db.session.get(User, user.id)
        accounts.reset_password(target, "another long passphrase 77", admin)
        from app.security import mfa
        mfa.disable(db.session.get(User, user.id), "boss")
        db.session.commit()
    run_tasks(app)
    subjects = sorted(m["Subject"] for m in inbox.to(user.email))
    assert subjects == ["[Slipway] Two-factor authentication was turned off",
                        "[Slipway] Your password was changed", "[Slipway] Your password was changed"]
    assert any("An administrator reset" in body_text(m) for m in inbox.to(user.email))
    # a login from an address no earlier session used
    other = app.test_client()
    other.environ_base["REMOTE_ADDR"] = "198.51.100.7"
    assert AuthActions(other).login(user.username, "another long passphrase 77").status_code == 302
    run_tasks(app)
    [news] = [m for m in inbox.to(user.email) if m["Subject"] == "[Slipway] New login to your account"]
    assert "198.51.100.7" in body_text(news)


def test_a_known_address_logs_in_without_a_new_login_mail(app: Flask, client: FlaskClient,
                                                          inbox: SmtpInbox) -> None:
    auth = AuthActions(client)
    user = auth.as_role("regular")
    auth.logout()
    assert auth.login(user.username).status_code == 302
    run_tasks(app)
    assert inbox.to(user.email) == []


def test_opt_out_stops_a_kind_but_not_security_mail(app: Flask, client: FlaskClient,
                                                    inbox: SmtpInbox) -> None:
    user = AuthActions(client).as_role("qvp")
    page = client.get("/account/mail").get_data(as_text=True)
    assert "Builds, pushes and pulls I started" in page and "checked" in page
    response = form_post(client, "/account/mail", {"registrations": "y", "account": "y", "alerts": "y"},
                         "/account/mail")
    assert response.status_code == 302
    assert 'id="builds" name="builds" type="checkbox" value="y">' in client.get("/account/mail").get_data(
        as_text=True)
    with app.app_context():
        make_task(user.username, kind="build", target="image:x:1",
                  payload={"server_id": 999999, "tag": "x:1"})
        notify.password_changed(db.session.get(User, user.id), by_admin=True)
        db.session.commit()
    run_tasks(app)
    assert [m["Subject"] for m in inbox.to(user.email)] == ["[Slipway] Your password was changed"]


def test_a_refusing_server_fails_the_task_and_keeps_the_action(app: Flask, client: FlaskClient,
                                                               inbox: SmtpInbox) -> None:
    inbox.mode = "refuse"
    with app.app_context():
        make_user("boss", role="admin")
    form_post(client, "/register", {"username": "newbie", "email": "newbie@example.com",
                                    "password": PASSWORD, "password_confirm": PASSWORD}, "/register")
    [mail] = [t for t in run_tasks(app) if t.kind == "send_mail"]
    assert mail.state == "failed" and mail.attempts == 1
    assert "550" in mail.message and "refused" in mail.message
    with app.app_context():
        assert db.session.scalar(select(User.status).where(User.username == "newbie")) == "pending"


def test_a_deferring_server_is_retried_later_then_the_mail_arrives(database_url: str, tmp_path: Path,
                                                                    smtp: tuple[SmtpInbox, int]) -> None:
    inbox, port = smtp
    inbox.mode = "defer"
    app = mail_app(database_url, tmp_path, port, TASK_RETRY_BASE_SECONDS=60)
    try:
        with app.app_context():
            notify.password_changed(make_user("anna"), by_admin=False)
            db.session.commit()
        [task] = run_tasks(app, timeout=1)
        assert (task.state, task.attempts) == ("queued", 1)
        assert "451" in task.message
        with app.app_context():
            row = db.session.get(Task, task.id)
            assert row.run_after > utcnow() + timedelta(seconds=20)
            row.run_after = utcnow()  # the backoff has passed
            db.session.commit()
        inbox.mode = "accept"
        [task] = run_tasks(app)
        assert (task.state, task.attempts) == ("succeeded", 2)
        assert len(inbox.to("anna@example.com")) == 1
    finally:
        clear_tables(app)


def test_a_hanging_server_times_out_is_retried_and_fails(database_url: str, tmp_path: Path) -> None:
    hung = HungSmtp()
    app = mail_app(database_url, tmp_path, hung.port, SMTP_TIMEOUT=0.3)
    try:
        with app.app_context():
            admin = make_user("boss", role="admin")
            accounts.reject(make_user("bert", status="pending"), admin, "no")
        [task] = run_tasks(app, timeout=30)
        assert task.kind == "send_mail" and task.state == "failed"
        assert task.attempts == task.max_attempts == 6
        assert "timed out" in task.message
        with app.app_context():
            assert db.session.scalar(select(User.status).where(User.username == "bert")) == "rejected"
    finally:
        hung.stop()
        clear_tables(app)


def test_header_injection_in_an_address_is_refused(app: Flask, inbox: SmtpInbox) -> None:
    with app.app_context():
        user = make_user("anna")
        user.email = "anna@example.com\r\nBcc: evil@example.net"
        db.session.commit()
        notify.password_changed(user, by_admin=False)
        db.session.commit()
        with pytest.raises(MessageError):
            compose("x@example.com\nBcc: evil@example.net", "hi", "password_changed", {"username": "x"})
    [task] = run_tasks(app)
    assert task.state == "failed" and "refused address" in task.message
    assert inbox.received == []


def test_header_injection_in_a_subject_is_folded_into_one_line(app: Flask, inbox: SmtpInbox) -> None:
    with app.app_context():
        make_user("boss", role="admin")
        alert = make_alert(severity="high")
        alert.rule_name = "disk\r\nBcc: evil@example.net\r\n\r\nbody"
        db.session.commit()
        notify.alert_opened(alert)
        db.session.commit()
    run_tasks(app)
    [(recipients, message)] = inbox.received
    assert recipients == ["boss@example.com"]
    assert message["Bcc"] is None
    assert message["Subject"] == "[Slipway] High alert: disk Bcc: evil@example.net body"


def test_without_an_smtp_host_nothing_is_queued(database_url: str, tmp_path: Path) -> None:
    app = mail_app(database_url, tmp_path, 25, SMTP_HOST=None)
    try:
        with app.app_context():
            admin = make_user("boss", role="admin")
            accounts.reject(make_user("bert", status="pending"), admin, "no")
            assert db.session.scalars(select(Task)).all() == []
    finally:
        clear_tables(app)


def test_mail_settings_are_validated() -> None:
    settings, problems = TestingConfig.load({"SLIPWAY_SMTP_SECURITY": "ssl", "SLIPWAY_SMTP_PORT": "70000",
                                             "SLIPWAY_SMTP_USERNAME": "mailer",
                                             "SLIPWAY_MAIL_FROM": "slipway@example.org\r\nBcc: x@y.z"})
    found = "\n".join(problems + validate(settings))
    assert "SLIPWAY_SMTP_SECURITY must be one of none, starttls, tls" in found
    assert "SLIPWAY_SMTP_PORT must be a port number" in found
    assert "SLIPWAY_SMTP_USERNAME and SLIPWAY_SMTP_PASSWORD must be set together" in found
    assert "SLIPWAY_MAIL_FROM must be one e-mail address" in found


def test_an_alert_opened_by_the_rule_engine_mails_admins(app: Flask, inbox: SmtpInbox) -> None:
    with app.app_context():
        make_user("boss", role="admin")
        db.session.add(AlertRule(name="oom", category="container.oom", risk_score=70, severity="high"))
        add_entries([{"source": "agent", "category": "container.oom", "message": "killed"}])
        db.session.commit()
    evaluate_pending(app, settle_seconds=0)
    run_tasks(app)
    message = _only(inbox, "boss@example.com")
    assert message["Subject"] == "[Slipway] High alert: oom"
