"""Rate limits answer 429 with Retry-After, on memory storage and on a real Redis."""

from __future__ import annotations

import socket
import uuid

import pytest
import redis

from app.extensions import db, limiter
from tests.builders import PASSWORD, make_user
from tests.support import build_app, csrf_token, require_service

REDIS_URL = "redis://127.0.0.1:6379/0"


def limited_app(database_url, tmp_path, **overrides):
    settings = {
        "RATELIMIT_ENABLED": True,
        "RATELIMIT_LOGIN": "3 per minute",
        "RATELIMIT_API": "2 per minute",
        "RATELIMIT_STORAGE_URI": "memory://",
        **overrides,
    }
    return build_app(database_url, tmp_path, **settings)


def hammer_login(app):
    client = app.test_client()
    token = csrf_token(client, "/login")
    return [
        client.post("/login", data={"username": "nobody", "password": "wrong password", "csrf_token": token})
        for _ in range(4)
    ]


def check_limited(app):
    responses = hammer_login(app)
    assert [r.status_code for r in responses] == [200, 200, 200, 429]
    limited = responses[-1]
    assert int(limited.headers["Retry-After"]) > 0
    assert "Too many attempts" in limited.get_data(as_text=True)
    api = app.test_client()
    answers = [api.get("/api/v1/") for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 429]
    assert answers[-1].get_json()["success"] is False and "Retry-After" in answers[-1].headers


def test_login_and_api_limits_with_memory_storage(database_url, tmp_path, app):
    check_limited(limited_app(database_url, tmp_path))


def test_limits_are_per_client_address(database_url, tmp_path, app):
    limited = limited_app(database_url, tmp_path)
    first = limited.test_client()
    token = csrf_token(first, "/login")
    form = {"username": "x", "password": "wrong password", "csrf_token": token}
    assert [first.post("/login", data=form).status_code for _ in range(4)] == [200, 200, 200, 429]
    other = limited.test_client()
    other.environ_base["REMOTE_ADDR"] = "198.51.100.9"
    token = csrf_token(other, "/login")
    response = other.post("/login", data={**form, "csrf_token": token})
    assert response.status_code == 200
    assert first.post("/login", data=form).status_code == 429  # the first address stays limited


def test_mfa_and_password_change_are_limited(database_url, tmp_path, app):
    limited = limited_app(database_url, tmp_path, RATELIMIT_PASSWORD="1 per minute")
    with limited.app_context():
        make_user("pat")
        db.session.commit()
    client = limited.test_client()
    token = csrf_token(client, "/login")
    client.post("/login", data={"username": "pat", "password": PASSWORD, "csrf_token": token})
    token = csrf_token(client, "/account/password")
    form = {"current_password": "wrong", "new_password": "x", "new_password_confirm": "x"}
    form["csrf_token"] = token
    assert client.post("/account/password", data=form).status_code == 200
    assert client.post("/account/password", data=form).status_code == 429


@pytest.mark.integration
def test_limits_with_a_real_redis(database_url, tmp_path, app, monkeypatch):
    server = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1)
    try:
        available = bool(server.ping())
    except redis.RedisError:
        available = False
    require_service("redis", available)
    prefix = f"slipway-test-{uuid.uuid4().hex[:12]}"
    # flask-limiter keeps the first app's prefix on the shared extension; let this app set its own.
    monkeypatch.setattr(limiter, "_key_prefix", "")
    try:
        limited = limited_app(
            database_url, tmp_path, RATELIMIT_STORAGE_URI=REDIS_URL, RATELIMIT_KEY_PREFIX=prefix
        )
        check_limited(limited)
        keys = list(server.scan_iter(match=f"*{prefix}*", count=1000))
        assert keys, "the limiter stored nothing in Redis"
    finally:
        for key in server.scan_iter(match=f"*{prefix}*", count=1000):
            server.delete(key)
        server.close()


def test_logins_survive_a_dead_redis_with_limits_in_memory(database_url, tmp_path, app):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = f"redis://127.0.0.1:{sock.getsockname()[1]}/0"  # bound, never listening: refused
    check_limited(limited_app(database_url, tmp_path, RATELIMIT_STORAGE_URI=dead))
