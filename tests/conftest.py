"""Shared fixtures.

- `app`: the Slipway app on the test database (`TEST_DATABASE_URL`, SQLite by default,
  MariaDB under `make test`), schema built once per run by the real migrations, every
  table emptied after each test.
- `client`: a test client; CSRF stays on, so use `form_post` / `csrf_token`.
- `runner`: the Flask CLI runner.
- `auth`: `auth.login(username)`, `auth.as_role("admin")` log the client in through the form.

Helpers (build_app, csrf_token, form_post, AuthActions, require_service, IN_CI) live in
tests/support.py: test modules import them from there, never from this file.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner
from flask_migrate import upgrade
from sqlalchemy import MetaData, create_engine

from app import create_app
from app.extensions import db
from config import TestingConfig
from tests.support import AuthActions, build_app


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


@pytest.fixture
def auth(client: FlaskClient) -> AuthActions:
    """Login helpers bound to `client`."""
    return AuthActions(client)
