"""Faults inside the web app: an unexpected error, the database refusing connections, a hung database.

The database is taken away by making every new connection fail (or hang) after the pool is
emptied, so the real request path (session check, error page, security headers) meets it.
"""

from __future__ import annotations

import logging
import threading
import time

import pytest
from sqlalchemy import event

from app.extensions import db
from tests.support import AuthActions


class DatabaseDown:
    """Every new connection of the app's engine fails (or hangs `hang` seconds, then fails)."""

    def __init__(self, app, hang: float = 0.0) -> None:
        self.app, self.hang = app, hang
        self.released = threading.Event()

    def _connect(self, dialect, _record, _cargs, _cparams):  # type: ignore[no-untyped-def]
        if self.hang:
            self.released.wait(self.hang)
        raise dialect.dbapi.OperationalError(2003, "Can't connect to database server on 'db.internal' (111)")

    def __enter__(self) -> DatabaseDown:
        with self.app.app_context():
            self.engine = db.engine
        self.engine.dispose()
        event.listen(self.engine, "do_connect", self._connect)
        return self

    def __exit__(self, *exc: object) -> None:
        self.released.set()
        event.remove(self.engine, "do_connect", self._connect)
        self.engine.dispose()


def test_a_logged_in_page_during_an_outage_answers_503_with_the_product_page(app, client):
    AuthActions(client).as_role("regular")
    with DatabaseDown(app):
        started = time.monotonic()
        response = client.get("/workspaces/")
        elapsed = time.monotonic() - started
    body = response.get_data(as_text=True)
    assert response.status_code == 503, body
    assert elapsed < 2
    assert "cannot reach its database" in body and "· Slipway</title>" in body
    assert "Traceback" not in body and "db.internal" not in body
    assert response.headers["Content-Security-Policy"].startswith("default-src 'self'")
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Retry-After"] == "5"
    request_id = response.headers["X-Request-Id"]
    assert f"Reference: {request_id}." in body
    # and the site recovers by itself once the database is back
    assert client.get("/workspaces/").status_code == 200


def test_the_api_during_an_outage_answers_503_json(app, client):
    with DatabaseDown(app):
        response = client.get("/api/v1/me", headers={"Authorization": "Bearer slw_x"})
    assert response.status_code == 503
    assert response.get_json()["success"] is False
    assert "cannot reach its database" in response.get_json()["message"]


def test_an_unexpected_error_is_logged_with_traceback_and_request_id(app, client, caplog):
    def explode() -> str:
        raise RuntimeError("kaboom in a view")

    app.add_url_rule("/test-explode", "test_explode", explode)
    with caplog.at_level(logging.ERROR):
        response = client.get("/test-explode")
    body = response.get_data(as_text=True)
    request_id = response.headers["X-Request-Id"]
    assert response.status_code == 500
    assert f"Reference: {request_id}." in body and "kaboom" not in body
    assert response.headers["X-Frame-Options"] == "DENY"
    records = [r for r in caplog.records if request_id in r.getMessage()]
    assert len(records) == 1 and "/test-explode" in records[0].getMessage()
    assert records[0].exc_info and "kaboom in a view" in str(records[0].exc_info[1])


def test_request_ids_are_echoed_kept_when_well_formed_and_replaced_otherwise(client):
    first, second = client.get("/login"), client.get("/login")
    assert len(first.headers["X-Request-Id"]) == 16
    assert first.headers["X-Request-Id"] != second.headers["X-Request-Id"]
    kept = client.get("/login", headers={"X-Request-Id": "edge-4f2a9c01"})
    assert kept.headers["X-Request-Id"] == "edge-4f2a9c01"
    replaced = client.get("/login", headers={"X-Request-Id": "<script>alert(1)</script>"})
    assert len(replaced.headers["X-Request-Id"]) == 16 and "<" not in replaced.headers["X-Request-Id"]


def test_health_says_why_when_the_database_refuses(app, client):
    with DatabaseDown(app):
        response = client.get("/health")
    assert response.status_code == 503
    message = response.get_json()["message"]
    assert message.startswith("database unreachable (OperationalError 2003")
    assert "db.internal" not in message


@pytest.mark.parametrize("path", ["/health", "/health/ready"])
def test_health_answers_in_time_when_the_database_hangs(app, client, path):
    app.config["HEALTH_TIMEOUT_SECONDS"] = 0.5
    with DatabaseDown(app, hang=10):
        started = time.monotonic()
        response = client.get(path)
        elapsed = time.monotonic() - started
    assert response.status_code == 503
    assert elapsed < 2, elapsed
    if path == "/health":
        assert response.get_json()["message"] == "database did not answer within 0.5 s"


def test_a_connection_lost_when_the_request_ends_does_not_break_the_answer(app, client, monkeypatch, caplog):
    AuthActions(client).as_role("regular")
    with app.app_context():
        dialect = db.engine.dialect

    def lost(_connection):  # type: ignore[no-untyped-def]
        raise dialect.dbapi.OperationalError(2013, "Lost connection to server during query")

    monkeypatch.setattr(dialect, "do_rollback", lost)
    with caplog.at_level(logging.WARNING):
        response = client.get("/workspaces/")
    monkeypatch.undo()
    assert response.status_code == 200
    assert any("could not end the database session" in r.getMessage() for r in caplog.records)
    assert client.get("/workspaces/").status_code == 200
