"""API keys: a cap per user and a creation rate limit; revoked when an admin ends, suspends or deletes
the user, and on request at a password change (own or an admin's reset)."""

from __future__ import annotations

from sqlalchemy import func, select

from app.extensions import db
from app.models import ApiKey
from tests.builders import PASSWORD, make_user
from tests.support import KEY_RE, bearer, build_app, create_key, csrf_token, form_post

NEW_PASSWORD = "a fresh and quite long passphrase"


def key_count(app) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count(ApiKey.id)))


def works(app, key) -> bool:
    return app.test_client().get("/api/v1/me", headers=bearer(key)).status_code == 200


def test_creation_stops_at_the_cap_with_a_clear_message(app, client, auth):
    app.config["API_KEYS_MAX"] = 2
    auth.as_role("regular")
    first, second = create_key(client, "one"), create_key(client, "two")
    assert first and second
    form = {"name": "three", "scope": "read", "expires_on": ""}
    page = form_post(client, "/account/api-keys", form, page="/account/api-keys").get_data(as_text=True)
    assert "already have 2 active API keys" in page and KEY_RE.search(page) is None
    assert key_count(app) == 2
    with app.app_context():
        key_id = db.session.scalar(select(ApiKey.id).where(ApiKey.name == "one"))
    token = csrf_token(client, "/account/api-keys")
    client.post(f"/account/api-keys/{key_id}/revoke", data={"csrf_token": token})
    assert create_key(client, "three") and key_count(app) == 3  # a revoked key no longer counts


def test_creating_keys_is_rate_limited(database_url, tmp_path, app):
    limited = build_app(database_url, tmp_path, RATELIMIT_ENABLED=True, RATELIMIT_STORAGE_URI="memory://",
                        RATELIMIT_API_KEYS="2 per minute", RATELIMIT_LOGIN="100 per minute")
    with limited.app_context():
        make_user("rita")
    client = limited.test_client()
    form_post(client, "/login", {"username": "rita", "password": PASSWORD})
    token = csrf_token(client, "/account/api-keys")
    statuses = [client.post("/account/api-keys", data={"name": f"k{i}", "scope": "read", "csrf_token": token})
                .status_code for i in range(3)]
    assert statuses == [200, 200, 429]
    assert client.get("/account/api-keys").status_code == 200  # only creation is limited
    assert key_count(limited) == 2


def _user_with_key(app, username="kai"):
    client = app.test_client()
    with app.app_context():
        uid = make_user(username).id
    form_post(client, "/login", {"username": username, "password": PASSWORD})
    key = create_key(client)
    assert works(app, key)
    return uid, client, key


def test_admin_ending_sessions_revokes_the_keys(app, client, auth):
    uid, _, key = _user_with_key(app)
    auth.as_role("admin")
    page = form_post(client, f"/admin/security/users/{uid}/end-sessions", {}, follow_redirects=True)
    assert "revoked 1 API key" in page.get_data(as_text=True)
    assert not works(app, key)


def test_admin_deleting_the_user_ends_the_keys(app, client, auth):
    uid, _, key = _user_with_key(app)
    auth.as_role("admin")
    form_post(client, f"/admin/users/{uid}/delete", {})
    assert app.test_client().get("/api/v1/me", headers=bearer(key)).status_code == 401


def test_own_password_change_offers_to_revoke_and_says_how_many(app):
    _, client, key = _user_with_key(app)
    page = client.get("/account/password").get_data(as_text=True)
    assert "Also revoke my API keys (1 active)" in page
    form = {"current_password": PASSWORD, "new_password": NEW_PASSWORD, "new_password_confirm": NEW_PASSWORD}
    form_post(client, "/account/password", form, page="/account/password")
    assert works(app, key)  # unchecked: the keys stay
    third = "yet another long passphrase"
    form = {"current_password": NEW_PASSWORD, "new_password": third, "new_password_confirm": third,
            "revoke_api_keys": "y"}
    done = form_post(client, "/account/password", form, page="/account/password", follow_redirects=True)
    assert "1 API key(s) revoked" in done.get_data(as_text=True)
    assert not works(app, key)


def test_admin_reset_offers_to_revoke_and_says_how_many(app, client, auth):
    uid, _, key = _user_with_key(app)
    auth.as_role("admin")
    assert "Also revoke their API keys (1 active)" in client.get(f"/admin/users/{uid}").get_data(as_text=True)
    form_post(client, f"/admin/users/{uid}/password", {"password": NEW_PASSWORD, "revoke_api_keys": "y"})
    assert not works(app, key)
