"""A failed login records a login name only when it names an account; other text is kept as a keyed hash."""

from __future__ import annotations

import re

from sqlalchemy import select

from app.extensions import db
from app.models import AuditLog, BannedIP, LoginAttempt
from tests.builders import PASSWORD, make_user
from tests.security_helpers import install_clock
from tests.support import csrf_token

ATTACKER = "203.0.113.9"
TYPED_SECRET = "Hunter2-my-real-password"  # a password typed into the username field


def client_from(app, ip):
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = ip
    return client


def post_login(client, token, username, password):
    return client.post("/login", data={"username": username, "password": password, "csrf_token": token})


def stored_text(app) -> str:
    with app.app_context():
        logins = [row.login for row in db.session.scalars(select(LoginAttempt))]
        details = [str(row.details) for row in db.session.scalars(select(AuditLog))]
    return " ".join(logins + details)


def test_a_password_typed_as_the_name_is_never_stored_or_shown(app, client, auth):
    install_clock(app)
    attacker = client_from(app, ATTACKER)
    token = csrf_token(attacker, "/login")
    response = post_login(attacker, token, TYPED_SECRET, "whatever it was")
    assert "Wrong username" in response.get_data(as_text=True)
    with app.app_context():
        [attempt] = db.session.scalars(select(LoginAttempt)).all()
        failed = db.session.scalar(select(AuditLog).where(AuditLog.action_type == "login_failed"))
    assert re.fullmatch(r"unknown:[0-9a-f]{16}", attempt.login)
    assert failed.details["login"] == attempt.login and failed.username is None
    assert TYPED_SECRET.lower() not in stored_text(app).lower()
    auth.as_role("admin")
    page = client.get("/admin/security/").get_data(as_text=True)
    assert TYPED_SECRET.lower() not in page.lower() and attempt.login[8:] in page and "unknown name" in page


def test_a_known_account_is_recorded_by_its_username_even_when_typed_as_email(app):
    install_clock(app)
    with app.app_context():
        make_user("carla", email="carla@example.com")
    attacker = client_from(app, ATTACKER)
    token = csrf_token(attacker, "/login")
    post_login(attacker, token, "  CARLA@example.com ", "wrong password")
    with app.app_context():
        assert db.session.scalar(select(LoginAttempt.login)) == "carla"


def test_the_same_unknown_text_hashes_alike_and_depends_on_the_secret_key(app):
    install_clock(app)
    attacker = client_from(app, ATTACKER)
    token = csrf_token(attacker, "/login")
    for typed in ("Ghost-Name", " ghost-name ", "other-name"):
        post_login(attacker, token, typed, "wrong password")
    with app.app_context():
        first, second, third = db.session.scalars(select(LoginAttempt.login).order_by(LoginAttempt.id))
        from app.security.bruteforce import login_key

        app.config["SECRET_KEY"] = "another secret key for this test only"
        rekeyed = login_key(None, "ghost-name")
    assert first == second != third
    assert rekeyed != first and rekeyed.startswith("unknown:")


def test_spraying_unknown_names_from_one_address_still_ends_in_a_ban(app):
    install_clock(app)
    with app.app_context():
        make_user("dora")
    attacker = client_from(app, ATTACKER)
    token = csrf_token(attacker, "/login")
    statuses = [post_login(attacker, token, f"nobody{i % 20}", f"guess {i}").status_code for i in range(200)]
    assert 403 in statuses
    with app.app_context():
        assert db.session.scalar(select(BannedIP).where(BannedIP.ip_address == ATTACKER)) is not None
    other = client_from(app, "198.51.100.21")
    assert post_login(other, csrf_token(other, "/login"), "dora", PASSWORD).status_code == 302
