"""API keys: shown once and stored hashed, scopes, expiry, revocation, last use; cookies get 401."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from app.extensions import db
from app.models import ApiKey
from tests.security_helpers import actions, install_clock
from tests.support import bearer, create_key, csrf_token


def test_key_is_shown_once_stored_hashed_and_authenticates_me(app, client, auth):
    install_clock(app)
    user = auth.as_role("regular", username="kim")
    key = create_key(client)
    assert key and key.startswith("slw_")
    with app.app_context():
        row = db.session.scalar(select(ApiKey))
        assert row.key_hash != key and key not in row.key_hash and row.prefix == key[:12]
        assert row.last_used_at is None
    listing = client.get("/account/api-keys").get_data(as_text=True)
    assert key not in listing and key[:12] in listing
    api = app.test_client()
    me = api.get("/api/v1/me", headers=bearer(key))
    assert me.status_code == 200
    assert me.get_json()["data"]["username"] == "kim" and me.get_json()["data"]["id"] == user.id
    with app.app_context():
        assert db.session.scalar(select(ApiKey)).last_used_at is not None
    assert "api_key_created" in actions(app)


def test_a_cookie_alone_gets_401_on_the_api(app, client, auth):
    auth.as_role("admin")
    response = client.get("/api/v1/me")
    assert response.status_code == 401 and response.get_json()["success"] is False
    assert client.post("/api/v1/keys/1/revoke").status_code == 401
    assert client.get("/api/v1/me", headers=bearer("slw_not-a-real-key")).status_code == 401


def test_read_key_cannot_write_write_key_can(app, client, auth):
    auth.as_role("regular")
    read_key = create_key(client, "reader", "read")
    write_key = create_key(client, "writer", "write")
    with app.app_context():
        read_id = db.session.scalar(select(ApiKey.id).where(ApiKey.name == "reader"))
    api = app.test_client()
    refused = api.post(f"/api/v1/keys/{read_id}/revoke", headers=bearer(read_key))
    assert refused.status_code == 403 and "read-only" in refused.get_json()["message"]
    assert api.get("/api/v1/me", headers=bearer(read_key)).status_code == 200
    assert api.post(f"/api/v1/keys/{read_id}/revoke", headers=bearer(write_key)).status_code == 200
    assert api.get("/api/v1/me", headers=bearer(read_key)).status_code == 401


def test_expired_and_revoked_keys_get_401(app, client, auth):
    clock = install_clock(app)
    auth.as_role("regular")
    tomorrow = (clock.current + timedelta(days=1)).date().isoformat()
    key = create_key(client, "short", "read", tomorrow)
    other = create_key(client, "other")
    assert create_key(client, "past", "read", "2000-01-01") is None  # refused, nothing created
    api = app.test_client()
    assert api.get("/api/v1/me", headers=bearer(key)).status_code == 200
    with app.app_context():
        other_id = db.session.scalar(select(ApiKey.id).where(ApiKey.name == "other"))
        assert db.session.scalar(select(ApiKey.id).where(ApiKey.name == "past")) is None
    token = csrf_token(client, "/account/api-keys")
    client.post(f"/account/api-keys/{other_id}/revoke", data={"csrf_token": token})
    assert api.get("/api/v1/me", headers=bearer(other)).status_code == 401
    assert "api_key_revoked" in actions(app)
    clock.advance(days=2)
    assert api.get("/api/v1/me", headers=bearer(key)).status_code == 401


def test_someone_elses_key_is_404(app, client, auth):
    auth.as_role("regular")
    create_key(client, "mine")
    with app.app_context():
        key_id = db.session.scalar(select(ApiKey.id))
    auth.logout()
    auth.as_role("regular")
    token = csrf_token(client, "/account/api-keys")
    assert client.post(f"/account/api-keys/{key_id}/revoke", data={"csrf_token": token}).status_code == 404
    write = create_key(client, "w", "write")
    assert app.test_client().post(f"/api/v1/keys/{key_id}/revoke", headers=bearer(write)).status_code == 404


def test_openapi_document_describes_me(client):
    document = client.get("/api/v1/openapi.json").get_json()
    assert document["openapi"].startswith("3.")
    assert "get" in document["paths"]["/me"]
    assert document["components"]["securitySchemes"]["apiKey"]["scheme"] == "bearer"
