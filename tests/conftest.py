"""Shared fixtures.

- `app`: the Slipway app on the test database (`TEST_DATABASE_URL`, SQLite by default,
  MariaDB under `make test`), schema built once per run by the real migrations, every
  table emptied after each test.
- `client`: a test client; CSRF stays on, so use `form_post` / `csrf_token`.
- `runner`: the Flask CLI runner.
- `auth`: `auth.login(username)`, `auth.as_role("admin")` log the client in through the form.
- `require_service(name, ok)`: skip when a real service is missing, but fail under CI=true.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner
from flask_migrate import upgrade
from sqlalchemy import MetaData, create_engine

from app import create_app
from app.extensions import db
from app.models import User
from config import TestingConfig
from tests.builders import PASSWORD, make_user

CSRF_RE = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"|name="csrf_token" value="([^"]+)"')
IN_CI = os.environ.get("CI", "").lower() == "true"


def require_service(name: str, available: bool) -> None:
    """Skip a test whose real service is missing; under CI a missing service fails instead."""
    if available:
        return
    if IN_CI:
        pytest.fail(f"{name} is required under CI=true but is not available")
    pytest.skip(f"{name} is not available")


def _drop_everything(url: str) -> None:
    engine = create_engine(url)
    meta = MetaData()
    meta.reflect(engine)
    meta.drop_all(engine)
    engine.dispose()


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A fresh database upgraded to head by the migrations, once per test run."""
    url = os.environ.get("TEST_DATABASE_URL") or (
        f"sqlite:///{tmp_path_factory.mktemp('db') / 'slipway-test.db'}"
    )
    _drop_everything(url)
    data_dir = tmp_path_factory.mktemp("migrate")
    app = create_app(
        TestingConfig,
        {"SQLALCHEMY_DATABASE_URI": url, "DATA_DIR": data_dir, "WORKSPACE_ROOT": data_dir / "ws"},
    )
    with app.app_context():
        upgrade()
        db.engine.dispose()
    return url


def build_app(database_url: str, data_dir: Path, **overrides: object) -> Flask:
    """A testing app on `database_url` with its files under `data_dir`."""
    settings = {
        "SQLALCHEMY_DATABASE_URI": database_url,
        "DATA_DIR": data_dir,
        "WORKSPACE_ROOT": data_dir / "workspaces",
        "RATELIMIT_ENABLED": False,
        # Password-only logins for the suite; tests/test_mfa.py covers forced MFA for admin and qvp.
        "MFA_REQUIRED_ROLES": "",
    }
    settings.update(overrides)
    return create_app(TestingConfig, settings)


@pytest.fixture
def app(database_url: str, tmp_path: Path) -> Iterator[Flask]:
    """The app, with every table emptied afterwards.

    No app context stays pushed during the test: requests must each get their own,
    as in production, so tests wrap database work in `with app.app_context():`.
    """
    application = build_app(database_url, tmp_path)
    yield application
    with application.app_context():
        for table in reversed(db.metadata.sorted_tables):
            db.session.execute(table.delete())
        db.session.commit()
        db.engine.dispose()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    """A test client for `app`."""
    return app.test_client()


@pytest.fixture
def runner(app: Flask) -> FlaskCliRunner:
    """A CLI runner for `app`."""
    return app.test_cli_runner()


def csrf_token(client: FlaskClient, url: str = "/") -> str:
    """Read the CSRF token from a page's form, as a browser would."""
    html = client.get(url, follow_redirects=True).get_data(as_text=True)
    match = CSRF_RE.search(html)
    assert match, f"no csrf_token on {url}"
    return match.group(1) or match.group(2)


def form_post(client: FlaskClient, url: str, data: dict, page: str | None = None, **kw: object):
    """POST a form to `url` with the CSRF token read from `page` (default: wherever / leads)."""
    token = csrf_token(client, page or "/")
    return client.post(url, data={**data, "csrf_token": token}, **kw)


class AuthActions:
    """Log the test client in and out through the real forms."""

    def __init__(self, client: FlaskClient) -> None:
        self.client = client
        self.app = client.application

    def login(self, login: str, password: str = PASSWORD):
        """Submit the login form."""
        return form_post(self.client, "/login", {"username": login, "password": password})

    def as_role(self, role: str, **kwargs: object) -> User:
        """Create an approved user with `role` and log in as them."""
        with self.app.app_context():
            user = make_user(role=role, **kwargs)
            db.session.refresh(user)
            db.session.expunge(user)
        response = self.login(user.username)
        assert response.status_code == 302, response.get_data(as_text=True)
        return user

    def logout(self):
        """Submit the logout button."""
        return form_post(self.client, "/logout", {})


@pytest.fixture
def auth(client: FlaskClient) -> AuthActions:
    """Login helpers bound to `client`."""
    return AuthActions(client)
