"""Request analytics middleware and flusher: one row per request, written in batches, never blocking."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy
from flask import Flask
from sqlalchemy import func, select

import app.analytics.buffer as buffer_module
from app.analytics.middleware import buffer_for
from app.extensions import db
from app.models import RequestLog
from app.models.analytics import UNMATCHED_ROUTE
from tests.support import build_app

ROOT = Path(__file__).resolve().parents[1]


def _add_probe(application: Flask) -> None:
    """A tiny page with a converter in its rule, so the stored template can be told from the path."""
    application.add_url_rule("/probe/<int:n>", "probe", lambda n: f"probe {n}")


def _cleanup(application: Flask) -> None:
    buffer = buffer_for(application)
    if buffer is not None:
        buffer.stop()
    with application.app_context():
        for table in reversed(db.metadata.sorted_tables):
            db.session.execute(table.delete())
        db.session.commit()
        db.engine.dispose()


@pytest.fixture
def app(database_url: str, tmp_path: Path) -> Iterator[Flask]:
    """The app with analytics on and a fast flusher."""
    application = build_app(database_url, tmp_path, ANALYTICS_ENABLED=True, ANALYTICS_FLUSH_SECONDS=0.05)
    _add_probe(application)
    yield application
    _cleanup(application)


def _stored(application: Flask) -> list[RequestLog]:
    with application.app_context():
        rows = list(db.session.scalars(select(RequestLog).order_by(RequestLog.id)))
        db.session.expunge_all()
    return rows


def _count(application: Flask) -> int:
    with application.app_context():
        return db.session.scalar(select(func.count()).select_from(RequestLog))


def test_a_burst_is_stored_whole(app):
    """4 threads × 150 requests: exactly 600 rows arrive, none lost, none twice."""
    sent, errors = [0] * 4, []

    def worker(slot: int) -> None:
        client = app.test_client()
        for n in range(150):
            if client.get(f"/probe/{n}").status_code != 200:
                errors.append(n)
            sent[slot] += 1

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors
    deadline = time.monotonic() + 10
    while _count(app) < sum(sent) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sum(sent) == 600
    assert _count(app) == 600  # written by the flusher thread, not by a final flush
    buffer_for(app).stop()
    assert _count(app) == 600
    assert buffer_for(app).written == 600 and buffer_for(app).overflowed == 0


def test_rows_are_written_in_batches_by_the_flusher_not_the_request(app, monkeypatch):
    """While the flusher is stuck in the database, requests still finish; the buffer stays bounded."""
    app.config["ANALYTICS_BUFFER_MAX"] = 40
    buffer = buffer_for(app)
    buffer.max_rows = 40
    gate = threading.Event()
    entered = threading.Event()
    real_insert = sqlalchemy.insert

    def slow_insert(table):
        entered.set()
        gate.wait(30)
        return real_insert(table)

    monkeypatch.setattr(buffer_module, "insert", slow_insert)
    overflow_before = buffer_module.overflowed
    client = app.test_client()
    assert client.get("/probe/0").status_code == 200  # starts the flusher, which then blocks
    assert entered.wait(5), "the flusher never tried to write"
    done: list[float] = []

    def burst() -> None:
        for n in range(100):
            started = time.perf_counter()
            client.get(f"/probe/{n}")
            done.append(time.perf_counter() - started)

    sender = threading.Thread(target=burst)
    sender.start()
    sender.join(timeout=30)
    try:
        assert not sender.is_alive(), "requests waited on the blocked flusher"
        assert len(done) == 100
        assert len(buffer.rows) == 40  # bounded: the rest were dropped and counted
        assert buffer.overflowed == 60
        assert buffer_module.overflowed - overflow_before == 60
    finally:
        gate.set()
    buffer.stop()
    assert _count(app) == 41  # the first row plus the 40 the buffer held


def test_route_template_is_stored_never_the_path(app):
    """Converters, hostile characters, a 100 kB query string: only the template, nothing of the query."""
    client = app.test_client()
    hostile = "/probe/%00%27%22%3Cscript%3E;DROP%20TABLE%20users;--/../../etc/passwd"
    huge_query = "q=" + "A" * 100_000 + "&token=secretsecret"
    assert client.get("/probe/42").status_code == 200
    assert client.get(hostile).status_code == 404
    assert client.get(f"/probe/7?{huge_query}").status_code == 200
    assert client.post("/probe/8").status_code == 405
    buffer_for(app).stop()
    rows = _stored(app)
    assert [(r.method, r.route, r.status) for r in rows] == [
        ("GET", "/probe/<int:n>", 200),
        ("GET", UNMATCHED_ROUTE, 404),
        ("GET", "/probe/<int:n>", 200),
        ("POST", UNMATCHED_ROUTE, 405),
    ]
    for row in rows:
        stored = " ".join(str(value) for value in (row.method, row.route, row.client_addr))
        assert "AAAA" not in stored and "secret" not in stored and "script" not in stored
    assert rows[0].response_bytes == len(b"probe 42") and rows[0].duration_ms >= 0


def test_a_failing_view_is_recorded_as_a_server_error(app):
    """An unexpected exception becomes the 500 page, and its row says 500 under the view's template."""

    def broken(n: int) -> str:
        raise RuntimeError("boom")

    app.add_url_rule("/broken/<int:n>", "broken", broken)
    assert app.test_client().get("/broken/1").status_code == 500
    buffer_for(app).stop()
    assert [(r.route, r.status) for r in _stored(app)] == [("/broken/<int:n>", 500)]


def test_excluded_routes_are_not_recorded(app):
    """Static files and /health are excluded by default (SLIPWAY_ANALYTICS_EXCLUDE)."""
    client = app.test_client()
    assert client.get("/health").status_code == 200
    assert client.get("/static/css/app.css").status_code == 200
    assert client.get("/probe/1").status_code == 200
    buffer_for(app).stop()
    assert [r.route for r in _stored(app)] == ["/probe/<int:n>"]


def test_signed_in_user_id_is_stored(app, auth):
    """A signed-in page view carries the user's id; an anonymous one none."""
    user = auth.as_role("regular")
    assert auth.client.get("/account/").status_code == 200
    anonymous = app.test_client()
    anonymous.get("/probe/3")
    buffer_for(app).stop()
    rows = _stored(app)
    account = [r for r in rows if r.route == "/account/"]
    assert account and account[0].user_id == user.id
    assert [r.user_id for r in rows if r.route == "/probe/<int:n>"] == [None]
    assert any(r.route == "/login" and r.method == "POST" and r.user_id == user.id for r in rows)


@pytest.fixture
def proxied_app(database_url: str, tmp_path: Path) -> Iterator[Flask]:
    """Analytics on behind one trusted proxy hop (127.0.0.1)."""
    application = build_app(database_url, tmp_path, ANALYTICS_ENABLED=True, TRUSTED_PROXY_COUNT=1)
    _add_probe(application)
    yield application
    _cleanup(application)


def test_forged_forwarded_for_from_an_untrusted_peer_is_ignored(proxied_app):
    """X-Forwarded-For counts only from the trusted proxy; anyone else is stored as the peer it is."""
    client = proxied_app.test_client()
    client.get("/probe/1", headers={"X-Forwarded-For": "198.51.100.7"},
               environ_base={"REMOTE_ADDR": "203.0.113.9"})
    client.get("/probe/2", headers={"X-Forwarded-For": "198.51.100.7"},
               environ_base={"REMOTE_ADDR": "127.0.0.1"})
    buffer_for(proxied_app).stop()
    assert [r.client_addr for r in _stored(proxied_app)] == ["203.0.113.9", "198.51.100.7"]


def test_analytics_off_records_nothing(database_url, tmp_path):
    """SLIPWAY_ANALYTICS_ENABLED=false: no hooks, no buffer, no rows."""
    application = build_app(database_url, tmp_path, ANALYTICS_ENABLED=False)
    _add_probe(application)
    try:
        assert application.test_client().get("/probe/1").status_code == 200
        assert buffer_for(application) is None
        assert _count(application) == 0
    finally:
        _cleanup(application)


EXIT_SCRIPT = """
import sys
from pathlib import Path
sys.path.insert(0, {root!r})
from tests.support import build_app
app = build_app({url!r}, Path({tmp!r}), ANALYTICS_ENABLED=True, ANALYTICS_FLUSH_SECONDS=3600.0,
                ANALYTICS_BATCH_ROWS=100000)
app.add_url_rule("/probe/<int:n>", "probe", lambda n: "ok")
client = app.test_client()
for n in range(25):
    assert client.get(f"/probe/{{n}}").status_code == 200
print("sent", flush=True)
"""


def test_process_exit_flushes_the_buffer(app, database_url, tmp_path):
    """A process that exits with rows still buffered (no flush due for an hour) writes them on the way out."""
    script = EXIT_SCRIPT.format(root=str(ROOT), url=database_url, tmp=str(tmp_path / "child"))
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                            cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert "sent" in result.stdout
    assert _count(app) == 25
