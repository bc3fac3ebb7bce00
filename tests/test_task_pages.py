"""Task pages and the live stream: visibility, cancel/retry, Origin check, session revocation."""

from __future__ import annotations

import json

import pytest
from simple_websocket import Client, ConnectionClosed, ConnectionError
from sqlalchemy import update

from app.extensions import db
from app.models import Task, TaskEvent, UserSession
from app.services import task_queue
from app.timeutil import utcnow
from tests.builders import make_user
from tests.fakes import noop_handler  # noqa: F401  - registers the fake_noop kind
from tests.livesrv import cookie_header, login, serve
from tests.support import form_post


def queue_for(app, username, kind="fake_noop"):
    """Queue a task requested by `username`; returns its id."""
    with app.app_context():
        task = task_queue.enqueue(kind, target="x", requested_by=username)
        db.session.commit()
        return task.id


def test_owner_sees_own_task_other_user_gets_404(app, client, auth):
    owner = auth.as_role("regular")
    mine = queue_for(app, owner.username)
    theirs = queue_for(app, "someone-else")
    page = client.get(f"/tasks/{mine}")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "queued by" in html and "data-stream-url" in html
    assert "<script>" not in html and "style=" not in html
    assert client.get(f"/tasks/{theirs}").status_code == 404
    assert client.get("/tasks/").status_code == 403


def test_qvp_lists_and_reads_every_task(app, client, auth):
    auth.as_role("qvp")
    task_id = queue_for(app, "someone-else")
    assert f"/tasks/{task_id}" in client.get("/tasks/?state=queued").get_data(as_text=True)
    assert client.get(f"/tasks/{task_id}").status_code == 200


def test_cancel_and_retry_buttons(app, client, auth):
    owner = auth.as_role("regular")
    task_id = queue_for(app, owner.username)
    response = form_post(client, f"/tasks/{task_id}/cancel", {}, page=f"/tasks/{task_id}",
                         follow_redirects=True)
    assert "Task cancelled." in response.get_data(as_text=True)
    response = form_post(client, f"/tasks/{task_id}/retry", {}, page=f"/tasks/{task_id}")
    assert response.status_code == 302
    with app.app_context():
        assert db.session.get(Task, task_id).state == "cancelled"
        assert db.session.scalar(db.select(db.func.count(Task.id))) == 2
    other = queue_for(app, "someone-else")
    assert form_post(client, f"/tasks/{other}/cancel", {}, page=f"/tasks/{task_id}").status_code == 404


class BrowserClient(Client):
    """A WebSocket client that sends `Host: host:port`, as browsers do."""

    def handshake(self) -> None:
        self.host = f"{self.host}:{self.port}"
        super().handshake()


@pytest.fixture
def live(app):
    """The app served on a real port, with a quick stream poll."""
    app.config["STREAM_POLL_SECONDS"] = 0.05
    with serve(app) as base_url:
        yield base_url


def open_stream(base_url, session, task_id, origin=None):
    """Open the task's WebSocket as a browser on `origin` would."""
    url = base_url.replace("http", "ws") + f"/tasks/{task_id}/stream"
    headers = {"Cookie": cookie_header(session), "Origin": origin or base_url}
    return BrowserClient.connect(url, headers=headers)


def test_stream_sends_events_until_finished(app, live):
    with app.app_context():
        make_user("streamer")
    session = login(live, "streamer")
    task_id = queue_for(app, "streamer")
    ws = open_stream(live, session, task_id)
    first = json.loads(ws.receive(timeout=5))
    assert first["state"] == "queued" and first["events"][0]["message"] == "queued by streamer"
    with app.app_context():
        db.session.add(TaskEvent(task_id=task_id, message="step two", progress=40))
        db.session.execute(update(Task).where(Task.id == task_id).values(
            state="succeeded", progress=100, finished_at=utcnow(), active_lock=None))
        db.session.commit()
    seen = []
    with pytest.raises(ConnectionClosed):
        for _ in range(100):
            message = json.loads(ws.receive(timeout=5))
            seen.extend(event["message"] for event in message["events"])
            last = message
    assert "step two" in seen and last["state"] == "succeeded" and last["progress"] == 100


def test_stream_refuses_foreign_origin_and_other_users_task(app, live):
    with app.app_context():
        make_user("streamer")
    session = login(live, "streamer")
    mine = queue_for(app, "streamer")
    theirs = queue_for(app, "someone-else")
    with pytest.raises(ConnectionError) as refused:
        open_stream(live, session, mine, origin="http://evil.localhost")
    assert refused.value.status_code == 403
    with pytest.raises(ConnectionError) as refused:
        open_stream(live, session, theirs)
    assert refused.value.status_code == 404
    anonymous = type(session)()
    with pytest.raises(ConnectionError) as refused:
        open_stream(live, anonymous, mine)
    assert refused.value.status_code in (302, 401)


def test_revoked_session_closes_the_stream(app, live):
    with app.app_context():
        make_user("streamer")
    session = login(live, "streamer")
    task_id = queue_for(app, "streamer")
    ws = open_stream(live, session, task_id)
    assert json.loads(ws.receive(timeout=5))["state"] == "queued"
    with app.app_context():
        db.session.execute(update(UserSession).values(is_active=False))
        db.session.commit()
    with pytest.raises(ConnectionClosed) as closed:
        for _ in range(200):
            ws.receive(timeout=5)
    assert closed.value.reason == 1008
