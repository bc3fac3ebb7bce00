"""Registration, login, logout and server-side sessions."""

from __future__ import annotations

from sqlalchemy import select

from app.extensions import db
from app.models import AuditLog, User, UserSession
from tests.builders import PASSWORD, make_user
from tests.support import form_post


def actions(app) -> list[str]:
    with app.app_context():
        return [a.action_type for a in db.session.scalars(select(AuditLog).order_by(AuditLog.id))]


def users(app) -> list[User]:
    with app.app_context():
        return db.session.scalars(select(User)).all()


def register(client, username="alice", email="alice@example.com", password=PASSWORD, confirm=None):
    return form_post(
        client,
        "/register",
        {"username": username, "email": email, "password": password, "password_confirm": confirm or password},
    )


def test_register_creates_pending_user_and_audits(app, client):
    response = register(client)
    assert response.status_code == 302
    [user] = users(app)
    assert (user.username, user.status, user.role) == ("alice", "pending", "regular")
    assert user.password_hash.startswith("$2")
    assert "user_registered" in actions(app)


def test_register_refuses_bad_usernames(app, client):
    for name in ("Alice", "ab", "admin", "root", "www", "a_b", "-abc", "abc-", "x" * 33, "ab--cd"):
        response = register(client, username=name, email=f"{len(name)}x@example.com")
        assert response.status_code == 200, name
    assert users(app) == []


def test_register_refuses_duplicate_email_and_username(app, client):
    with app.app_context():
        make_user("bob", email="bob@example.com")
    assert "already exists" in register(client, "robert", "BOB@example.com").get_data(as_text=True)
    assert "taken" in register(client, "bob", "other@example.com").get_data(as_text=True)
    assert len(users(app)) == 1


def test_register_password_rules(app, client):
    assert "at least 12" in register(client, password="short").get_data(as_text=True)
    too_long = register(client, password="é" * 40)  # 40 characters, 80 bytes
    assert "at most 72 bytes" in too_long.get_data(as_text=True)
    assert users(app) == []


def test_login_by_username_or_email_and_logout(app, client, auth):
    with app.app_context():
        make_user("carol", email="carol@example.com")
    assert auth.login("carol").status_code == 302
    assert client.get("/workspaces/").status_code == 200
    auth.logout()
    assert client.get("/workspaces/").status_code == 302
    assert auth.login("CAROL@example.com").status_code == 302
    assert client.get("/workspaces/").status_code == 200
    assert actions(app).count("user_logged_in") == 2 and "user_logged_out" in actions(app)


def test_wrong_password_and_unknown_user_say_the_same(app, auth):
    with app.app_context():
        make_user("dave")
    wrong = auth.login("dave", "not the password").get_data(as_text=True)
    unknown = auth.login("nobody", "not the password").get_data(as_text=True)
    assert "Wrong username, email or password." in wrong
    assert "Wrong username, email or password." in unknown
    assert actions(app) == ["login_failed", "login_failed"]


def test_logout_ends_the_session_server_side(app, client, auth):
    with app.app_context():
        make_user("erin")
    auth.login("erin")
    cookie = client.get_cookie("slipway")
    auth.logout()
    with app.app_context():
        assert db.session.scalar(select(UserSession.is_active)) is False
    # Replaying the old cookie does not bring the session back.
    client.set_cookie("slipway", cookie.value)
    assert client.get("/workspaces/").status_code == 302


def test_revoked_session_is_refused_on_next_request(app, client, auth):
    with app.app_context():
        make_user("fred")
    auth.login("fred")
    assert client.get("/workspaces/").status_code == 200
    with app.app_context():
        db.session.scalar(select(UserSession)).is_active = False
        db.session.commit()
    assert client.get("/workspaces/").status_code == 302


def test_pending_and_rejected_users_see_only_the_status_page(app, client, auth):
    with app.app_context():
        make_user("gina", status="pending")
    response = auth.login("gina")
    assert response.headers["Location"].endswith("/pending")
    assert "waiting for approval" in client.get("/pending").get_data(as_text=True)
    assert client.get("/workspaces/").headers["Location"].endswith("/pending")
    assert client.get("/admin/").headers["Location"].endswith("/pending")


def test_next_is_followed_only_to_local_paths(app, client):
    with app.app_context():
        make_user("hank", role="admin")
    for target, expected in (
        ("/admin/users", "/admin/users"),
        ("https://evil.example.com/x", "/admin/"),
        ("//evil.example.com", "/admin/"),
        ("/\\evil.example.com", "/admin/"),
    ):
        response = form_post(client, f"/login?next={target}", {"username": "hank", "password": PASSWORD})
        assert response.headers["Location"] == expected, target
        form_post(client, "/logout", {})


def test_missing_csrf_token_gets_a_clear_400(client):
    response = client.post("/login", data={"username": "x", "password": "y"})
    assert response.status_code == 400
    assert "security token" in response.get_data(as_text=True)


def test_register_accepts_internal_domains_and_still_checks_syntax(app, client):
    for n, email in enumerate(("a@corp.local", "b@dev.internal", "c@team.test", "d@nas.home.arpa")):
        response = register(client, username=f"member{n}", email=email)
        assert response.status_code == 302, (email, response.get_data(as_text=True))
    assert sorted(user.email for user in users(app)) == [
        "a@corp.local", "b@dev.internal", "c@team.test", "d@nas.home.arpa"]
    bad = ("bad..dots@corp.local", "x@-corp.local", "x@corp..local", "no-at-sign.local", "x y@corp.local")
    for email in bad:
        response = register(client, username="badmail", email=email)
        assert response.status_code == 200, email
        assert "email address" in response.get_data(as_text=True).lower(), email
    assert len(users(app)) == 4


def test_strict_domains_refuse_internal_domains(app, client):
    app.config["EMAIL_STRICT_DOMAINS"] = True
    response = register(client, email="alice@corp.local")
    assert response.status_code == 200 and "special-use or reserved" in response.get_data(as_text=True)
    assert users(app) == []
    assert register(client, email="alice@example.com").status_code == 302
