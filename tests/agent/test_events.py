"""`GET /api/events` on the real agent over the real Docker daemon: order, paging, gaps, signatures."""

from __future__ import annotations

import time

import pytest

from tests.agent.helpers import RUN_ID, TEST_LABEL

pytestmark = pytest.mark.integration


def read(agent, after: int = 0, limit: int | None = None) -> dict:
    """One signed page of events."""
    query = f"?after={after}" + (f"&limit={limit}" if limit is not None else "")
    response = agent.call("GET", "/api/events" + query)
    assert response.status_code == 200, response.text
    return response.json()["data"]


def events_of(agent, container: str, after: int, want: list[str], seconds: float = 20) -> list[dict]:
    """Page through events after `after` until `container` shows the actions `want` (in order)."""
    deadline = time.monotonic() + seconds
    mine: list[dict] = []
    while time.monotonic() < deadline:
        cursor, mine = after, []
        for _ in range(50):
            page = read(agent, cursor, 100)
            mine += [e for e in page["events"] if e["container"] == container]
            cursor = page["next"]
            if not page["more"]:
                break
        if [e["action"] for e in mine][:len(want)] == want:
            return mine
        time.sleep(0.2)
    raise AssertionError(f"events for {container}: {[e['action'] for e in mine]}, wanted {want}")


def lifecycle(agent, body: dict) -> None:
    """Create (start), stop, start, then delete a container through the agent."""
    assert agent.call("POST", "/api/containers", json_body=body).status_code == 201
    assert agent.call("POST", f"/api/containers/{body['name']}/stop").status_code == 200
    assert agent.call("POST", f"/api/containers/{body['name']}/start").status_code == 200
    assert agent.call("POST", f"/api/containers/{body['name']}/delete").status_code == 200


def test_container_lifecycle_appears_in_order_with_labels(agent, spec) -> None:
    before = read(agent)["latest"]
    body = spec(labels={TEST_LABEL: RUN_ID, "slipway.user": "alice", "slipway.workspace_id": "42"})
    lifecycle(agent, body)
    mine = events_of(agent, body["name"], before, ["start", "kill", "die", "start"])
    seqs = [e["seq"] for e in mine]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    first = mine[0]
    assert first["type"] == "container" and first["user"] == "alice" and first["workspace_id"] == "42"
    assert first["image"] == body["image"] and first["ts"].endswith("Z")
    die = mine[2]
    assert isinstance(die["exit_code"], int) and str(die["exit_code"]) in die["message"]


def test_limit_and_after_page_without_repeats(agent, spec) -> None:
    before = read(agent)["latest"]
    body = spec()
    lifecycle(agent, body)
    events_of(agent, body["name"], before, ["start", "kill", "die", "start"])
    seen, cursor = [], before
    for _ in range(100):
        page = read(agent, cursor, 1)
        assert len(page["events"]) <= 1 and page["gap"] is None
        seen += page["events"]
        cursor = page["next"]
        if not page["more"]:
            break
    assert [e["seq"] for e in seen] == list(range(before + 1, cursor + 1))
    assert len(read(agent, before, 5000)["events"]) <= 1000  # the limit is capped
    assert agent.call("GET", "/api/events?after=-1").status_code == 400
    assert agent.call("GET", "/api/events?limit=0").status_code == 400
    assert agent.call("GET", "/api/events?after=abc").json()["message"].startswith("after:")


def test_overflow_reports_a_gap(start_agent, spec) -> None:
    with start_agent(AGENT_EVENTS_MAX="3") as small:
        body = spec()
        lifecycle(small, body)
        deadline = time.monotonic() + 20
        while read(small)["latest"] < 5 and time.monotonic() < deadline:
            time.sleep(0.2)
        page = read(small, 0, 100)
        latest = page["latest"]
        assert latest >= 5 and len(page["events"]) == 3
        assert page["gap"] == {"from": 1, "to": latest - 3}
        assert [e["seq"] for e in page["events"]] == [latest - 2, latest - 1, latest]
        assert read(small, latest - 3, 100)["gap"] is None


def test_host_warning_when_disk_above_threshold(start_agent) -> None:
    with start_agent(AGENT_DISK_WARN_PERCENT="1", AGENT_HOST_CHECK_SECONDS="1") as agent:
        deadline = time.monotonic() + 15
        found: list[dict] = []
        while not found and time.monotonic() < deadline:
            found = [e for e in read(agent, 0, 1000)["events"]
                     if e["type"] == "host" and e["action"] == "disk"]
            time.sleep(0.2)
        assert found and found[0]["level"] == "warning"
        assert found[0]["details"]["threshold"] == 1 and found[0]["details"]["percent"] >= 1


def test_each_agent_process_has_its_own_epoch(agent, start_agent) -> None:
    with start_agent() as other:
        assert read(other)["epoch"] != read(agent)["epoch"]


def test_unsigned_request_is_refused(agent) -> None:
    response = agent.call("GET", "/api/events?after=0", sign=False)
    assert response.status_code == 401 and response.json()["success"] is False


def test_build_tag_and_delete_of_an_agent_built_image(agent, docker_client, test_image) -> None:
    before = read(agent)["latest"]
    tag = f"slipway-events-{RUN_ID}:v1"
    try:
        dockerfile = f"FROM {test_image}\nLABEL a=b\n"
        outcome = agent.ndjson("/api/images/build", {"tag": tag, "dockerfile": dockerfile})
        assert outcome[-1]["success"] is True, outcome[-1]
        assert agent.call("POST", "/api/images/delete", json_body={"ref": tag}).status_code == 200
        deadline = time.monotonic() + 20
        actions: list[str] = []
        while time.monotonic() < deadline:
            images = [e for e in read(agent, before, 1000)["events"] if e["type"] == "image"]
            actions = [e["action"] for e in images]
            if "build" in actions and "delete" in actions:
                break
            time.sleep(0.2)
        assert {"build", "tag", "delete"} <= set(actions), actions
        built = next(e for e in images if e["action"] == "build")
        assert built["image"] == tag and built["details"]["success"] is True
    finally:
        for image in docker_client.images.list(name=f"slipway-events-{RUN_ID}"):
            docker_client.images.remove(image.id, force=True)
