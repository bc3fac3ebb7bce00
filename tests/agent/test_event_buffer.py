"""The agent's event ring (numbering, paging, gaps, epochs), its Docker-event filter and host warnings."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.config import AgentConfig
from agent.events import EventBuffer, KnownImages
from agent.watchers import DockerWatcher, HostSampler


def fill(buffer: EventBuffer, count: int) -> None:
    """Add `count` container events."""
    for i in range(count):
        buffer.add("container", "start", container=f"c{i}")


def test_numbers_rise_and_pages_follow_the_cursor() -> None:
    buffer = EventBuffer(100)
    fill(buffer, 7)
    first = buffer.read(0, 3)
    assert [e["seq"] for e in first["events"]] == [1, 2, 3]
    assert first["next"] == 3 and first["more"] is True and first["gap"] is None
    second = buffer.read(first["next"], 3)
    assert [e["seq"] for e in second["events"]] == [4, 5, 6]
    last = buffer.read(second["next"], 3)
    assert [e["seq"] for e in last["events"]] == [7] and last["more"] is False and last["next"] == 7
    empty = buffer.read(7, 3)
    assert empty["events"] == [] and empty["next"] == 7 and empty["gap"] is None


def test_overflow_reports_the_gap_and_continues_from_the_oldest_kept() -> None:
    buffer = EventBuffer(3)
    fill(buffer, 10)
    page = buffer.read(2, 100)
    assert page["gap"] == {"from": 3, "to": 7}
    assert [e["seq"] for e in page["events"]] == [8, 9, 10]
    assert buffer.read(7, 100)["gap"] is None  # the cursor right before the oldest kept: nothing missing
    assert buffer.read(0, 100)["gap"] == {"from": 1, "to": 7}


def test_renew_starts_a_new_epoch_from_one() -> None:
    buffer = EventBuffer(10)
    fill(buffer, 4)
    old = buffer.epoch
    buffer.renew()
    assert buffer.epoch != old and buffer.last_seq == 0
    buffer.add("host", "disk", level="warning")
    assert [e["seq"] for e in buffer.read(0, 10)["events"]] == [1]


def test_bad_size_and_type_are_refused() -> None:
    with pytest.raises(ValueError):
        EventBuffer(0)
    with pytest.raises(ValueError):
        EventBuffer(5).add("network", "create")
    problems = AgentConfig.from_env({"AGENT_TOKEN": "x" * 32, "AGENT_EVENTS_MAX": "0",
                                     "AGENT_DISK_WARN_PERCENT": "101"}).problems()
    assert any("AGENT_EVENTS_MAX" in p for p in problems)
    assert any("AGENT_DISK_WARN_PERCENT" in p for p in problems)


def raw(kind: str, action: str, nano: int, **attrs: str) -> dict:
    """A Docker event as the SDK decodes it."""
    return {"Type": kind, "Action": action, "Actor": {"ID": attrs.pop("id", "abc"), "Attributes": attrs},
            "time": nano // 10**9, "timeNano": nano}


def test_watcher_keeps_only_slipway_containers_and_known_images() -> None:
    buffer, known = EventBuffer(50), KnownImages()
    watcher = DockerWatcher(buffer, known)
    managed = {"slipway.managed": "true", "name": "ws-alice", "slipway.user": "alice",
               "slipway.workspace_id": "7", "image": "slipway/test-workspace:latest"}
    base = 1_700_000_000 * 10**9
    assert watcher.handle(raw("container", "start", base, name="other", image="x")) is None
    assert watcher.handle(raw("container", "exec_start: sh", base + 1, **managed)) is None
    oom = watcher.handle(raw("container", "oom", base + 2, **managed))
    die = watcher.handle(raw("container", "die", base + 3, exitCode="137", **managed))
    health = watcher.handle(raw("container", "health_status: unhealthy", base + 4, **managed))
    assert oom["level"] == "error" and oom["user"] == "alice" and oom["workspace_id"] == "7"
    assert die["exit_code"] == 137 and die["level"] == "warning" and die["container"] == "ws-alice"
    assert health["action"] == "health_status" and health["details"] == {"health": "unhealthy"}
    assert watcher.handle(raw("image", "tag", base + 5, name="someone/else:1")) is None
    known.remember("127.0.0.1:5000/mine:v1")
    tag = watcher.handle(raw("image", "tag", base + 6, id="sha256:f00", name="127.0.0.1:5000/mine:v1"))
    assert tag["image"] == "127.0.0.1:5000/mine:v1"
    gone = watcher.handle(raw("image", "delete", base + 7, id="sha256:f00", name="sha256:f00"))
    assert gone is not None and gone["action"] == "delete"  # known by the id its tag event named
    labelled = watcher.handle(raw("image", "pull", base + 8, name="slipway/workspace:latest",
                                  **{"slipway.image": "workspace"}))
    assert labelled is not None
    assert [e["seq"] for e in buffer.read(0, 50)["events"]] == [1, 2, 3, 4, 5, 6]


def test_watcher_drops_repeats_after_a_reconnect() -> None:
    buffer = EventBuffer(50)
    watcher = DockerWatcher(buffer, KnownImages())
    event = raw("container", "start", 5 * 10**9, **{"slipway.managed": "true", "name": "a"})
    assert watcher.handle(event) is not None
    assert watcher.handle(dict(event)) is None  # the same event, replayed by `since`
    assert buffer.last_seq == 1


def test_watcher_keeps_an_older_event_it_has_not_seen() -> None:
    """Docker's stream can deliver one container's event after a later one of another container."""
    buffer = EventBuffer(50)
    watcher = DockerWatcher(buffer, KnownImages())
    managed = {"slipway.managed": "true"}
    assert watcher.handle(raw("container", "die", 5 * 10**9, name="b", **managed)) is not None
    older = raw("container", "start", 4 * 10**9, name="a", **managed)
    assert watcher.handle(older) is not None
    assert watcher.handle(dict(older)) is None  # and its replay is still dropped
    assert buffer.last_seq == 2


def test_host_sampler_warns_once_repeats_later_and_recovers(tmp_path: Path, monkeypatch) -> None:
    buffer = EventBuffer(50)
    sampler = HostSampler(buffer, tmp_path, interval=1, disk_percent=90, memory_percent=80,
                          repeat_seconds=100)
    figures = {"disk": 95.0, "memory": 50.0}
    monkeypatch.setattr(sampler, "readings", lambda: {k: (v, {}) for k, v in figures.items()})
    first = sampler.check(now=0)
    assert [(e["action"], e["level"]) for e in first] == [("disk", "warning")]
    assert first[0]["details"] == {"percent": 95.0, "threshold": 90}
    assert sampler.check(now=50) == []  # still above, not repeated yet
    assert [e["action"] for e in sampler.check(now=150)] == ["disk"]
    figures.update(disk=40.0, memory=85.0)
    assert sorted(e["action"] for e in sampler.check(now=160)) == ["disk_recovered", "memory"]


def test_host_sampler_reads_real_figures(tmp_path: Path) -> None:
    readings = HostSampler(EventBuffer(5), tmp_path, interval=1, disk_percent=90,
                           memory_percent=90).readings()
    assert 0 < readings["disk"][0] <= 100 and 0 < readings["memory"][0] <= 100
