"""Container events in plain words on the owner's workspace page (and nobody else's)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from app.extensions import db
from app.logs.plain import describe
from app.logs.store import add_entries
from app.models import User
from app.timeutil import utcnow
from tests.builders import make_server, make_workspace


@pytest.mark.parametrize(("category", "fields", "expected"), [
    ("container.oom", {"memory_limit_mb": 1024},
     "Your workspace ran out of memory and the program using the most was stopped (limit 1024 MB)."),
    ("container.oom", {}, "Your workspace ran out of memory and the program using the most was stopped."),
    ("container.die", {"exit_code": 0}, "Your workspace stopped."),
    ("container.die", {"exit_code": 137}, "Your workspace was stopped abruptly (killed, exit code 137)."),
    ("container.die", {"exit_code": 2}, "Your workspace stopped unexpectedly (exit code 2)."),
    ("container.start", {}, "Your workspace started."),
    ("container.restart", {}, "Your workspace restarted."),
    ("container.health_status", {"health": "unhealthy"},
     "Your workspace stopped answering its health check."),
    ("image.tag", {}, "raw message"),
])
def test_describe_in_plain_words(category, fields, expected):
    assert describe({"category": category, "fields": fields, "message": "raw message"}) == expected


def agent_entry(ws, category: str, minutes_ago: int = 0, **fields: object) -> dict:
    """An agent entry about `ws`."""
    return {"source": "agent", "category": category, "workspace_id": ws.id, "username": ws.username,
            "server_id": ws.server_id, "ts": utcnow() - timedelta(minutes=minutes_ago),
            "message": f"{category} of {ws.username}", "fields": fields,
            "level": "error" if category == "container.oom" else "info"}


def test_owner_sees_their_container_events_newest_first_and_nobody_elses(app, client, auth):
    user = auth.as_role("regular", username="alice")
    with app.app_context():
        server = make_server()
        mine = make_workspace(db.session.get(User, user.id), server)
        theirs = make_workspace(_user("bob"), server)
        add_entries([
            agent_entry(mine, "container.start", 5),
            agent_entry(mine, "container.oom", 1, memory_limit_mb=512, exit_code="<script>x</script>"),
            agent_entry(mine, "container.kill", 1, signal="9"),
            agent_entry(theirs, "container.oom", 0, memory_limit_mb=999),
            {**agent_entry(mine, "container.restart"), "source": "shipper"},  # posted, not from an agent
        ])
        db.session.commit()
    html = client.get("/workspaces/").get_data(as_text=True)
    assert "What happened to your workspace" in html
    table = html.split('id="ws-container-events"', 1)[1].split("</table>", 1)[0]
    assert table.count('class="ws-container-event') == 2
    oom_at = table.index("ran out of memory and the program using the most was stopped (limit 512 MB)")
    assert oom_at < table.index("Your workspace started.")  # newest first
    assert "table-danger" in table and 'data-category="container.oom"' in table
    assert "999" not in table and "restarted" not in table and "asked to stop" not in table


def test_no_events_says_so(app, client, auth):
    user = auth.as_role("regular", username="carol")
    with app.app_context():
        make_workspace(db.session.get(User, user.id), make_server())
    html = client.get("/workspaces/").get_data(as_text=True)
    assert 'id="ws-container-events-none"' in html


def test_only_ten_events_are_shown(app, client, auth):
    user = auth.as_role("regular", username="dave")
    with app.app_context():
        ws = make_workspace(db.session.get(User, user.id), make_server())
        add_entries([agent_entry(ws, "container.start", 30 - i) for i in range(15)])
        db.session.commit()
    html = client.get("/workspaces/").get_data(as_text=True)
    assert html.count('class="ws-container-event') == 10


def _user(name: str) -> User:
    from tests.builders import make_user

    return make_user(name)
