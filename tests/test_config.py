"""Configuration parsing and start-up validation."""

from __future__ import annotations

import pytest

from app import create_app
from app.settings_checks import validate
from config import Config, ConfigError, DevelopmentConfig, TestingConfig


def test_production_reports_every_problem_at_once(tmp_path):
    env = {
        "SECRET_KEY": "short",
        "SLIPWAY_LISTEN_PORT": "99999",
        "SLIPWAY_LISTEN_HOST": "not-an-ip",
        "SLIPWAY_BCRYPT_ROUNDS": "many",
        "SLIPWAY_DATA_DIR": str(tmp_path),
    }
    settings, problems = Config.load(env)
    problems += validate(settings)
    text = "\n".join(problems)
    assert "DATABASE_URL is not set" in text
    assert "32+ characters" in text
    assert "port number" in text
    assert "IP address" in text
    assert "SLIPWAY_BCRYPT_ROUNDS must be an integer" in text


def test_unwritable_directory_is_reported(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    settings, _ = DevelopmentConfig.load({"SLIPWAY_DATA_DIR": str(blocker / "sub")})
    assert any("SLIPWAY_DATA_DIR" in p for p in validate(settings))


def test_create_app_stops_with_all_problems(monkeypatch, tmp_path):
    monkeypatch.setenv("SLIPWAY_LISTEN_PORT", "0")
    monkeypatch.setenv("SLIPWAY_SESSION_IDLE_MINUTES", "abc")
    with pytest.raises(ConfigError) as info:
        create_app(TestingConfig, {"DATA_DIR": tmp_path, "WORKSPACE_ROOT": tmp_path})
    message = str(info.value)
    assert "SLIPWAY_LISTEN_PORT" in message and "SLIPWAY_SESSION_IDLE_MINUTES" in message


def test_development_defaults_are_valid(tmp_path):
    settings, problems = DevelopmentConfig.load({"SLIPWAY_DATA_DIR": str(tmp_path)})
    assert problems == [] and validate(settings) == []
    assert settings["SQLALCHEMY_DATABASE_URI"].startswith("sqlite:///")
    assert settings["SESSION_COOKIE_NAME"] == "slipway"


def test_https_uses_host_only_secure_cookie(tmp_path):
    settings, _ = DevelopmentConfig.load({"SLIPWAY_HTTPS": "true", "SLIPWAY_DATA_DIR": str(tmp_path)})
    assert settings["SESSION_COOKIE_NAME"] == "__Host-slipway"
    assert settings["SESSION_COOKIE_SECURE"] is True


@pytest.mark.parametrize("raw", ["", "none", " NONE "])
def test_mfa_required_roles_explicitly_empty_means_no_role(tmp_path, raw):
    settings, problems = Config.load({"SLIPWAY_MFA_REQUIRED_ROLES": raw, "SLIPWAY_DATA_DIR": str(tmp_path)})
    assert problems == []
    assert settings["MFA_REQUIRED_ROLES"] == ""


def test_mfa_required_roles_unset_takes_the_default_and_lists_are_kept(tmp_path):
    unset, _ = Config.load({"SLIPWAY_DATA_DIR": str(tmp_path)})
    assert unset["MFA_REQUIRED_ROLES"] == "admin,qvp"
    listed, _ = Config.load({"SLIPWAY_MFA_REQUIRED_ROLES": "admin", "SLIPWAY_DATA_DIR": str(tmp_path)})
    assert listed["MFA_REQUIRED_ROLES"] == "admin"


def _mariadb_pool_size(tmp_path, monkeypatch, **env: str) -> int:
    """The connection pool a MariaDB-backed app would use (nothing connects: the pool opens lazily)."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    from app.extensions import db

    app = create_app(TestingConfig, {"SQLALCHEMY_DATABASE_URI": "mysql+pymysql://slipway:x@127.0.0.1:9/none",
                                     "DATA_DIR": tmp_path, "WORKSPACE_ROOT": tmp_path})
    with app.app_context():
        return db.engine.pool.size()


def test_the_database_pool_holds_a_connection_for_every_gunicorn_thread(tmp_path, monkeypatch):
    # gunicorn.conf.py runs 16 threads per worker by default; each request holds a connection
    # while the analytics flusher writes with one more: fewer made busy threads wait 30 s, then 503.
    monkeypatch.delenv("SLIPWAY_GUNICORN_THREADS", raising=False)
    monkeypatch.delenv("SLIPWAY_DATABASE_POOL_SIZE", raising=False)
    assert _mariadb_pool_size(tmp_path, monkeypatch) >= 16 + 1
    assert _mariadb_pool_size(tmp_path, monkeypatch, SLIPWAY_GUNICORN_THREADS="32") >= 32 + 1
    assert _mariadb_pool_size(tmp_path, monkeypatch, SLIPWAY_DATABASE_POOL_SIZE="7") == 7


def test_a_database_pool_of_zero_is_refused(monkeypatch, tmp_path):
    monkeypatch.setenv("SLIPWAY_DATABASE_POOL_SIZE", "0")
    with pytest.raises(ConfigError, match="SLIPWAY_DATABASE_POOL_SIZE must be positive"):
        create_app(TestingConfig, {"DATA_DIR": tmp_path, "WORKSPACE_ROOT": tmp_path})
