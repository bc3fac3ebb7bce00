"""Self-service password reset end to end, with the link read from a real SMTP server on loopback."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, update

from app.extensions import db
from app.models import AuditLog, PasswordResetToken, Task, TaskEvent, User, UserSession
from app.security.passwords import check_password
from app.timeutil import utcnow
from tests.builders import PASSWORD, make_session, make_user
from tests.mail_support import (  # noqa: F401 - fixtures app, inbox, smtp
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
from tests.security_helpers import actions, enrol
from tests.support import AuthActions, build_app, form_post, run_tasks

LINK_RE = re.compile(r"http://slipway\.test:8000(/login/reset/[A-Za-z0-9_-]+)")
NEW = "a brand new passphrase 2026"


def _ask(client: FlaskClient, email: str):
    return form_post(client, "/login/forgot", {"email": email}, "/login/forgot")


def _link(app: Flask, client: FlaskClient, inbox: SmtpInbox, email: str, asked: str | None = None) -> str:
    """Ask for a reset (typed as `asked`), run the worker, and return the path of the link that arrived."""
    before = len(inbox.to(email))
    assert _ask(client, asked or email).status_code == 302
    run_tasks(app)
    messages = inbox.to(email)
    assert len(messages) == before + 1
    match = LINK_RE.search(body_text(messages[-1]))
    assert match, body_text(messages[-1])
    assert match.group(0) in body_html(messages[-1])
    return match.group(1)


def _reset(client: FlaskClient, path: str, password: str = NEW, confirm: str | None = None):
    return form_post(client, path, {"password": password, "password_confirm": confirm or password}, "/login")


def test_login_page_links_to_forgot_password(app: Flask, client: FlaskClient) -> None:
    page = client.get("/login").get_data(as_text=True)
    assert '<a href="/login/forgot">Forgot password?</a>' in page


def test_reset_end_to_end_ends_sessions_and_still_asks_for_mfa(app: Flask, client: FlaskClient,
                                                              inbox: SmtpInbox) -> None:
    with app.app_context():
        user = make_user("anna")
        make_session(user)
        user_id = user.id
    enrol(app, "anna")
    path = _link(app, client, inbox, "anna@example.com", asked=" Anna@Example.com")
    assert _reset(client, path).headers["Location"] == "/login"
    with app.app_context():
        user = db.session.get(User, user_id)
        assert check_password(NEW, user.password_hash)
        assert not user.must_change_password
        live = db.session.scalars(select(UserSession).where(UserSession.user_id == user_id,
                                                            UserSession.is_active)).all()
        assert live == []
        token = db.session.scalar(select(PasswordResetToken))
        assert token.used_at is not None
        raw = path.rsplit("/", 1)[1]
        assert token.token_hash != raw and raw not in token.token_hash
        stored = [str(t.payload) + str(t.result) + t.message for t in db.session.scalars(select(Task))]
        stored += [e.message for e in db.session.scalars(select(TaskEvent))]
        stored += [str(a.details) for a in db.session.scalars(select(AuditLog))]
        assert not any(raw in text for text in stored), "the raw token must live only in the mail"
    response = AuthActions(client).login("anna", NEW)
    assert response.headers["Location"] == "/login/mfa"
    steps = {"password_reset_requested", "password_reset_mailed", "password_reset_completed"}
    assert steps <= set(actions(app))
    run_tasks(app)
    assert "[Slipway] Your password was changed" in [m["Subject"] for m in inbox.to("anna@example.com")]


def test_unknown_address_gets_the_same_answer_and_no_mail(app: Flask, client: FlaskClient,
                                                         inbox: SmtpInbox) -> None:
    with app.app_context():
        make_user("anna")
    known = _ask(client, "anna@example.com")
    unknown = _ask(client, "nobody@example.com")
    assert (known.status_code, known.headers["Location"]) == (302, "/login")
    assert (unknown.status_code, unknown.headers["Location"]) == (302, "/login")
    assert "If an account has this address" in client.get("/login").get_data(as_text=True)
    tasks = run_tasks(app)
    assert [t.kind for t in tasks] == ["password_reset_mail", "password_reset_mail"]
    assert all(t.state == "succeeded" for t in tasks)
    assert inbox.to("nobody@example.com") == [] and len(inbox.to("anna@example.com")) == 1
    assert "password_reset_ignored" in actions(app)


def test_a_used_link_does_not_work_twice(app: Flask, client: FlaskClient, inbox: SmtpInbox) -> None:
    with app.app_context():
        make_user("anna")
    path = _link(app, client, inbox, "anna@example.com")
    assert _reset(client, path).status_code == 302
    again = client.get(path)
    assert again.status_code == 404 and "not valid" in again.get_data(as_text=True)
    assert again.headers["Referrer-Policy"] == "no-referrer"


def test_an_expired_link_does_not_work(app: Flask, client: FlaskClient, inbox: SmtpInbox) -> None:
    with app.app_context():
        make_user("anna")
    path = _link(app, client, inbox, "anna@example.com")
    with app.app_context():
        token = db.session.scalar(select(PasswordResetToken))
        assert token.expires_at - token.created_at == timedelta(minutes=30)
        db.session.execute(update(PasswordResetToken).values(expires_at=utcnow() - timedelta(seconds=1)))
        db.session.commit()
    assert _reset(client, path).status_code == 404
    with app.app_context():
        assert check_password(PASSWORD, db.session.scalar(select(User.password_hash)))


def test_a_password_change_kills_the_link(app: Flask, client: FlaskClient, inbox: SmtpInbox) -> None:
    AuthActions(client).as_role("regular")
    with app.app_context():
        email = db.session.scalar(select(User.email))
    path = _link(app, client, inbox, email)
    other = "another good passphrase 99"
    form_post(client, "/account/password", {"current_password": PASSWORD, "new_password": other,
                                            "new_password_confirm": other}, "/account/password")
    AuthActions(client).logout()
    assert _reset(app.test_client(), path).status_code == 404


def test_a_link_opened_by_another_signed_in_account_is_refused(app: Flask, client: FlaskClient,
                                                              inbox: SmtpInbox) -> None:
    with app.app_context():
        make_user("anna")
    path = _link(app, client, inbox, "anna@example.com")
    AuthActions(client).as_role("regular")
    assert client.get(path).status_code == 404
    assert _reset(client, path).status_code == 404
    with app.app_context():
        anna = db.session.scalar(select(User).where(User.username == "anna"))
        assert check_password(PASSWORD, anna.password_hash)
    assert _reset(app.test_client(), path).status_code == 302  # anna herself still can


def test_policy_and_history_are_enforced_and_the_link_survives(app: Flask, client: FlaskClient,
                                                              inbox: SmtpInbox) -> None:
    with app.app_context():
        make_user("anna")
    path = _link(app, client, inbox, "anna@example.com")
    weak = _reset(client, path, "password1234")
    assert weak.status_code == 200 and "too easy to guess" in weak.get_data(as_text=True)
    same = _reset(client, path, PASSWORD)
    assert same.status_code == 200 and "you have not used among your last" in same.get_data(as_text=True)
    differ = _reset(client, path, NEW, NEW + "x")
    assert "Passwords differ." in differ.get_data(as_text=True)
    assert _reset(client, path).status_code == 302


def test_reset_mails_per_account_are_limited(app: Flask, client: FlaskClient, inbox: SmtpInbox) -> None:
    with app.app_context():
        make_user("anna")
    for _ in range(5):
        assert _ask(client, "anna@example.com").status_code == 302
    tasks = run_tasks(app)
    assert len(tasks) == 5 and all(t.state == "succeeded" for t in tasks)
    assert len(inbox.to("anna@example.com")) == 3
    assert actions(app).count("password_reset_throttled") == 2


def test_requests_per_address_are_rate_limited(database_url: str, tmp_path: Path,
                                               smtp: tuple[SmtpInbox, int]) -> None:
    app = mail_app(database_url, tmp_path, smtp[1], RATELIMIT_ENABLED=True, RATELIMIT_STORAGE_URI="memory://",
                   RATELIMIT_RESET_ADDRESS="2 per hour", RATELIMIT_RESET="50 per minute")
    try:
        client = app.test_client()
        assert [_ask(client, "who@example.com").status_code for _ in range(3)] == [302, 302, 429]
        assert _ask(client, "WHO@example.com ").status_code == 429
        assert _ask(client, "else@example.com").status_code == 302
    finally:
        clear_tables(app)


def test_without_mail_the_page_says_to_ask_an_admin(database_url: str, tmp_path: Path) -> None:
    app = build_app(database_url, tmp_path)
    try:
        client = app.test_client()
        assert "not set up on this installation" in client.get("/login/forgot").get_data(as_text=True)
        with app.app_context():
            assert db.session.scalars(select(Task)).all() == []
    finally:
        clear_tables(app)


def test_a_directory_account_gets_no_reset_link(app: Flask, client: FlaskClient, inbox: SmtpInbox) -> None:
    """The directory owns such a password: a reset must not give the account a local one."""
    with app.app_context():
        user = make_user("dora")
        user.auth_source = "ldap"
        user.directory_dn = "uid=dora,ou=people,dc=example,dc=org"
        db.session.commit()
    answer = _ask(client, "dora@example.com")
    assert (answer.status_code, answer.headers["Location"]) == (302, "/login")
    tasks = run_tasks(app)
    assert [t.state for t in tasks] == ["succeeded"]
    assert inbox.to("dora@example.com") == []
    with app.app_context():
        assert db.session.scalar(select(PasswordResetToken.id)) is None
    assert "password_reset_refused" in actions(app)
