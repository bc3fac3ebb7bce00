"""Hand-off and owner check: one-time tokens, host-only cookies, 401/403, sessions, admin flag."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import AuditLog, Server, User
from tests.builders import make_server, make_user, make_workspace
from tests.workspace_helpers import HOST, check_auth, cookie_of, exchange, open_app


@pytest.fixture
def alice(app):
    """Alice, with a running workspace."""
    with app.app_context():
        user = make_user("alice")
        make_workspace(user, make_server())
        return user.username


def test_owner_hand_off_gives_a_host_onlycookie_of(app, client, auth, alice):
    auth.login(alice)
    parts, token, response = open_app(client)
    assert (parts.scheme, parts.netloc, parts.path) == ("http", "alice-vscode.ws.localhost:8080",
                                                        "/_slipway/exchange")
    assert response.headers["Referrer-Policy"] == "no-referrer"
    done = exchange(app, HOST.format(alice), token)
    assert done.status_code == 302 and done.headers["Location"] == "/"
    assert done.headers["Referrer-Policy"] == "no-referrer"
    cookie, raw = cookie_of(done)
    assert cookie.startswith("slipway_ws=") and "Domain" not in raw and "HttpOnly" in raw
    assert check_auth(app, HOST.format(alice), cookie) == 200
    # the same cookie means nothing on the owner's other app or anywhere else
    assert check_auth(app, "alice-jupyter.ws.localhost", cookie) == 401
    # single use
    assert exchange(app, HOST.format(alice), token).status_code == 400


def test_token_for_one_host_does_not_open_another(app, client, auth, alice):
    auth.login(alice)
    _, token, _ = open_app(client)
    assert exchange(app, "alice-jupyter.ws.localhost", token).status_code == 400
    assert exchange(app, HOST.format(alice), token + "x").status_code == 400


def test_expired_token_is_refused(app, client, auth, alice, monkeypatch):
    import itsdangerous.timed

    auth.login(alice)
    _, token, _ = open_app(client)
    real = itsdangerous.timed.time.time
    monkeypatch.setattr(itsdangerous.timed.time, "time", lambda: real() + 61)
    assert exchange(app, HOST.format(alice), token).status_code == 400


def test_no_cookie_is_401_and_another_user_is_403(app, client, auth, alice):
    assert check_auth(app, HOST.format(alice)) == 401
    with app.app_context():
        make_workspace(make_user("bob"), db.session.scalar(select(Server)))
    auth.login("bob")
    _, token, _ = open_app(client)
    cookie, _ = cookie_of(exchange(app, "bob-vscode.ws.localhost", token))
    assert check_auth(app, "bob-vscode.ws.localhost", cookie) == 200
    # bob's cookie pasted onto alice's host (forged by copying) is refused: it names bob's host
    assert check_auth(app, HOST.format(alice), cookie.replace("bob", "alice")) == 401


def test_other_user_presenting_a_token_for_alices_host_is_403(app, client, auth, alice):
    """A token minted for bob can't be re-pointed; bob opening alice's host has no grant at all."""
    with app.app_context():
        make_user("bob")
    auth.login("bob")
    response = client.get("/workspaces/open/vscode", query_string={"user": alice})
    assert response.status_code == 403


def test_forbidden_for_logged_in_non_owner(app, alice):
    """The 403 path: a valid cookie of a live session whose user is not the owner."""
    from datetime import timedelta

    from app.models import UserSession
    from app.security.tokens import Grant, cookie_name, cookie_value
    from app.timeutil import utcnow

    with app.app_context():
        bob = make_user("bob")
        row = UserSession(user_id=bob.id, session_token="h" * 64, expires_at=utcnow() + timedelta(hours=1))
        db.session.add(row)
        db.session.commit()
        with app.test_request_context():
            value = cookie_value(Grant(bob.id, "bob", HOST.format(alice), row.id))
            name = cookie_name()
    assert check_auth(app, HOST.format(alice), f"{name}={value}") == 403
    edge = app.test_client(use_cookies=False)
    page = edge.get("/workspaces/edge/forbidden", headers={"Host": HOST.format(alice)})
    assert page.status_code == 403


def test_logout_ends_workspace_access(app, client, auth, alice):
    auth.login(alice)
    _, token, _ = open_app(client)
    cookie, _ = cookie_of(exchange(app, HOST.format(alice), token))
    assert check_auth(app, HOST.format(alice), cookie) == 200
    auth.logout()
    assert check_auth(app, HOST.format(alice), cookie) == 401


@pytest.mark.parametrize("flag, expected", [(False, 403), (True, 200)])
def test_admins_enter_only_with_the_flag_and_are_audited(app, client, auth, alice, flag, expected):
    app.config["WORKSPACE_ADMIN_ACCESS"] = flag
    admin = auth.as_role("admin")
    if not flag:
        r = client.get("/workspaces/open/vscode", query_string={"user": alice})
        assert r.status_code == 403, r.headers.get("Location")
        return
    _, token, _ = open_app(client, user=alice)
    done = exchange(app, HOST.format(alice), token)
    cookie, _ = cookie_of(done)
    assert check_auth(app, HOST.format(alice), cookie) == expected
    with app.app_context():
        mine = select(AuditLog.action_type).where(AuditLog.username == admin.username)
        actions = set(db.session.scalars(mine))
    assert {"workspace_admin_opened", "workspace_admin_accessed", "workspace_admin_requested"} <= actions


def test_login_redirect_and_stopped_page(app, client, auth, alice):
    edge = app.test_client(use_cookies=False)
    login = edge.get("/workspaces/edge/login", headers={"Host": HOST.format(alice)})
    assert login.status_code == 302
    assert login.headers["Location"] == "http://127.0.0.1:8000/workspaces/open/vscode?user=alice"
    stopped = edge.get("/workspaces/edge/stopped", headers={"Host": HOST.format(alice)})
    assert stopped.status_code == 302
    auth.login(alice)
    _, token, _ = open_app(client)
    cookie, _ = cookie_of(exchange(app, HOST.format(alice), token))
    page = edge.get("/workspaces/edge/stopped", headers={"Host": HOST.format(alice), "Cookie": cookie})
    assert page.status_code == 503 and "not running" in page.get_data(as_text=True)
    assert "http://127.0.0.1:8000/workspaces/" in page.get_data(as_text=True)


def test_unknown_hosts_are_404(app):
    assert check_auth(app, "alice-shell.ws.localhost") == 404
    assert check_auth(app, "evil.example") == 404


def test_user_without_workspace(app, client, auth):
    auth.as_role("regular")
    assert client.get("/workspaces/open/vscode").status_code == 302
    assert client.get("/workspaces/open/shell").status_code == 404
    assert "no workspace yet" in client.get("/workspaces/").get_data(as_text=True)


def test_user_page_shows_links_only_while_running(app, client, auth, alice):
    auth.login(alice)
    page = client.get("/workspaces/").get_data(as_text=True)
    assert 'id="open-vscode"' in page and 'id="open-jupyter"' in page
    with app.app_context():
        db.session.scalar(select(User).where(User.username == alice))
        from app.models import Workspace

        db.session.scalar(select(Workspace)).status = "stopped"
        db.session.commit()
    page = client.get("/workspaces/").get_data(as_text=True)
    assert 'id="open-vscode"' not in page and ">Start<" in page


def test_a_cookie_tossed_by_a_sibling_host_does_not_lock_the_owner_out(app, client, auth, alice):
    """Without __Host- cookies a sibling host can set one of the same name for the parent domain."""
    from datetime import timedelta

    from app.models import UserSession
    from app.security.tokens import Grant, cookie_value
    from app.timeutil import utcnow

    auth.login(alice)
    _, token, _ = open_app(client)
    own = cookie_of(exchange(app, HOST.format(alice), token))[0]
    name = own.split("=", 1)[0]
    with app.app_context():
        bob = make_user("bob")
        row = UserSession(user_id=bob.id, session_token="b" * 64, expires_at=utcnow() + timedelta(hours=1))
        db.session.add(row)
        db.session.commit()
        with app.test_request_context():
            tossed = f"{name}={cookie_value(Grant(bob.id, 'bob', 'bob-vscode.ws.localhost', row.id))}"
    assert check_auth(app, "bob-vscode.ws.localhost", tossed) == 200  # valid, on bob's own host
    for cookies in (f"{tossed}; {own}", f"{name}=junk; {own}", f"{own}; {tossed}"):
        assert check_auth(app, HOST.format(alice), cookies) == 200, cookies
    assert check_auth(app, HOST.format(alice), f"{tossed}; {name}=junk") == 401
