"""The poller against stub agents: outcomes, isolation of slow agents, bounded pool, hysteresis,
audit, lease hand-over and metric retention."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import AuditLog, PollerLease, Server, ServerMetric
from app.services.servers import downsample
from app.timeutil import utcnow
from app.worker.poller import Poller
from tests.builders import TOKEN, make_server
from tests.stub_agent import StubAgent


@pytest.fixture
def quick(app):
    """Short timeouts and thresholds for poller tests."""
    app.config.update(AGENT_CONNECT_TIMEOUT=0.5, AGENT_READ_TIMEOUT=0.5, POLL_INTERVAL_SECONDS=0.2,
                      POLL_LEASE_SECONDS=2, POLL_FAILURES_OFFLINE=2, POLL_SUCCESSES_ONLINE=2,
                      POLL_POOL_SIZE=4, METRICS_SAMPLE_SECONDS=0.001)
    return app


def round_of(app, poller):
    """One locked round inside an app context."""
    with app.app_context():
        assert poller.acquire_lease()
        return poller.poll_round()


def servers_by_name(app):
    """{name: Server} detached from the session."""
    with app.app_context():
        rows = db.session.scalars(select(Server)).all()
        for row in rows:
            db.session.expunge(row)
        return {row.name: row for row in rows}


def test_dead_slow_and_healthy_agents_give_three_outcomes_in_one_round(quick):
    dead = StubAgent(TOKEN, mode="dead")
    with StubAgent(TOKEN, mode="slow", delay=3) as slow, StubAgent(TOKEN) as healthy:
        with quick.app_context():
            make_server("dead", dead.url, status="unknown")
            make_server("slow", slow.url, status="unknown")
            make_server("healthy", healthy.url, status="unknown")
        started = time.monotonic()
        report = round_of(quick, Poller(quick, holder="p1"))
        elapsed = time.monotonic() - started
    assert report.outcomes == {"unreachable": 1, "timeout": 1, "ok": 1}
    assert elapsed < 0.5 + 0.5 + 1  # read timeout + connect timeout + 1 s
    rows = servers_by_name(quick)
    assert rows["healthy"].last_outcome == "ok" and rows["healthy"].cpu_percent == 12.5
    assert rows["healthy"].status == "online" and rows["healthy"].last_seen_at is not None
    assert rows["slow"].last_outcome == "timeout" and "did not answer" in rows["slow"].last_error
    assert rows["dead"].last_outcome == "unreachable" and "refused" in rows["dead"].last_error
    assert rows["dead"].status == "unknown"  # one failure is not enough to call it offline


def test_slow_agent_does_not_delay_a_fast_one(quick):
    with StubAgent(TOKEN, mode="slow", delay=3) as slow, StubAgent(TOKEN) as fast:
        with quick.app_context():
            from app.agent_client import AgentClient
            from app.services.servers import probe

            slow_client = AgentClient(slow.url, TOKEN, connect_timeout=0.5, read_timeout=0.5, retries=0)
            fast_client = AgentClient(fast.url, TOKEN, connect_timeout=0.5, read_timeout=0.5, retries=0)
            poller = Poller(quick, holder="p1")
            started = time.monotonic()
            slow_future = poller.pool.submit(probe, slow_client)
            fast_outcome = poller.pool.submit(probe, fast_client).result(timeout=5)
            fast_done = time.monotonic() - started
            assert fast_outcome.kind == "ok" and not slow_future.done()  # the fast one did not wait
            assert fast_done < 0.5
            assert slow_future.result(timeout=5).kind == "timeout"


def test_status_needs_consecutive_failures_and_successes_and_is_audited(quick):
    with StubAgent(TOKEN) as agent:
        with quick.app_context():
            make_server("flappy", agent.url, status="unknown")
        poller = Poller(quick, holder="p1")
        round_of(quick, poller)
        assert servers_by_name(quick)["flappy"].status == "online"
        agent.stop()
        round_of(quick, poller)
        assert servers_by_name(quick)["flappy"].status == "online"  # one failure: no flap
        round_of(quick, poller)
        assert servers_by_name(quick)["flappy"].status == "offline"
    with quick.app_context():
        server = db.session.scalar(select(Server))
        with StubAgent(TOKEN) as back:
            server.agent_url = back.url
            db.session.commit()
            round_of(quick, poller)
            assert servers_by_name(quick)["flappy"].status == "offline"  # one success is not enough
            round_of(quick, poller)
            assert servers_by_name(quick)["flappy"].status == "online"
        changes = db.session.scalars(select(AuditLog).where(
            AuditLog.action_type == "server_status_changed").order_by(AuditLog.id)).all()
        assert [(row.details["from"], row.details["to"]) for row in changes] == [
            ("unknown", "online"), ("online", "offline"), ("offline", "online")]
        assert all(row.source == "poller" and row.server_id == server.id for row in changes)
        assert all(TOKEN not in str(row.details) for row in changes)
        assert db.session.scalar(select(func.count(ServerMetric.id))) == 3  # one sample per answered poll


def test_server_deleted_during_a_round_is_skipped(quick):
    with StubAgent(TOKEN, mode="slow", delay=0.3) as lagging, StubAgent(TOKEN) as healthy:
        with quick.app_context():
            doomed_id = make_server("doomed", lagging.url, status="unknown").id
            make_server("kept", healthy.url, status="unknown")
        poller = Poller(quick, holder="p1")
        reports = []
        thread = threading.Thread(target=lambda: reports.append(round_of(quick, poller)))
        thread.start()
        time.sleep(0.1)
        with quick.app_context():
            db.session.delete(db.session.get(Server, doomed_id))
            db.session.commit()
        thread.join(10)
    assert reports and reports[0].outcomes == {"ok": 2}
    rows = servers_by_name(quick)
    assert set(rows) == {"kept"} and rows["kept"].status == "online"


def test_degraded_when_agent_answers_without_stats(quick):
    with StubAgent(TOKEN, mode="down") as agent:
        with quick.app_context():
            make_server("nodocker", agent.url, status="unknown")
        report = round_of(quick, Poller(quick, holder="p1"))
    assert report.outcomes == {"degraded": 1}
    row = servers_by_name(quick)["nodocker"]
    assert row.status == "degraded" and row.last_error == "Docker is not reachable"


def test_pool_is_bounded_and_rounds_never_overlap(quick):
    quick.config.update(POLL_POOL_SIZE=2, POLL_INTERVAL_SECONDS=0.05)
    agents = [StubAgent(TOKEN, mode="slow", delay=5) for _ in range(8)]
    try:
        with quick.app_context():
            for n, agent in enumerate(agents):
                make_server(f"slow{n}", agent.url, status="unknown")
        poller = Poller(quick, holder="p1")
        spans: list[tuple[float, float]] = []
        original = poller.poll_round

        def timed_round():
            start = time.monotonic()
            try:
                return original()
            finally:
                spans.append((start, time.monotonic()))

        poller.poll_round = timed_round
        stop = threading.Event()
        thread = threading.Thread(target=poller.run, args=(stop,), daemon=True)
        thread.start()
        peak = 0
        deadline = time.monotonic() + 6
        while time.monotonic() < deadline and len(spans) < 3:
            peak = max(peak, sum(t.name.startswith("slipway-poll") for t in threading.enumerate()))
            time.sleep(0.05)
        stop.set()
        thread.join(10)
    finally:
        for agent in agents:
            agent.stop()
    assert len(spans) >= 2
    assert all(end <= next_start for (_, end), (next_start, _) in zip(spans, spans[1:], strict=False))
    assert all(end - start < 0.5 + 0.5 + 1 + 0.5 for start, end in spans)  # bounded even with 8 slow agents
    assert 1 <= peak <= 2  # the pool's size, never one thread per server


def test_only_one_lease_holder_and_takeover_after_expiry(quick):
    first, second = Poller(quick, holder="first"), Poller(quick, holder="second")
    with quick.app_context():
        assert first.acquire_lease()
        assert not second.acquire_lease()
        assert first.acquire_lease()  # renewal
    time.sleep(2.2)
    with quick.app_context():
        assert second.acquire_lease()
        assert not first.acquire_lease()
        second.release_lease()
        assert first.acquire_lease()
        assert db.session.get(PollerLease, "poller").holder == "first"


def test_history_is_sampled_less_often_than_polls(quick):
    quick.config["METRICS_SAMPLE_SECONDS"] = 60
    with StubAgent(TOKEN) as agent:
        with quick.app_context():
            make_server("sampled", agent.url, status="unknown")
        poller = Poller(quick, holder="p1")
        for _ in range(3):
            round_of(quick, poller)
    with quick.app_context():
        assert db.session.scalar(select(func.count(ServerMetric.id))) == 1
        assert db.session.scalar(select(Server.last_polled_at)) is not None


def test_raw_metrics_are_downsampled_after_a_day_and_old_hours_dropped(quick):
    now = utcnow().replace(minute=30, second=0, microsecond=0)
    with quick.app_context():
        server = make_server("hist", status="unknown")
        old_hour = (now - timedelta(hours=30)).replace(minute=0)
        for minute, cpu in ((5, 10.0), (15, 20.0), (25, 30.0)):
            db.session.add(ServerMetric(server_id=server.id, at=old_hour + timedelta(minutes=minute),
                                        cpu_percent=cpu, memory_percent=50.0))
        db.session.add(ServerMetric(server_id=server.id, at=now - timedelta(minutes=5), cpu_percent=99.0))
        db.session.add(ServerMetric(server_id=server.id, at=now - timedelta(days=40), period_seconds=3600,
                                    cpu_percent=1.0, samples=3))
        db.session.commit()
        assert downsample(now, raw_hours=24, keep_days=30) == 3
        db.session.commit()
        rows = db.session.scalars(select(ServerMetric).order_by(ServerMetric.at)).all()
        assert [(row.period_seconds, row.samples) for row in rows] == [(3600, 3), (0, 1)]
        assert rows[0].at == old_hour and rows[0].cpu_percent == pytest.approx(20.0)
        assert rows[0].memory_percent == pytest.approx(50.0)
        # a late raw sample for the same hour merges into the existing hourly row
        late = old_hour + timedelta(minutes=45)
        db.session.add(ServerMetric(server_id=server.id, at=late, cpu_percent=60.0))
        db.session.commit()
        assert downsample(now, raw_hours=24, keep_days=30) == 1
        db.session.commit()
        hourly = db.session.scalar(select(ServerMetric).where(ServerMetric.period_seconds == 3600))
        assert hourly.samples == 4 and hourly.cpu_percent == pytest.approx(30.0)


def test_poller_settings_are_typed_and_validated(tmp_path):
    from app.settings_checks import validate
    from config import DevelopmentConfig

    settings, problems = DevelopmentConfig.load({
        "SLIPWAY_DATA_DIR": str(tmp_path), "SLIPWAY_AGENT_READ_TIMEOUT": "soon",
        "SLIPWAY_POLL_INTERVAL_SECONDS": "20", "SLIPWAY_POLL_LEASE_SECONDS": "15",
        "SLIPWAY_POLL_POOL_SIZE": "0", "SLIPWAY_AGENT_RETRIES": "11", "SLIPWAY_AGENT_CONNECT_TIMEOUT": "0.25",
    })
    text = "\n".join(problems + validate(settings))
    assert "SLIPWAY_AGENT_READ_TIMEOUT must be a number" in text
    assert "SLIPWAY_POLL_LEASE_SECONDS must be longer than 1.1 x SLIPWAY_POLL_INTERVAL_SECONDS" in text
    assert "SLIPWAY_POLL_POOL_SIZE must be positive" in text
    assert "SLIPWAY_AGENT_RETRIES must be between 0 and 10" in text
    assert settings["AGENT_CONNECT_TIMEOUT"] == 0.25 and settings["AGENT_READ_TIMEOUT"] == 10.0


def test_a_new_server_is_polled_at_once_not_after_the_interval(quick):
    quick.config["POLL_INTERVAL_SECONDS"] = 60  # the next regular round is a minute away
    poller = Poller(quick, holder="p-new")
    stop = threading.Event()
    thread = threading.Thread(target=poller.run, args=(stop,), daemon=True)
    with StubAgent(TOKEN) as agent:
        thread.start()
        try:
            deadline = time.monotonic() + 10
            while poller.rounds < 1 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert poller.rounds == 1  # the first round ran (with no server yet)
            with quick.app_context():
                make_server("newcomer", agent.url)
            deadline = time.monotonic() + 5
            while servers_by_name(quick)["newcomer"].last_polled_at is None and time.monotonic() < deadline:
                time.sleep(0.1)
            row = servers_by_name(quick)["newcomer"]
            assert row.last_outcome == "ok" and row.status == "online" and poller.rounds == 2
        finally:
            stop.set()
            thread.join(10)
