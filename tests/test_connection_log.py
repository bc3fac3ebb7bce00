"""Access-log lines into connection sessions and last activity; the connections page and its filters."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from app.connections.ingest import Garbled, ingest_available, ingest_round, parse_line
from app.connections.tailer import Tailer
from app.extensions import db
from app.models import ConnectionSession, ConnectionTail, Workspace
from app.timeutil import utcnow
from tests.builders import make_server, make_user, make_workspace
from tests.support import AuthActions

DOMAIN = "ws.localhost:8080"
GAP = timedelta(minutes=30)
T0 = 1_800_000_000.0  # 2027-01-15 08:00 UTC


def line(owner: str = "alice", app: str = "vscode", *, ts: float = T0, status: int = 200, user: str = "alice",
         request_time: float = 0.01, size: int = 100, uri: str = "/", client: str = "192.0.2.5") -> str:
    """One access-log line as the edge's log_format writes it."""
    return json.dumps({"ts": ts, "host": f"{owner}-{app}.ws.localhost", "status": f"{status:03d}",
                       "bytes": size, "received": 50, "request_time": request_time, "client": client,
                       "user": user, "uri": uri})


def _write(path: Path, *lines: str, end: str = "\n") -> None:
    with open(path, "a") as handle:
        handle.write("\n".join(lines) + end)


def _ingest(app: Flask, log: Path, tailer: Tailer | None = None) -> int:
    with app.app_context():
        return ingest_available(tailer or Tailer(log), DOMAIN, GAP)


def _sessions(app: Flask) -> list[tuple]:
    with app.app_context():
        rows = db.session.scalars(select(ConnectionSession).order_by(ConnectionSession.started_at))
        return [(r.owner, r.app, r.username, r.requests, r.websockets, r.bytes_sent) for r in rows]


def test_a_line_parses_into_who_what_when() -> None:
    hit = parse_line(line(status=101, request_time=600.0).encode(), DOMAIN)
    assert hit is not None
    assert (hit.owner, hit.app, hit.username, hit.client, hit.websocket) == ("alice", "vscode", "alice",
                                                                              "192.0.2.5", True)
    assert hit.end - hit.start == 600  # a WebSocket counts for its whole duration


def test_a_client_that_left_before_the_answer_is_a_request_with_an_error() -> None:
    hit = parse_line(line(status=0).encode(), DOMAIN)  # nginx writes "000"
    assert hit is not None and hit.status == 0


def test_lines_that_are_not_workspace_use_are_ignored_and_garbage_is_refused() -> None:
    assert parse_line(line(uri="/_slipway/login").encode(), DOMAIN) is None
    assert parse_line(json.dumps({**json.loads(line()), "host": "evil.example"}).encode(), DOMAIN) is None
    for bad in (b'{"ts": 1, "host": "alice-vscode.ws.localhost", "sta', b"\xff\xfe", b"[1,2]",
                json.dumps({**json.loads(line()), "status": "2000"}).encode(),
                json.dumps({**json.loads(line()), "status": True}).encode(),
                json.dumps({**json.loads(line()), "ts": -5}).encode()):
        try:
            parse_line(bad, DOMAIN)
        except Garbled:
            continue
        raise AssertionError(f"{bad!r} was accepted")


def test_hits_group_into_sessions_by_gap_and_set_last_activity(app: Flask, tmp_path: Path) -> None:
    with app.app_context():
        make_workspace(make_user("alice"), make_server())
    log = tmp_path / "access.json"
    _write(log, line(ts=T0), line(ts=T0 + 60), line(ts=T0 + 120, status=101, request_time=100.0),
           line(ts=T0 + 60 + GAP.total_seconds() + 600), line(app="jupyter", ts=T0 + 5),
           line(ts=T0 + 7, user="boss"))
    assert _ingest(app, log) == 6
    assert _sessions(app) == [
        ("alice", "vscode", "alice", 3, 1, 300),  # the WebSocket started at T0 + 20: same session
        ("alice", "jupyter", "alice", 1, 0, 100),
        ("alice", "vscode", "boss", 1, 0, 100),  # an admin let in: their own session
        ("alice", "vscode", "alice", 1, 0, 100),  # after a gap longer than GAP: a new session
    ]
    with app.app_context():
        ws = db.session.scalar(select(Workspace).where(Workspace.username == "alice"))
        assert ws.last_activity_at == _at(T0 + 60 + GAP.total_seconds() + 600)


def _at(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC).replace(tzinfo=None)


def test_a_websocket_counts_until_it_closed(app: Flask, tmp_path: Path) -> None:
    with app.app_context():
        make_workspace(make_user("alice"), make_server())
    log = tmp_path / "access.json"
    _write(log, line(ts=T0 + 3600, status=101, request_time=3590.0), line(ts=T0 + 30))
    _ingest(app, log)
    assert _sessions(app) == [("alice", "vscode", "alice", 2, 1, 200)]
    with app.app_context():
        assert db.session.scalar(select(Workspace.last_activity_at)) == _at(T0 + 3600)


def test_garbled_and_partial_lines_are_counted_skipped_and_finished_later(app: Flask, tmp_path: Path) -> None:
    log = tmp_path / "access.json"
    _write(log, line(ts=T0), "{not json", line(ts=T0 + 1), line(ts=T0 + 2)[:30], end="")
    tailer = Tailer(log)
    assert _ingest(app, log, tailer) == 3  # the unfinished last line waits
    rest = line(ts=T0 + 2)[30:]
    _write(log, rest)
    assert _ingest(app, log, tailer) == 1
    assert _sessions(app) == [("alice", "vscode", "alice", 3, 0, 300)]
    with app.app_context():
        cursor = db.session.get(ConnectionTail, "edge")
        assert (cursor.lines, cursor.garbled, cursor.offset) == (4, 1, log.stat().st_size)


def test_a_restart_resumes_from_the_stored_offset_without_duplicates(app: Flask, tmp_path: Path) -> None:
    log = tmp_path / "access.json"
    _write(log, line(ts=T0), line(ts=T0 + 1))
    _ingest(app, log)
    _write(log, line(ts=T0 + 2))
    _ingest(app, log)  # a new Tailer: as after a worker restart, only the database remembers
    _ingest(app, log)
    assert _sessions(app) == [("alice", "vscode", "alice", 3, 0, 300)]


def test_rotation_between_rounds_loses_and_repeats_nothing(app: Flask, tmp_path: Path) -> None:
    log = tmp_path / "access.json"
    _write(log, *(line(ts=T0 + n) for n in range(5)))
    tailer = Tailer(log, max_bytes=700)  # a few lines per read: the rotation lands mid-file
    with app.app_context():
        assert 0 < ingest_round(tailer, DOMAIN, GAP).lines < 5
    log.rename(tmp_path / "access.json.1")
    _write(log, *(line(ts=T0 + 5 + n) for n in range(3)))
    for _ in range(10):
        _ingest(app, log, tailer)
    assert _sessions(app) == [("alice", "vscode", "alice", 8, 0, 800)]


def _page(client: FlaskClient, query: str = "") -> str:
    response = client.get(f"/logs/connections{query}")
    assert response.status_code == 200
    return response.get_data(as_text=True)


def _seed(app: Flask) -> None:
    with app.app_context():
        now = utcnow()
        for owner, user, minutes in (("alice", "alice", 5), ("bob", "bob", 50), ("alice", "boss", 500)):
            db.session.add(ConnectionSession(
                owner=owner, app="vscode", username=user, client_addr="192.0.2.5",
                started_at=now - timedelta(minutes=minutes + 3), last_at=now - timedelta(minutes=minutes),
                requests=4, websockets=1, errors=0, bytes_sent=2048, bytes_received=10))
        db.session.add(ConnectionTail(name="edge", inode=1, offset=10, lines=12, garbled=3))
        db.session.commit()


def test_admins_see_everyone_and_filter(app: Flask, client: FlaskClient, auth: AuthActions) -> None:
    _seed(app)
    auth.as_role("admin")
    page = _page(client)
    assert page.count('class="connection"') == 3
    assert '<strong id="garbled">3</strong>' in page
    assert _page(client, "?workspace=bob").count('class="connection"') == 1
    assert _page(client, "?user=boss").count('class="connection"') == 1
    since = (utcnow() - timedelta(minutes=60)).strftime("%Y-%m-%dT%H:%M")
    assert _page(client, f"?since={since}").count('class="connection"') == 2
    bad = _page(client, "?since=yesterday&user=%3Cscript%3E")
    assert "is not a time" in bad and "is not a username" in bad and "<script>" not in bad
    assert bad.count('class="connection"') == 3


def test_a_user_sees_only_their_own(app: Flask, client: FlaskClient, auth: AuthActions) -> None:
    _seed(app)
    with app.app_context():
        make_user("bob")
    auth.login("bob")
    page = _page(client, "?workspace=alice")  # filters are for admins: still only bob's
    table = page.split('id="connections"')[1]
    assert page.count('class="connection"') == 1 and "alice" not in table
    assert 'id="garbled"' not in page


def test_the_admin_workspace_list_links_each_history_and_shows_last_activity(
    app: Flask, client: FlaskClient, auth: AuthActions
) -> None:
    with app.app_context():
        ws = make_workspace(make_user("alice"), make_server())
        ws.last_activity_at = utcnow().replace(year=2026, month=1, day=2, hour=3, minute=4)
        db.session.commit()
    auth.as_role("admin")
    page = client.get("/admin/workspaces/").get_data(as_text=True)
    assert 'href="/logs/connections?workspace=alice"' in page
    assert "last activity 2026-01-02 03:04" in page
