"""Response hardening, open redirects, the real client IP behind trusted proxies, config checks."""

from __future__ import annotations

import re
from pathlib import Path

from sqlalchemy import select

from app.extensions import db
from app.models import LoginAttempt
from app.settings_checks import validate
from config import TestingConfig
from tests.builders import PASSWORD, make_user
from tests.security_helpers import code_at, enrol, install_clock
from tests.support import build_app, csrf_token, form_post

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"


def test_security_headers_on_pages_and_api(client):
    for url in ("/login", "/api/v1/", "/no-such-page"):
        headers = client.get(url).headers
        csp = headers["Content-Security-Policy"]
        script_src = re.search(r"script-src ([^;]+)", csp).group(1)
        assert "'self'" in script_src and "unsafe-" not in script_src
        assert "frame-ancestors 'none'" in csp
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["Referrer-Policy"] in ("same-origin", "no-referrer", "strict-origin-when-cross-origin")
        assert "Strict-Transport-Security" not in headers  # development is plain HTTP
        assert "Server" not in headers and "Werkzeug" not in str(headers)


def test_hsts_in_https_mode(database_url, tmp_path, app):
    https = build_app(database_url, tmp_path, HTTPS=True, SESSION_COOKIE_SECURE=True)
    response = https.test_client().get("/login", base_url="https://localhost")
    assert response.headers["Strict-Transport-Security"].startswith("max-age=")


def test_my_templates_have_no_inline_scripts_or_styles():
    for folder in ("auth", "account"):
        for path in (TEMPLATES / folder).glob("*.html"):
            text = path.read_text()
            assert "style=" not in text and not re.search(r"<script(?![^>]*\bsrc=)", text), path
    for path in TEMPLATES.glob("admin/security*.html"):
        assert "style=" not in path.read_text() and "<script" not in path.read_text(), path


EVIL = (
    "//evil.example",
    "https://evil.example/x",
    "/\\evil.example",
    "/\t/evil.example",
    "http:/evil.example",
    "javascript:alert(1)",
)


def test_open_redirects_stay_on_the_site(app, client):
    with app.app_context():
        make_user("otto")
    for target in EVIL:
        response = form_post(client, f"/login?next={target}", {"username": "otto", "password": PASSWORD},
                             page="/login")
        assert response.headers["Location"] == "/workspaces/", target
        form_post(client, "/logout", {})
    good = form_post(client, "/login?next=/account/sessions", {"username": "otto", "password": PASSWORD},
                     page="/login")
    assert good.headers["Location"] == "/account/sessions"


def test_open_redirects_stay_on_the_site_through_the_mfa_step(app, client):
    clock = install_clock(app)
    with app.app_context():
        make_user("mona")
    secret = enrol(app, "mona")
    for target in EVIL:
        form_post(client, f"/login?next={target}", {"username": "mona", "password": PASSWORD}, page="/login")
        clock.advance(seconds=30)
        done = form_post(client, "/login/mfa", {"code": code_at(secret, clock)}, page="/login/mfa")
        assert done.headers["Location"] == "/workspaces/", target
        form_post(client, "/logout", {})


def proxied_app(database_url, tmp_path):
    return build_app(database_url, tmp_path, TRUSTED_PROXY_COUNT=1, TRUSTED_PROXIES="127.0.0.1,10.0.0.0/8")


def failed_login_from(app, peer, forwarded=None):
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = peer
    if forwarded:
        client.environ_base["HTTP_X_FORWARDED_FOR"] = forwarded
    token = csrf_token(client, "/login")
    client.post("/login", data={"username": "nobody", "password": "wrong password", "csrf_token": token})


def recorded_ips(app):
    with app.app_context():
        return list(db.session.scalars(select(LoginAttempt.ip_address).order_by(LoginAttempt.id)))


def test_forwarded_for_is_trusted_only_from_configured_proxies(database_url, tmp_path, app):
    proxied = proxied_app(database_url, tmp_path)
    failed_login_from(proxied, "127.0.0.1", "203.0.113.5")  # nginx on loopback names the client
    failed_login_from(proxied, "10.1.2.3", "6.6.6.6, 203.0.113.6")  # a forged entry before nginx's
    failed_login_from(proxied, "198.51.100.1", "203.0.113.99")  # a client talking directly forges nothing
    assert recorded_ips(proxied) == ["203.0.113.5", "203.0.113.6", "198.51.100.1"]


def test_without_proxies_configured_the_header_is_ignored(app):
    failed_login_from(app, "127.0.0.1", "203.0.113.5")
    assert recorded_ips(app) == ["127.0.0.1"]


def test_config_rejects_bad_security_settings(tmp_path):
    settings, problems = TestingConfig.load(
        {
            "SLIPWAY_TRUSTED_PROXIES": "127.0.0.1,not-an-ip",
            "SLIPWAY_MFA_REQUIRED_ROLES": "admin,wizard",
            "SLIPWAY_RATELIMIT_LOGIN": "lots",
            "SLIPWAY_IP_BAN_FAILURES": "0",
            "SLIPWAY_DATA_DIR": str(tmp_path),
        }
    )
    found = "\n".join(problems + validate(settings))
    for expected in ("SLIPWAY_TRUSTED_PROXIES", "wizard", "RATELIMIT_LOGIN", "SLIPWAY_IP_BAN_FAILURES"):
        assert expected in found
