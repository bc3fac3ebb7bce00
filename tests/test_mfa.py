"""TOTP MFA: setup, two-step login, backup codes, replay refusal, forced setup, policy, disabling."""

from __future__ import annotations

from sqlalchemy import select

from app.extensions import db
from app.models import MfaBackupCode, RolePolicy
from tests.builders import PASSWORD, make_user
from tests.security_helpers import CODE_RE, SECRET_RE, actions, code_at, enrol, get_user, install_clock
from tests.support import form_post


def login(client, username, next_url=None):
    url = "/login" + (f"?next={next_url}" if next_url else "")
    return form_post(client, url, {"username": username, "password": PASSWORD}, page="/login")


def post_code(client, url, code):
    return form_post(client, url, {"code": code}, page=url)


def second_step(client, code):
    return form_post(client, "/login/mfa", {"code": code}, page="/login/mfa")


def test_setup_shows_a_server_side_qr_and_needs_a_valid_code(app, client, auth):
    clock = install_clock(app)
    auth.as_role("regular", username="rita")
    page = client.get("/account/mfa/setup").get_data(as_text=True)
    assert "<svg" in page and "http" not in page.split("<svg", 1)[1].split("</svg>")[0].replace(
        "http://www.w3.org/2000/svg", ""
    )
    secret = SECRET_RE.search(page).group(1)
    wrong = post_code(client, "/account/mfa/setup", "000000")
    assert "does not match" in wrong.get_data(as_text=True)
    assert not get_user(app, "rita").mfa_enabled
    shown = post_code(client, "/account/mfa/setup", code_at(secret, clock))
    codes = CODE_RE.findall(shown.get_data(as_text=True))
    assert len(codes) == 10 and len(set(codes)) == 10
    user = get_user(app, "rita")
    assert user.mfa_enabled and secret not in (user.mfa_secret or "")
    with app.app_context():
        query = select(MfaBackupCode.code_hash).where(MfaBackupCode.user_id == user.id)
        stored = db.session.scalars(query).all()
    assert len(stored) == 10 and not set(codes) & set(stored)
    assert "mfa_enabled" in actions(app)


def test_totp_login_half_state_reaches_nothing_and_replay_is_refused(app, client):
    clock = install_clock(app)
    with app.app_context():
        make_user("tom")
    secret = enrol(app, "tom")
    response = login(client, "tom", next_url="/account/")
    assert response.headers["Location"] == "/login/mfa"
    for path in ("/workspaces/", "/account/", "/account/api-keys", "/admin/"):
        assert "/login" in client.get(path).headers["Location"], path
    assert client.get("/login/mfa/setup").headers["Location"] == "/login"  # no second route around the code
    login(client, "tom", next_url="/account/")
    assert second_step(client, "123456").status_code == 200
    code = code_at(secret, clock)
    done = second_step(client, code)
    assert done.headers["Location"] == "/account/"
    assert client.get("/workspaces/").status_code == 200
    form_post(client, "/logout", {})
    login(client, "tom")
    replay = second_step(client, code)
    assert replay.status_code == 200 and "not valid" in replay.get_data(as_text=True)
    clock.advance(seconds=30)
    assert second_step(client, code_at(secret, clock)).status_code == 302
    assert "mfa_failed" in actions(app)


def test_backup_code_logs_in_once(app, client, auth):
    clock = install_clock(app)
    auth.as_role("regular", username="bea")
    page = client.get("/account/mfa/setup").get_data(as_text=True)
    secret = SECRET_RE.search(page).group(1)
    shown = post_code(client, "/account/mfa/setup", code_at(secret, clock))
    backup = CODE_RE.findall(shown.get_data(as_text=True))[3]
    form_post(client, "/logout", {})
    login(client, "bea")
    assert second_step(client, backup.upper()).status_code == 302
    assert client.get("/workspaces/").status_code == 200
    assert "mfa_backup_code_used" in actions(app)
    form_post(client, "/logout", {})
    login(client, "bea")
    again = second_step(client, backup)
    assert again.status_code == 200 and "not valid" in again.get_data(as_text=True)


def test_admin_role_is_forced_through_setup_before_anything_else(app, client):
    app.config["MFA_REQUIRED_ROLES"] = "admin,qvp"
    clock = install_clock(app)
    with app.app_context():
        make_user("ada", role="admin")
    response = login(client, "ada", next_url="/admin/users")
    assert response.headers["Location"] == "/login/mfa/setup"
    assert "/login" in client.get("/admin/").headers["Location"]
    page = client.get("/login/mfa/setup").get_data(as_text=True)
    assert "requires two-factor" in page
    secret = SECRET_RE.search(page).group(1)
    assert post_code(client, "/login/mfa/setup", "999999").status_code == 200
    assert "/login" in client.get("/admin/").headers["Location"]
    done = post_code(client, "/login/mfa/setup", code_at(secret, clock))
    body = done.get_data(as_text=True)
    assert len(CODE_RE.findall(body)) == 10 and 'href="/admin/users"' in body
    assert client.get("/admin/").status_code == 200
    assert get_user(app, "ada").mfa_enabled
    # MFA cannot be turned off while the role requires it.
    clock.advance(seconds=30)
    form = {"password": PASSWORD, "code": code_at(secret, clock)}
    form_post(client, "/account/mfa/disable", form, page="/account/")
    assert get_user(app, "ada").mfa_enabled


def test_admin_can_require_mfa_for_regular_users(app, client, auth):
    auth.as_role("admin", username="boss")
    policy = {"admin": "required", "qvp": "optional", "regular": "required"}
    form_post(client, "/admin/security/mfa-policy", policy, page="/admin/security/")
    with app.app_context():
        policies = {row.role: row.mfa_required for row in db.session.scalars(select(RolePolicy))}
        make_user("reg")
    assert policies == {"admin": True, "qvp": False, "regular": True}
    assert "mfa_policy_changed" in actions(app)
    form_post(client, "/logout", {})
    assert login(client, "reg").headers["Location"] == "/login/mfa/setup"


def test_disabling_needs_password_and_code(app, client, auth):
    clock = install_clock(app)
    auth.as_role("regular", username="dan")
    secret = enrol(app, "dan")
    form = {"password": "wrong password!", "code": code_at(secret, clock)}
    bad = form_post(client, "/account/mfa/disable", form, page="/account/")
    assert bad.status_code == 302 and get_user(app, "dan").mfa_enabled
    form_post(client, "/account/mfa/disable", {"password": PASSWORD, "code": "000000"}, page="/account/")
    assert get_user(app, "dan").mfa_enabled
    form = {"password": PASSWORD, "code": code_at(secret, clock)}
    form_post(client, "/account/mfa/disable", form, page="/account/")
    user = get_user(app, "dan")
    assert not user.mfa_enabled and user.mfa_secret is None
    assert "mfa_disabled" in actions(app)


def test_wrong_codes_lock_the_login_and_the_password_does_not_reset_it(app, client):
    clock = install_clock(app)
    with app.app_context():
        make_user("gus")
    secret = enrol(app, "gus")
    login(client, "gus")
    for _ in range(4):
        second_step(client, "000000")
    login(client, "gus")  # the right password again does not wipe the count
    second_step(client, "000000")
    locked = login(client, "gus")
    assert locked.status_code == 200 and "locked until" in locked.get_data(as_text=True)
    clock.advance(hours=2)
    login(client, "gus")
    assert second_step(client, code_at(secret, clock)).status_code == 302


def test_regenerated_backup_codes_replace_the_old_ones(app, client, auth):
    clock = install_clock(app)
    auth.as_role("regular", username="reo")
    page = client.get("/account/mfa/setup").get_data(as_text=True)
    secret = SECRET_RE.search(page).group(1)
    shown = post_code(client, "/account/mfa/setup", code_at(secret, clock))
    old = CODE_RE.findall(shown.get_data(as_text=True))
    wrong = {"password": "not my password"}
    refused = form_post(client, "/account/mfa/backup-codes", wrong, page="/account/")
    assert refused.status_code == 302
    new_page = form_post(client, "/account/mfa/backup-codes", {"password": PASSWORD}, page="/account/")
    new = CODE_RE.findall(new_page.get_data(as_text=True))
    assert len(new) == 10 and not set(new) & set(old)
    assert "mfa_backup_codes_regenerated" in actions(app)
    form_post(client, "/logout", {})
    login(client, "reo")
    assert second_step(client, old[0]).status_code == 200  # the old codes are gone
    assert second_step(client, new[0]).status_code == 302


def test_the_half_logged_in_state_expires(app, client):
    clock = install_clock(app)
    with app.app_context():
        make_user("eve")
    secret = enrol(app, "eve")
    login(client, "eve")
    clock.advance(minutes=6)
    assert client.get("/login/mfa").headers["Location"] == "/login"
    stale = form_post(client, "/login/mfa", {"code": code_at(secret, clock)}, page="/login")
    assert stale.headers["Location"] == "/login"
    assert "/login" in client.get("/workspaces/").headers["Location"]


def test_the_login_mfa_pages_send_a_logged_in_person_home_and_keep_them_logged_in(app, client):
    app.config["MFA_REQUIRED_ROLES"] = "admin,qvp"
    clock = install_clock(app)
    with app.app_context():
        make_user("ada", role="admin")
        make_user("tom")
    secret = enrol(app, "tom")
    login(client, "ada")
    page = client.get("/login/mfa/setup").get_data(as_text=True)
    post_code(client, "/login/mfa/setup", code_at(SECRET_RE.search(page).group(1), clock))
    # The back button after the backup-codes page, then a reload of the code page.
    for path in ("/login/mfa/setup", "/login/mfa"):
        assert client.get(path).headers["Location"] == "/admin/", path
        assert client.get("/admin/").status_code == 200, path
    other = app.test_client()
    login(other, "tom")
    assert second_step(other, code_at(secret, clock)).headers["Location"] == "/workspaces/"
    for path in ("/login/mfa", "/login/mfa/setup"):
        assert other.get(path).headers["Location"] == "/workspaces/", path
        assert other.get("/workspaces/").status_code == 200, path
