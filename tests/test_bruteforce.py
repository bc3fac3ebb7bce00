"""Brute force: attempts recorded, growing per-address locks, IP bans before any password check."""

from __future__ import annotations

import re

from sqlalchemy import func, select

from app.extensions import db
from app.models import BannedIP, LoginAttempt
from app.security import passwords
from tests.builders import PASSWORD, make_user
from tests.security_helpers import actions, install_clock
from tests.support import csrf_token

ATTACKER = "203.0.113.7"
OTHER = "198.51.100.20"


def client_from(app, ip):
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = ip
    return client


def post_login(client, token, username, password):
    return client.post("/login", data={"username": username, "password": password, "csrf_token": token})


def test_spraying_200_wrong_passwords_over_20_accounts_ends_in_a_ban(app):
    install_clock(app)
    with app.app_context():
        names = [make_user(f"victim{i:02d}").username for i in range(20)]
    attacker = client_from(app, ATTACKER)
    token = csrf_token(attacker, "/login")
    statuses = [post_login(attacker, token, names[i % 20], f"guess {i}").status_code for i in range(200)]
    assert 403 in statuses and statuses[0] == 200
    with app.app_context():
        ban = db.session.scalar(select(BannedIP).where(BannedIP.ip_address == ATTACKER))
        recorded = db.session.scalar(select(func.count(LoginAttempt.id)))
    assert ban is not None and "failed logins" in ban.reason
    assert recorded == statuses.index(403)  # nothing is recorded (or checked) once banned
    refused = post_login(attacker, token, names[0], PASSWORD)
    assert refused.status_code == 403 and "blocked until" in refused.get_data(as_text=True)
    assert attacker.get("/login").status_code == 403
    assert "ip_banned" in actions(app)
    other = client_from(app, OTHER)
    response = post_login(other, csrf_token(other, "/login"), names[0], PASSWORD)
    assert response.status_code == 302 and response.headers["Location"] == "/workspaces/"


def test_banned_ip_is_refused_without_running_bcrypt(app, monkeypatch):
    install_clock(app)
    with app.app_context():
        make_user("zed")
    attacker = client_from(app, ATTACKER)
    token = csrf_token(attacker, "/login")
    with app.app_context():
        from app.security import bruteforce

        bruteforce.ban(ATTACKER, "test", 600, actor="tester")
        db.session.commit()
    calls = []
    monkeypatch.setattr(passwords.bcrypt, "checkpw", lambda *a: calls.append(a) or False)
    assert post_login(attacker, token, "zed", PASSWORD).status_code == 403
    assert calls == []


def test_account_lock_grows_says_until_when_and_ends(app):
    clock = install_clock(app)
    with app.app_context():
        make_user("lou")
    client = client_from(app, ATTACKER)
    token = csrf_token(client, "/login")
    for i in range(5):
        post_login(client, token, "lou", f"wrong password {i}")
    # Even the right password is refused while locked, with the same bcrypt work.
    assert "locked until" in post_login(client, token, "lou", PASSWORD).get_data(as_text=True)
    # The lock is per address: the owner elsewhere still logs in.
    other = client_from(app, OTHER)
    assert post_login(other, csrf_token(other, "/login"), "lou", PASSWORD).status_code == 302
    clock.advance(seconds=30)
    assert "locked until" in post_login(client, token, "lou", PASSWORD).get_data(as_text=True)
    clock.advance(hours=2)
    assert post_login(client, token, "lou", PASSWORD).status_code == 302
    assert "account_locked" in actions(app)


def test_unknown_user_and_wrong_password_look_and_cost_the_same(app, monkeypatch):
    install_clock(app)
    with app.app_context():
        make_user("amy")
    client = client_from(app, OTHER)
    token = csrf_token(client, "/login")
    calls = []
    real = passwords.bcrypt.checkpw
    monkeypatch.setattr(passwords.bcrypt, "checkpw", lambda pw, h: calls.append(h[:7]) or real(pw, h))
    wrong = post_login(client, token, "amy", "not the password").get_data(as_text=True)
    unknown = post_login(client, token, "nobody-here", "not the password").get_data(as_text=True)
    def normal(page, name):
        return re.sub(r'value="[^"]*"', 'value=""', page.replace(name, "X"))  # CSRF tokens carry a time

    assert normal(wrong, "amy") == normal(unknown, "nobody-here")
    assert len(calls) == 2 and calls[0] == calls[1]  # one bcrypt check each, at the same cost
    with app.app_context():
        rows = db.session.scalars(select(LoginAttempt).order_by(LoginAttempt.id)).all()
    assert [(r.login, r.success, r.ip_address) for r in rows[:1]] == [("amy", False, OTHER)]
    assert rows[1].login.startswith("unknown:") and "nobody" not in rows[1].login


def test_admin_sees_failures_and_bans_and_can_unban(app, client, auth):
    install_clock(app)
    with app.app_context():
        from app.security import bruteforce

        bruteforce.ban(ATTACKER, "spraying", 600, actor=None)
        db.session.add(LoginAttempt(login="ghost", ip_address=ATTACKER, success=False))
        db.session.commit()
        ban_id = db.session.scalar(select(BannedIP.id))
    auth.as_role("admin")
    page = client.get("/admin/security/").get_data(as_text=True)
    assert ATTACKER in page and "ghost" in page and "spraying" in page
    token = csrf_token(client, "/admin/security/")
    client.post(f"/admin/security/bans/{ban_id}/unban", data={"csrf_token": token})
    attacker = client_from(app, ATTACKER)
    assert attacker.get("/login").status_code == 200
    assert "ip_unbanned" in actions(app)
    bad = client.post("/admin/security/bans", data={"csrf_token": token, "ip_address": "not-an-ip",
                                                    "reason": "x", "hours": "1"})
    assert bad.status_code == 400 and "IPv4 or IPv6" in bad.get_data(as_text=True)


def test_unknown_names_lock_like_real_ones(app):
    install_clock(app)
    with app.app_context():
        make_user("real")
    client = client_from(app, ATTACKER)
    token = csrf_token(client, "/login")
    for name in ("real", "ghost-user"):
        for i in range(5):
            post_login(client, token, name, f"wrong password {i}")
    real = post_login(client, token, "real", "another guess").get_data(as_text=True)
    ghost = post_login(client, token, "ghost-user", "another guess").get_data(as_text=True)
    assert "locked until" in real and "locked until" in ghost


def test_admin_unlock_clears_the_lock(app, client, auth):
    install_clock(app)
    with app.app_context():
        uid = make_user("ned").id
    victim = client_from(app, OTHER)
    token = csrf_token(victim, "/login")
    for i in range(6):
        post_login(victim, token, "ned", f"wrong password {i}")
    assert "locked until" in post_login(victim, token, "ned", PASSWORD).get_data(as_text=True)
    auth.as_role("admin")
    admin_token = csrf_token(client, f"/admin/users/{uid}")
    client.post(f"/admin/security/users/{uid}/unlock", data={"csrf_token": admin_token})
    assert post_login(victim, token, "ned", PASSWORD).status_code == 302
    assert "account_unlocked" in actions(app)
