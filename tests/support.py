"""Helpers any test may import: the app builder, CSRF-aware form posts, logins, service checks, a task drain.

tests/conftest.py turns some of these into fixtures; test modules import them from here,
never from conftest or from another test module.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import event, select

from app import create_app
from app.extensions import db
from app.models import Task, User
from app.worker.runner import Runner
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


def build_app(database_url: str, data_dir: Path, **overrides: object) -> Flask:
    """A testing app on `database_url` with its files under `data_dir`."""
    settings = {
        "SQLALCHEMY_DATABASE_URI": database_url,
        "DATA_DIR": data_dir,
        "WORKSPACE_ROOT": data_dir / "workspaces",
        "RATELIMIT_ENABLED": False,
        # Password-only logins for the suite; tests/test_mfa.py covers forced MFA for admin and qvp.
        "MFA_REQUIRED_ROLES": "",
        # The edge's key under the test's folder; pushes go to a closed port unless a test runs an edge.
        "EDGE_DIR": data_dir / "edge",
        "EDGE_ADMIN_URLS": "http://127.0.0.1:9",
    }
    settings.update(overrides)
    return create_app(TestingConfig, settings)


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


def run_tasks(app: Flask, timeout: float = 20) -> list[Task]:
    """Run queued tasks (and their retries) until none is queued or running; returns them all."""
    runner = Runner(app, worker_id="test-runner", concurrency=1)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runner.run_once()
        with app.app_context():
            open_ = db.session.scalar(select(Task.id).where(Task.state.in_(("queued", "running"))).limit(1))
        if open_ is None:
            break
        time.sleep(0.02)
    runner._pool.shutdown(wait=True)
    with app.app_context():
        tasks = db.session.scalars(select(Task).order_by(Task.id)).all()
        for task in tasks:
            db.session.expunge(task)
    return list(tasks)


KEY_RE = re.compile(r'class="api-key">(slw_[A-Za-z0-9_-]+)<')


def create_key(client: FlaskClient, name: str = "ci", scope: str = "read",
               expires_on: str = "") -> str | None:
    """Create an API key through /account/api-keys; returns the key shown once (None if refused)."""
    form = {"name": name, "scope": scope, "expires_on": expires_on}
    response = form_post(client, "/account/api-keys", form, page="/account/api-keys")
    match = KEY_RE.search(response.get_data(as_text=True))
    return match.group(1) if match else None


def bearer(key: str) -> dict[str, str]:
    """The Authorization header for an API key."""
    return {"Authorization": f"Bearer {key}"}


class StatementCounter:
    """Counts the SQL statements the engine sends while active."""

    def __init__(self, engine: object) -> None:
        self.engine = engine
        self.count = 0

    def _count(self, *args: object) -> None:
        self.count += 1

    def __enter__(self) -> StatementCounter:
        event.listen(self.engine, "before_cursor_execute", self._count)
        return self

    def __exit__(self, *exc: object) -> None:
        event.remove(self.engine, "before_cursor_execute", self._count)
