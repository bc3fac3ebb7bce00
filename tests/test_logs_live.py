"""The live log stream over a real socket: same filters server-side, resume without gap or repeat,
a skipped marker instead of a backlog, Origin/session/permission checks before and during."""

from __future__ import annotations

import json
import time

import pytest
from simple_websocket import Client, ConnectionClosed, ConnectionError
from sqlalchemy import update

from app.extensions import db
from app.logs import stream
from app.models import User, UserSession
from tests.builders import make_user
from tests.livesrv import cookie_header, login, serve
from tests.logkit import add_logs


class BrowserClient(Client):
    """A WebSocket client that sends `Host: host:port`, as browsers do."""

    def handshake(self) -> None:
        self.host = f"{self.host}:{self.port}"
        super().handshake()


@pytest.fixture
def live(app):
    """The app served on a real port, with a quick stream poll."""
    app.config["LOG_STREAM_POLL_SECONDS"] = 0.05
    with serve(app) as base_url:
        yield base_url


def open_stream(base_url, session, query="after=0", origin=None):
    """Open the log stream as a browser on `origin` (default: the app's own) would."""
    url = base_url.replace("http", "ws") + f"/logs/live/stream?{query}"
    headers = {"Cookie": cookie_header(session), "Origin": origin or base_url}
    return BrowserClient.connect(url, headers=headers)


def receive_entries(ws, count, timeout=5.0):
    """Messages until `count` entries arrived (or the time is up); returns (entry ids, skipped total)."""
    ids, skipped = [], 0
    deadline = time.monotonic() + timeout
    while len(ids) < count and time.monotonic() < deadline:
        raw = ws.receive(timeout=max(0.05, deadline - time.monotonic()))
        if raw is None:
            continue
        message = json.loads(raw)
        ids += [entry["id"] for entry in message["entries"]]
        skipped += message["skipped"]
    return ids, skipped


def test_stream_resumes_after_the_last_id_without_gap_or_repeat(app, live):
    with app.app_context():
        make_user("watcher", role="admin")
    session = login(live, "watcher")
    old = add_logs(app, {"message": "before the page"})
    ws = open_stream(live, session, f"after={old[-1]}")
    first = add_logs(app, *({"message": f"live {i}", "source": "s"} for i in range(3)))
    got, skipped = receive_entries(ws, 3)
    assert got == first and skipped == 0
    ws.close()
    missed = add_logs(app, *({"message": f"while away {i}", "source": "s"} for i in range(2)))
    ws = open_stream(live, session, f"after={got[-1]}")
    again, _ = receive_entries(ws, 2)
    assert again == missed
    extra, _ = receive_entries(ws, 1, timeout=0.5)
    assert extra == []  # nothing repeated
    ws.close()


def test_stream_applies_the_filters_and_the_role_fence(app, live):
    with app.app_context():
        make_user("builder", role="qvp")
    session = login(live, "builder")
    ws = open_stream(live, session, "after=0&level=error")
    ids = add_logs(app, {"category": "build.failed", "level": "error", "message": "<script>x</script>"},
                   {"category": "build.step", "level": "info"},
                   {"category": "auth.login_failed", "level": "error", "username": "someone"},
                   {"category": "image.push_failed", "level": "critical"})
    got, _ = receive_entries(ws, 2)
    assert got == [ids[0], ids[3]]
    assert receive_entries(ws, 1, timeout=0.5)[0] == []
    ws.close()


def test_a_burst_sends_the_newest_batch_and_says_how_many_were_skipped(app, live, monkeypatch):
    monkeypatch.setattr(stream, "BATCH", 5)
    with app.app_context():
        make_user("watcher", role="admin")
    session = login(live, "watcher")
    ids = add_logs(app, *({"message": f"burst {i}"} for i in range(12)))
    ws = open_stream(live, session, "after=0")
    message = json.loads(ws.receive(timeout=5))
    assert [entry["id"] for entry in message["entries"]] == ids[-5:]
    assert message["skipped"] == 7 and message["last_id"] == ids[-1]
    entry = message["entries"][-1]
    assert entry["message"] == "burst 11" and entry["url"] == f"/logs/entries/{ids[-1]}"
    ws.close()


def test_stream_refuses_foreign_origin_anonymous_regular_and_bad_filters(app, live):
    with app.app_context():
        make_user("watcher", role="admin")
        make_user("plain")
    session = login(live, "watcher")
    cases = [
        (session, "after=0", "http://evil.localhost", (403,)),
        (type(session)(), "after=0", None, (302, 401)),
        (login(live, "plain"), "after=0", None, (403,)),
        (session, "after=0&min_risk=abc", None, (400,)),
        (session, "after=-1", None, (400,)),
        (session, "level=panic", None, (400,)),
    ]
    for who, query, origin, statuses in cases:
        with pytest.raises(ConnectionError) as refused:
            open_stream(live, who, query, origin=origin)
        assert refused.value.status_code in statuses, (query, origin)


@pytest.mark.parametrize("change", ["revoke", "demote"])
def test_revoked_session_or_changed_role_closes_the_stream(app, live, change):
    with app.app_context():
        make_user("watcher", role="admin")
    session = login(live, "watcher")
    ws = open_stream(live, session, "after=0")
    add_logs(app, {"message": "one"})
    assert receive_entries(ws, 1)[0]
    with app.app_context():
        if change == "revoke":
            db.session.execute(update(UserSession).values(is_active=False))
        else:
            db.session.execute(update(User).where(User.username == "watcher").values(role="qvp"))
        db.session.commit()
    deadline = time.monotonic() + stream.SESSION_CHECK_SECONDS + 5
    with pytest.raises(ConnectionClosed) as closed:
        while time.monotonic() < deadline:
            ws.receive(timeout=1)
    assert closed.value.reason == 1008
