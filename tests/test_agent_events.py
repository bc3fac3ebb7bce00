"""Agent events into log entries through the poller (stub agents serving the real event buffer)."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from agent.events import EventBuffer
from app.agent_client import AgentClient
from app.extensions import db
from app.logs.agent_events import fetch_events
from app.models import LogEntry, Server
from app.worker import poller as poller_module
from app.worker.poller import Poller
from tests.builders import make_server, make_user, make_workspace
from tests.stub_agent import StubAgent

TOKEN = "t" * 40


@pytest.fixture
def quick(app):
    """Short timeouts and thresholds for poller tests."""
    app.config.update(AGENT_CONNECT_TIMEOUT=0.5, AGENT_READ_TIMEOUT=2, POLL_INTERVAL_SECONDS=0.2,
                      POLL_LEASE_SECONDS=5, POLL_FAILURES_OFFLINE=2, POLL_SUCCESSES_ONLINE=1,
                      POLL_POOL_SIZE=4, METRICS_SAMPLE_SECONDS=0.001)
    return app


@pytest.fixture
def stub():
    """A stub agent whose `events` buffer the test fills."""
    with StubAgent(TOKEN) as agent:
        yield agent


def setup_rows(app, url: str, usernames: tuple[str, ...] = ("alice",)) -> int:
    """A server at `url` and a running workspace per username; returns the server id."""
    with app.app_context():
        server = make_server("local", agent_url=url, token=TOKEN)
        for name in usernames:
            make_workspace(make_user(name), server)
        return server.id


def poll(app, poller: Poller | None = None) -> None:
    """One locked round."""
    poller = poller or Poller(app, holder="events-test")
    with app.app_context():
        assert poller.acquire_lease()
        poller.poll_round()


def entries(app, **where: object) -> list[LogEntry]:
    """Stored entries (detached), oldest first."""
    with app.app_context():
        query = select(LogEntry).filter_by(**where).order_by(LogEntry.id)
        rows = db.session.scalars(query).all()
        db.session.expunge_all()
        return list(rows)


def cursor(app, server_id: int) -> tuple[int, str]:
    """(events_cursor, events_epoch) of a server."""
    with app.app_context():
        server = db.session.get(Server, server_id)
        return server.events_cursor, server.events_epoch


def oom(buffer: EventBuffer, container: str = "slipway-ws-alice", **extra: object) -> None:
    """An OOM kill then the die that follows it."""
    buffer.add("container", "oom", container=container, image="slipway/test-workspace:latest",
               details={"memory_limit_mb": 512}, **extra)
    buffer.add("container", "die", container=container, exit_code=137, **extra)


def test_events_become_entries_with_owner_level_and_fields(quick, stub):
    server_id = setup_rows(quick, stub.url)
    oom(stub.events, user="alice")
    stub.events.add("host", "disk", level="warning", details={"percent": 93.5, "threshold": 90})
    stub.events.add("image", "build", image="127.0.0.1:5000/x:1", details={"success": False, "step": 2})
    poll(quick)
    rows = entries(quick, source="agent")
    assert [r.category for r in rows] == ["container.oom", "container.die", "host.disk", "image.build"]
    first, die, disk, build = rows
    assert (first.level, first.username, first.server_id) == ("error", "alice", server_id)
    assert first.host == "local"
    assert first.workspace_id is not None and first.fields["memory_limit_mb"] == 512
    assert "ran out of memory" in first.message and "512 MB" in first.message
    assert die.level == "warning" and die.fields["exit_code"] == 137
    assert die.fields["container"] == "slipway-ws-alice"
    assert disk.level == "warning" and disk.username is None and disk.fields["percent"] == 93.5
    assert build.level == "warning" and "build failed" in build.message
    assert cursor(quick, server_id) == (4, stub.events.epoch)


def test_second_round_adds_only_new_events(quick, stub):
    server_id = setup_rows(quick, stub.url)
    oom(stub.events)
    poller = Poller(quick, holder="events-test")
    poll(quick, poller)
    poll(quick, poller)
    assert len(entries(quick, source="agent")) == 2
    stub.events.add("container", "start", container="slipway-ws-alice")
    poll(quick, poller)
    assert [r.category for r in entries(quick, source="agent")][-1] == "container.start"
    assert len(entries(quick, source="agent")) == 3 and cursor(quick, server_id)[0] == 3


def test_agent_restart_records_an_epoch_gap_and_reads_the_new_buffer(quick, stub):
    server_id = setup_rows(quick, stub.url)
    oom(stub.events)
    poll(quick)
    old_epoch = stub.events.epoch
    stub.events.renew()  # the agent restarted
    stub.events.add("container", "start", container="slipway-ws-alice")
    poll(quick)
    gap = entries(quick, category="agent.gap")
    assert len(gap) == 1 and gap[0].level == "warning" and gap[0].server_id == server_id
    assert gap[0].fields["reason"] == "epoch" and gap[0].fields["old_epoch"] == old_epoch
    assert "restarted" in gap[0].message and "#2" in gap[0].message
    assert [r.category for r in entries(quick, source="agent")][-1] == "container.start"
    assert cursor(quick, server_id) == (1, stub.events.epoch)


def test_overflowed_cursor_records_how_many_are_missing(quick, stub):
    server_id = setup_rows(quick, stub.url)
    stub.events = EventBuffer(3)
    for _ in range(10):
        stub.events.add("container", "kill", container="slipway-ws-alice", details={"signal": "15"})
    poll(quick)
    gap = entries(quick, category="agent.gap")
    assert len(gap) == 1 and gap[0].fields == {"reason": "overflow", "from": 1, "to": 7, "missing": 7,
                                               "epoch": stub.events.epoch}
    assert "7 events" in gap[0].message
    assert len(entries(quick, category="container.kill")) == 3 and cursor(quick, server_id)[0] == 10


def test_failure_between_fetch_and_commit_refetches_without_loss_or_duplicates(quick, stub, monkeypatch):
    server_id = setup_rows(quick, stub.url)
    for _ in range(7):
        oom(stub.events)
    real = poller_module.add_entries
    calls = {"n": 0}

    def fail_once(rows):
        calls["n"] += 1
        real(rows)
        if calls["n"] == 1:
            raise RuntimeError("worker killed after the fetch")
        return len(rows)

    monkeypatch.setattr(poller_module, "add_entries", fail_once)
    poller = Poller(quick, holder="events-test")
    with pytest.raises(RuntimeError), quick.app_context():
        assert poller.acquire_lease()
        poller.poll_round()
    with quick.app_context():
        assert db.session.scalar(select(func.count()).select_from(LogEntry)) == 0
    assert cursor(quick, server_id)[0] == 0
    poll(quick, poller)
    poll(quick, poller)
    with quick.app_context():
        stored = select(func.count()).select_from(LogEntry).where(LogEntry.source == "agent")
        assert db.session.scalar(stored) == 14
    assert cursor(quick, server_id)[0] == 14


def test_owner_comes_from_the_container_name_not_a_label(quick, stub):
    setup_rows(quick, stub.url, ("alice", "bob"))
    stub.events.add("container", "oom", container="slipway-ws-alice", user="bob")
    stub.events.add("container", "oom", container="someone-elses", user="bob")
    poll(quick)
    mine, stray = entries(quick, category="container.oom")
    assert mine.username == "alice" and mine.fields["label_user"] == "bob"
    assert stray.username is None and stray.workspace_id is None and stray.fields["label_user"] == "bob"


def test_a_cursor_moved_by_another_poller_stores_nothing_twice(quick, stub):
    server_id = setup_rows(quick, stub.url)
    oom(stub.events)
    with quick.app_context():
        server = db.session.get(Server, server_id)
        batch = fetch_events(AgentClient.for_server(server), 0, "", seconds=2)
        server.events_cursor, server.events_epoch = batch.cursor, batch.epoch  # the other poller won
        db.session.commit()
        assert Poller(quick, holder="late")._event_entries([server], {server_id: batch}) == []
        db.session.commit()
    assert entries(quick, source="agent") == []


def test_fetch_is_bounded_in_pages(quick, stub):
    setup_rows(quick, stub.url)
    for _ in range(50):
        stub.events.add("container", "start", container="slipway-ws-alice")
    with quick.app_context():
        client = AgentClient.for_server(db.session.scalar(select(Server)))
        batch = fetch_events(client, 0, "", seconds=2, page_limit=10, max_pages=2)
    assert len(batch.events) == 20 and batch.cursor == 20 and batch.moved


def test_agent_without_events_keeps_the_cursor(quick):
    with StubAgent(TOKEN, mode="down") as down:
        server_id = setup_rows(quick, down.url)
        poll(quick)
    assert entries(quick, source="agent") == [] and cursor(quick, server_id) == (0, "")


def test_server_turning_offline_writes_an_error_entry(quick):
    dead = StubAgent(TOKEN, mode="dead")
    server_id = setup_rows(quick, dead.url)
    poller = Poller(quick, holder="events-test")
    poll(quick, poller)
    assert entries(quick, category="server.offline") == []
    poll(quick, poller)
    offline = entries(quick, category="server.offline")
    assert len(offline) == 1 and offline[0].level == "error" and offline[0].server_id == server_id
    assert "offline" in offline[0].message and "refused" in offline[0].message
    poll(quick, poller)
    assert len(entries(quick, category="server.offline")) == 1  # once per transition


def test_restart_and_overflow_in_one_fetch_give_two_gap_entries(quick, stub):
    server_id = setup_rows(quick, stub.url)
    oom(stub.events)
    poll(quick)
    stub.events = EventBuffer(2)  # a restarted agent with a small ring that already overflowed
    for _ in range(5):
        stub.events.add("container", "start", container="slipway-ws-alice")
    poll(quick)
    reasons = [(e.fields["reason"], e.fields.get("missing")) for e in entries(quick, category="agent.gap")]
    assert reasons == [("epoch", None), ("overflow", 3)]
    assert cursor(quick, server_id) == (5, stub.events.epoch)
    assert len(entries(quick, category="container.start")) == 2
