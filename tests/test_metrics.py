"""`/metrics` (token or allow-list, else 404; route templates; database gauges) and `/health/ready`."""

from __future__ import annotations

import ipaddress
import os
import socket
import subprocess
import sys
import threading
from datetime import timedelta
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from app.extensions import db
from app.metrics.multiproc import enable_multiproc
from app.models import Alert, LogEntry, Task, WorkerHeartbeat
from app.timeutil import utcnow
from app.worker.poller import Poller
from app.worker.runner import Runner
from tests.agent.helpers import free_port
from tests.builders import make_server, make_user, make_workspace
from tests.support import build_app

TOKEN = "metrics-token-" + "x" * 24
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def metrics_app(database_url, tmp_path, app):
    """The suite's app (for its table cleanup) with a metrics token and the edge check off."""
    app.config.update(METRICS_TOKEN=TOKEN, READY_CHECK_EDGE=False)
    return app


def scrape(client, token: str = TOKEN) -> str:
    response = client.get("/metrics", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.status_code
    return response.get_data(as_text=True)


def samples(text: str) -> dict[tuple[str, tuple], float]:
    """{(sample name, sorted labels): value} of a Prometheus text page."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(text: str, name: str, **labels: str) -> float:
    return samples(text).get((name, tuple(sorted(labels.items()))), 0.0)


# -- access -------------------------------------------------------------------------------------

def test_metrics_is_404_without_the_token_or_with_a_wrong_one(metrics_app):
    client = metrics_app.test_client()
    for headers in ({}, {"Authorization": "Bearer wrong-token-wrong-token"}, {"Authorization": TOKEN},
                    {"Authorization": f"Basic {TOKEN}"}, {"Authorization": f"Bearer {TOKEN}x"},
                    {"Authorization": "Bearer "}):
        response = client.get("/metrics", headers=headers)
        assert response.status_code == 404, headers
        assert b"slipway_" not in response.data
    assert client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200


def test_metrics_is_404_when_neither_token_nor_allow_list_is_set(app):
    app.config.update(METRICS_TOKEN=None, METRICS_ALLOW=())
    client = app.test_client()
    assert client.get("/metrics").status_code == 404
    assert client.get("/metrics", headers={"Authorization": "Bearer None"}).status_code == 404
    assert client.get("/metrics", headers={"Authorization": "Bearer "}).status_code == 404


def test_allow_list_uses_the_real_client_address(database_url, tmp_path):
    app = build_app(database_url, tmp_path, TRUSTED_PROXY_COUNT=1, TRUSTED_PROXIES="127.0.0.1",
                    METRICS_ALLOW=(ipaddress.ip_network("10.1.2.0/24"),), READY_CHECK_EDGE=False)
    client = app.test_client()
    # through the trusted proxy: the forwarded address decides
    assert client.get("/metrics", headers={"X-Forwarded-For": "10.1.2.3"}).status_code == 200
    assert client.get("/metrics", headers={"X-Forwarded-For": "10.1.3.3"}).status_code == 404
    assert client.get("/metrics").status_code == 404  # the proxy itself is not on the list
    # an untrusted peer cannot forge its way in
    forged = client.get("/metrics", headers={"X-Forwarded-For": "10.1.2.3"},
                        environ_base={"REMOTE_ADDR": "192.0.2.7"})
    assert forged.status_code == 404
    direct = build_app(database_url, tmp_path, METRICS_ALLOW=(ipaddress.ip_network("192.0.2.0/24"),))
    direct_client = direct.test_client()
    assert direct_client.get("/metrics", environ_base={"REMOTE_ADDR": "192.0.2.7"}).status_code == 200
    assert direct_client.get("/metrics", environ_base={"REMOTE_ADDR": "198.51.100.1"}).status_code == 404


def test_metrics_settings_are_typed_and_validated(tmp_path):
    from app.settings_checks import validate
    from config import TestingConfig

    settings, problems = TestingConfig.load({"SLIPWAY_METRICS_ALLOW": "10.0.0.0/8, ::1/128",
                                             "SLIPWAY_DATA_DIR": str(tmp_path)})
    assert problems == []
    assert settings["METRICS_ALLOW"] == (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("::1/128"))
    assert settings["METRICS_TOKEN"] is None
    _, problems = TestingConfig.load({"SLIPWAY_METRICS_ALLOW": "10.0.0.1/8"})
    assert any("SLIPWAY_METRICS_ALLOW" in p for p in problems)
    settings, _ = TestingConfig.load({"SLIPWAY_METRICS_TOKEN": "short", "SLIPWAY_DATA_DIR": str(tmp_path)})
    assert any("SLIPWAY_METRICS_TOKEN" in p for p in validate(settings))
    settings, _ = TestingConfig.load({"SLIPWAY_WORKER_HEARTBEAT_STALE_SECONDS": "0",
                                      "SLIPWAY_DATA_DIR": str(tmp_path)})
    assert any("HEARTBEAT" in p for p in validate(settings))


# -- what it shows ------------------------------------------------------------------------------

def test_requests_are_counted_by_route_template_never_the_raw_path(metrics_app):
    client = metrics_app.test_client()
    before = scrape(client)
    client.get("/health")
    client.get("/servers/424242")  # logged out: a redirect, but the rule matched
    hostile = "/nope/%3Cscript%3E%22%0d%0aX-Evil:%201/" + "a" * 300
    client.get(hostile)
    client.open("/health", method="BREW")
    after = scrape(client)
    assert "424242" not in after and "script" not in after and "aaaa" not in after
    delta = {key: after_value - samples(before).get(key, 0.0) for key, after_value in samples(after).items()}
    requests_total = {dict(k[1])["route"]: v for k, v in delta.items()
                      if k[0] == "slipway_http_requests_total" and v}
    assert requests_total["/health"] >= 1
    assert requests_total["/servers/<int:server_id>"] == 1
    assert requests_total["unmatched"] >= 1  # the hostile path
    assert value(after, "slipway_http_requests_total", route="unmatched", method="GET", status="404") >= 1
    assert value(after, "slipway_http_requests_total", route="unmatched", method="other", status="405") >= 1
    histogram = value(after, "slipway_http_request_duration_seconds_count", route="/health", method="GET")
    assert histogram - value(before, "slipway_http_request_duration_seconds_count", route="/health",
                             method="GET") == 1
    assert value(after, "slipway_http_request_duration_seconds_bucket", route="/health", method="GET",
                 le="+Inf") == histogram


def test_database_gauges_count_rows_by_status_kind_and_severity(metrics_app):
    with metrics_app.app_context():
        server = make_server("m-one", status="online")
        make_server("m-two", status="offline")
        for name, status in (("mia", "running"), ("max", "running"), ("moe", "stopped")):
            make_workspace(make_user(name), server, status=status)
        now = utcnow()
        db.session.add_all([
            Task(kind="workspace_start", state="queued", run_after=now - timedelta(seconds=90)),
            Task(kind="workspace_start", state="queued", run_after=now + timedelta(hours=1)),  # not due yet
            Task(kind="workspace_stop", state="failed", finished_at=now - timedelta(minutes=5)),
            Task(kind="workspace_stop", state="failed", finished_at=now - timedelta(hours=2)),  # too old
            Task(kind="workspace_stop", state="running"),
            Alert(rule_name="r", state="open", severity="high", open_key="a"),
            Alert(rule_name="r", state="open", severity="high", open_key="b"),
            Alert(rule_name="r", state="resolved", severity="low"),
            LogEntry(source="test", message="one"),
            LogEntry(source="test", message="two"),
        ])
        db.session.commit()
        last_log_id = db.session.scalar(db.select(db.func.max(LogEntry.id)))
    text = scrape(metrics_app.test_client())
    assert value(text, "slipway_workspaces", status="running") == 2
    assert value(text, "slipway_workspaces", status="stopped") == 1
    assert ("slipway_workspaces", (("status", "error"),)) in samples(text)  # known statuses always listed
    assert value(text, "slipway_servers", status="online") == 1
    assert value(text, "slipway_servers", status="offline") == 1
    assert value(text, "slipway_tasks", kind="workspace_start", state="queued") == 2
    assert value(text, "slipway_tasks", kind="workspace_stop", state="running") == 1
    assert ("slipway_tasks", (("kind", "workspace_stop"), ("state", "failed"))) not in samples(text)
    assert value(text, "slipway_tasks_finished_last_hour", kind="workspace_stop", state="failed") == 1
    assert value(text, "slipway_tasks_finished_last_hour", kind="workspace_start", state="succeeded") == 0
    assert value(text, "slipway_task_queue_depth") == 1
    assert 89 <= value(text, "slipway_task_queue_oldest_age_seconds") < 200
    assert value(text, "slipway_alerts_open", severity="high") == 2
    assert value(text, "slipway_alerts_open", severity="low") == 0
    assert value(text, "slipway_log_entries_ingested_total") == last_log_id
    assert "slipway_analytics_buffer_overflows_total" in text
    assert 'slipway_http_requests_total{' in text and "slipway_http_request_duration_seconds_bucket{" in text


def test_analytics_overflow_counter_is_the_shared_hook(metrics_app):
    from app.metrics.registry import ANALYTICS_OVERFLOWS

    client = metrics_app.test_client()
    before = value(scrape(client), "slipway_analytics_buffer_overflows_total")
    ANALYTICS_OVERFLOWS.inc(3)
    assert value(scrape(client), "slipway_analytics_buffer_overflows_total") == before + 3


def test_worker_beats_and_poll_figures_reach_metrics(metrics_app):
    metrics_app.config.update(AGENT_CONNECT_TIMEOUT=0.5, AGENT_READ_TIMEOUT=0.5, POLL_POOL_SIZE=2)
    with metrics_app.app_context():
        make_server("dead-agent", agent_url=f"http://127.0.0.1:{free_port()}")
    poller = Poller(metrics_app, holder="metrics-test")
    for _ in range(2):
        with metrics_app.app_context():
            assert poller.acquire_lease()
            poller.poll_round()
    stop = threading.Event()
    stop.set()
    Runner(metrics_app, worker_id="runner-test", concurrency=1)._heartbeat_loop(stop)
    text = scrape(metrics_app.test_client())
    assert value(text, "slipway_agent_call_errors_total", server="dead-agent") == 2
    assert 0 < value(text, "slipway_poll_round_duration_seconds") < 5
    assert 0 <= value(text, "slipway_worker_heartbeat_age_seconds", role="runner") < 30
    assert ("slipway_worker_heartbeat_age_seconds", (("role", "poller"),)) in samples(text)


# -- multiprocess mode -----------------------------------------------------------------------------

CHILD = """
import os, sys
from tests.support import build_app
from pathlib import Path
app = build_app(sys.argv[1], Path(sys.argv[2]), METRICS_TOKEN=sys.argv[3], READY_CHECK_EDGE=False)
client = app.test_client()
for _ in range(int(sys.argv[4])):
    assert client.get("/health").status_code == 200
if len(sys.argv) > 5:
    print(client.get("/metrics", headers={"Authorization": "Bearer " + sys.argv[3]}).get_data(as_text=True))
"""


def test_multiprocess_mode_adds_up_every_process_and_starts_clean(database_url, tmp_path, app):
    directory = tmp_path / "prom"
    directory.mkdir()
    (directory / "counter_999999.db").write_bytes(b"left over from an earlier run")
    (directory / "stale").mkdir()
    saved = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    try:
        enable_multiproc(directory)  # what gunicorn.conf.py does in the master
    finally:
        if saved is None:
            os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
        else:
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = saved
    assert list(directory.iterdir()) == []
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory), "SLIPWAY_ENV": "testing"}

    def child(*args: str) -> str:
        command = [sys.executable, "-c", CHILD, database_url, str(tmp_path / "d"), TOKEN, *args]
        result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr[-2000:]
        return result.stdout

    child("3")
    child("4")
    text = child("0", "scrape")
    assert value(text, "slipway_http_requests_total", route="/health", method="GET", status="200") == 7
    assert value(text, "slipway_http_request_duration_seconds_count", route="/health", method="GET") == 7


def test_gunicorn_config_cleans_the_directory_before_workers_start(tmp_path, monkeypatch):
    import runpy

    directory = tmp_path / "prom"
    directory.mkdir()
    (directory / "histogram_4242.db").write_bytes(b"old")
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(directory))
    settings = runpy.run_path(str(ROOT / "gunicorn.conf.py"))
    assert list(directory.iterdir()) == []
    assert callable(settings["child_exit"])
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR")
    monkeypatch.setenv("SLIPWAY_DATA_DIR", str(tmp_path / "data"))
    runpy.run_path(str(ROOT / "gunicorn.conf.py"))
    assert (tmp_path / "data" / "prometheus").is_dir()
    assert os.environ["PROMETHEUS_MULTIPROC_DIR"] == str(tmp_path / "data" / "prometheus")


# -- readiness ----------------------------------------------------------------------------------

def set_beat(app, age_seconds: float) -> None:
    with app.app_context():
        row = db.session.get(WorkerHeartbeat, "runner") or WorkerHeartbeat(name="runner", holder="h")
        row.beat_at = utcnow() - timedelta(seconds=age_seconds)
        db.session.add(row)
        db.session.commit()


def test_ready_is_503_naming_the_worker_when_its_heartbeat_is_missing_or_stale(metrics_app):
    client = metrics_app.test_client()
    missing = client.get("/health/ready")
    assert missing.status_code == 503
    assert missing.json["data"] == {"database": True, "worker": False}
    assert "worker" in missing.json["message"]
    set_beat(metrics_app, 5)
    fresh = client.get("/health/ready")
    assert fresh.status_code == 200 and fresh.json["data"] == {"database": True, "worker": True}
    set_beat(metrics_app, metrics_app.config["WORKER_HEARTBEAT_STALE_SECONDS"] + 30)
    stale = client.get("/health/ready")
    assert stale.status_code == 503 and stale.json["data"]["worker"] is False
    assert client.get("/health").status_code == 200  # the cheap check does not look at the worker


def test_ready_checks_the_edge_port_when_no_pid_file(metrics_app, tmp_path):
    port = free_port()
    metrics_app.config.update(READY_CHECK_EDGE=True, EDGE_DIR=tmp_path / "no-edge", EDGE_BIND="127.0.0.1",
                              EDGE_PORT=port)
    set_beat(metrics_app, 1)
    client = metrics_app.test_client()
    down = client.get("/health/ready")
    assert down.status_code == 503 and down.json["data"]["edge"] is False and "edge" in down.json["message"]
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", port))
        listener.listen(4)
        up = client.get("/health/ready")
    assert up.status_code == 200, up.json
    assert up.json["data"] == {"database": True, "worker": True, "edge": True}


def test_ready_sees_a_live_edge_master_by_its_pid_file(metrics_app, tmp_path):
    edge = tmp_path / "edge"
    edge.mkdir()
    metrics_app.config.update(READY_CHECK_EDGE=True, EDGE_DIR=edge, EDGE_PORT=free_port())
    set_beat(metrics_app, 1)
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        (edge / "nginx.pid").write_text(f"{sleeper.pid}\n")
        assert metrics_app.test_client().get("/health/ready").status_code == 200
    finally:
        sleeper.kill()
        sleeper.wait(5)
    assert metrics_app.test_client().get("/health/ready").status_code == 503
