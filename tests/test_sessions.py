"""Session control: listing and revoking, password changes, admin actions, timeouts, cookie flags."""

from __future__ import annotations

from sqlalchemy import select

from app.extensions import db
from app.models import User, UserSession
from tests.builders import PASSWORD, make_user
from tests.security_helpers import actions, install_clock
from tests.support import build_app, csrf_token, form_post

NEW_PASSWORD = "a brand new passphrase"


def logged_in_client(app, username, password=PASSWORD, agent="test-browser"):
    client = app.test_client()
    client.environ_base["HTTP_USER_AGENT"] = agent
    response = form_post(client, "/login", {"username": username, "password": password}, page="/login")
    assert response.status_code == 302, response.get_data(as_text=True)
    return client


def session_ids(app, username):
    with app.app_context():
        user = db.session.scalar(select(User).where(User.username == username))
        return [s.id for s in user.sessions if s.is_active]


def test_sessions_page_lists_and_revoked_cookie_stops_working(app):
    with app.app_context():
        make_user("sam")
    laptop = logged_in_client(app, "sam", agent="laptop-browser")
    phone = logged_in_client(app, "sam", agent="phone-browser")
    page = laptop.get("/account/sessions").get_data(as_text=True)
    assert "laptop-browser" in page and "phone-browser" in page and "this session" in page
    first, second = session_ids(app, "sam")
    token = csrf_token(laptop, "/account/sessions")
    assert laptop.post(f"/account/sessions/{second}/revoke", data={"csrf_token": token}).status_code == 302
    assert "/login" in phone.get("/workspaces/").headers["Location"]
    assert laptop.get("/workspaces/").status_code == 200
    assert "session_revoked" in actions(app)


def test_revoke_all_others_and_someone_elses_session_is_404(app):
    with app.app_context():
        make_user("una")
        make_user("vic")
    una = logged_in_client(app, "una")
    una_other = logged_in_client(app, "una")
    vic = logged_in_client(app, "vic")
    [vic_session] = session_ids(app, "vic")
    token = csrf_token(una, "/account/sessions")
    assert una.post(f"/account/sessions/{vic_session}/revoke", data={"csrf_token": token}).status_code == 404
    assert vic.get("/workspaces/").status_code == 200
    una.post("/account/sessions/revoke-others", data={"csrf_token": token})
    assert "/login" in una_other.get("/workspaces/").headers["Location"]
    assert una.get("/workspaces/").status_code == 200


def change_password(client, current, new, confirm=None):
    return form_post(
        client,
        "/account/password",
        {"current_password": current, "new_password": new, "new_password_confirm": confirm or new},
        page="/account/password",
    )


def test_password_change_ends_other_sessions_and_refuses_reuse(app):
    with app.app_context():
        make_user("wes")
    main = logged_in_client(app, "wes")
    other = logged_in_client(app, "wes")
    assert "not your current password" in change_password(main, "wrong password!", NEW_PASSWORD).get_data(
        as_text=True
    )
    assert "last 5" in change_password(main, PASSWORD, PASSWORD).get_data(as_text=True)
    assert change_password(main, PASSWORD, NEW_PASSWORD).status_code == 302
    assert "/login" in other.get("/workspaces/").headers["Location"]
    assert main.get("/workspaces/").status_code == 200
    # Cycle through four more passwords; the first is still among the last five, then it is free again.
    history = [NEW_PASSWORD] + [f"passphrase number {i}!" for i in range(4)]
    for previous, nxt in zip(history, history[1:], strict=False):
        assert change_password(main, previous, nxt).status_code == 302
    assert "last 5" in change_password(main, history[-1], NEW_PASSWORD).get_data(as_text=True)
    assert change_password(main, history[-1], PASSWORD).status_code == 302
    assert "password_changed" in actions(app)


def test_admin_reset_forces_a_change_and_admin_ends_sessions(app, auth, client):
    with app.app_context():
        uid = make_user("xia").id
    victim = logged_in_client(app, "xia")
    auth.as_role("admin")
    token = csrf_token(client, f"/admin/users/{uid}")
    ended = client.post(f"/admin/security/users/{uid}/end-sessions", data={"csrf_token": token})
    assert ended.status_code == 302
    assert "/login" in victim.get("/workspaces/").headers["Location"]
    assert "sessions_ended_by_admin" in actions(app)
    reset = {"csrf_token": token, "password": "admin chose this one"}
    client.post(f"/admin/users/{uid}/password", data=reset)
    victim = logged_in_client(app, "xia", password="admin chose this one")
    assert victim.get("/workspaces/").headers["Location"] == "/account/password"
    assert change_password(victim, "admin chose this one", NEW_PASSWORD).status_code == 302
    assert victim.get("/workspaces/").status_code == 200


def test_idle_timeout_and_absolute_lifetime_follow_the_clock(app):
    clock = install_clock(app)
    with app.app_context():
        make_user("yan")
    client = logged_in_client(app, "yan")
    clock.advance(minutes=119)
    assert client.get("/workspaces/").status_code == 200  # activity renews the idle timer
    clock.advance(minutes=121)
    assert "/login" in client.get("/workspaces/").headers["Location"]
    client = logged_in_client(app, "yan")
    for _ in range(12):
        clock.advance(minutes=60)
        client.get("/workspaces/")
    assert "/login" in client.get("/workspaces/").headers["Location"]  # 12 h absolute lifetime


def test_login_renews_the_session_and_cookie_flags(app, database_url, tmp_path):
    with app.app_context():
        make_user("zoe")
    client = app.test_client()
    csrf_token(client, "/login")
    before = client.get_cookie("slipway").value
    response = form_post(client, "/login", {"username": "zoe", "password": PASSWORD}, page="/login")
    cookie = response.headers["Set-Cookie"]
    assert client.get_cookie("slipway").value != before
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie
    https = build_app(database_url, tmp_path / "https", HTTPS=True, SESSION_COOKIE_SECURE=True,
                      SESSION_COOKIE_NAME="__Host-slipway")
    page = https.test_client().get("/login", base_url="https://localhost")
    assert "Secure" in page.headers["Set-Cookie"] and page.headers["Set-Cookie"].startswith("__Host-slipway=")
    with app.app_context():
        assert db.session.scalar(select(UserSession.ip_address)) == "127.0.0.1"
