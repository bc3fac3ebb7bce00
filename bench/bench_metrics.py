"""`GET /metrics` with 10,000 workspaces and 500 servers: median server time (bar: under 50 ms).

Measured in-process with Flask's test client (no network), the bearer token in the header,
after two warm-up scrapes; each scrape runs the database collector's GROUP BY queries afresh
(nothing cached). It also prints this process's CPU time per scrape and, for scale on a busy
machine, the median of `GET /health` timed alternately in the same run. Besides the workspaces
and servers the database holds 50,000 tasks (a month of history, the newest 300 in flight),
2,000 log entries and 300 alerts, so every query has rows to count.
Database: MariaDB `slipway_test_bench_metrics`, or BENCH_DATABASE_URL (`sqlite` for a temp file).
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from flask_migrate import upgrade  # noqa: E402
from sqlalchemy import insert  # noqa: E402

from app import create_app  # noqa: E402
from app.extensions import db  # noqa: E402
from app.models import Alert, LogEntry, Server, Task, Workspace  # noqa: E402
from app.security.crypto import encrypt_secret  # noqa: E402
from app.timeutil import utcnow  # noqa: E402
from bench.benchdb import fresh_database  # noqa: E402
from config import TestingConfig  # noqa: E402

DEFAULT_URL = "mysql+pymysql://slipway:slipway-test-password@127.0.0.1/slipway_test_bench_metrics"
SERVERS, WORKSPACES, TASKS, LOG_ENTRIES, ALERTS = 500, 10_000, 50_000, 2_000, 300
REQUESTS, BAR_MS = 40, 50.0
TOKEN = "bench-metrics-token-" + "z" * 20


def seed() -> None:
    """Insert the rows in batches (inside an app context)."""
    sealed, now = encrypt_secret("t" * 40, "server.token"), utcnow()
    server_statuses = ("online", "online", "online", "degraded", "offline")
    db.session.execute(insert(Server), [
        {"name": f"host-{n:03d}", "agent_url": f"http://10.0.{n // 250}.{n % 250 + 1}:9100",
         "token_encrypted": sealed, "publish_host": "127.0.0.1", "status": server_statuses[n % 5],
         "consecutive_failures": 0, "consecutive_successes": 0, "last_outcome": "ok", "last_error": "",
         "events_cursor": 0, "events_epoch": "", "created_at": now}
        for n in range(SERVERS)])
    server_ids = list(db.session.scalars(db.select(Server.id).order_by(Server.id)))
    ws_statuses = ("running", "running", "running", "stopped", "stopped", "error", "provisioning")
    for start in range(0, WORKSPACES, 2000):
        db.session.execute(insert(Workspace), [
            {"username": f"user{n:05d}", "server_id": server_ids[n % SERVERS],
             "container_name": f"slipway-ws-user{n:05d}", "image": "slipway/test-workspace:latest",
             "cpu": 1.0, "memory_mb": 512, "status": ws_statuses[n % len(ws_statuses)], "error": "",
             "created_at": now, "updated_at": now}
            for n in range(start, min(start + 2000, WORKSPACES))])
    kinds = ("workspace_provision", "workspace_start", "workspace_stop", "server_test", "reconcile")
    finished_states = ("succeeded",) * 8 + ("failed", "cancelled")
    for start in range(0, TASKS, 5000):
        # a month of history (one task every 50 s); the newest 300 are still queued or running
        db.session.execute(insert(Task), [
            {"kind": kinds[n % len(kinds)], "target": f"user{n % WORKSPACES:05d}", "payload": {},
             "state": ("queued", "running")[n % 2] if n < 300 else finished_states[n % 10], "message": "",
             "progress": 0, "attempts": 1, "max_attempts": 3, "priority": 50, "cancel_requested": False,
             "run_after": now - timedelta(seconds=n * 50), "created_at": now - timedelta(seconds=n * 50),
             "finished_at": None if n < 300 else now - timedelta(seconds=(n - 300) * 50)}
            for n in range(start, min(start + 5000, TASKS))])
    db.session.execute(insert(LogEntry), [
        {"ts": now, "received_at": now, "source": "agent", "category": "docker", "level": "info",
         "message": f"entry {n}", "fields": {}, "risk_score": 0, "rule_ids": []}
        for n in range(LOG_ENTRIES)])
    severities = ("low", "medium", "high", "critical")
    db.session.execute(insert(Alert), [
        {"rule_name": "bench", "group_value": str(n), "open_key": f"bench:{n}" if n % 3 else None,
         "state": "open" if n % 3 else "resolved", "severity": severities[n % 4], "risk_score": 10,
         "count": 1, "message": "", "first_seen": now, "last_seen": now, "note": "", "webhook_status": "",
         "webhook_attempts": 0, "webhook_last_error": ""}
        for n in range(ALERTS)])
    db.session.commit()


def main() -> int:
    """Fill the database, time the scrapes, print the figures; exit 1 when over the bar."""
    with tempfile.TemporaryDirectory() as tmp:
        url = fresh_database(DEFAULT_URL, Path(tmp))
        app = create_app(TestingConfig, {"SQLALCHEMY_DATABASE_URI": url, "DATA_DIR": Path(tmp),
                                         "WORKSPACE_ROOT": Path(tmp) / "ws", "RATELIMIT_ENABLED": False,
                                         "MFA_REQUIRED_ROLES": "", "METRICS_TOKEN": TOKEN})
        with app.app_context():
            upgrade()
            seeding = time.perf_counter()
            seed()
            seeded_s = time.perf_counter() - seeding
        client = app.test_client()
        headers = {"Authorization": f"Bearer {TOKEN}"}
        for _ in range(2):
            assert client.get("/metrics", headers=headers).status_code == 200
        times, cpu, health = [], [], []
        for _ in range(REQUESTS):
            started, started_cpu = time.perf_counter(), time.process_time()
            response = client.get("/metrics", headers=headers)
            times.append((time.perf_counter() - started) * 1000)
            cpu.append((time.process_time() - started_cpu) * 1000)
            assert response.status_code == 200
            started = time.perf_counter()  # the cheapest database page, for scale on a busy machine
            assert client.get("/health").status_code == 200
            health.append((time.perf_counter() - started) * 1000)
        text = response.get_data(as_text=True)
        assert 'slipway_workspaces{status="running"} 4287.0' in text, "workspace counts are wrong"
        assert 'slipway_servers{status="online"} 300.0' in text, "server counts are wrong"
        finished = sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                       if line.startswith("slipway_tasks_finished_last_hour{"))
        assert finished == 72, f"{finished} tasks finished in the last hour, expected 72"
        with app.app_context():
            db.engine.dispose()
    median = statistics.median(times)
    p90 = sorted(times)[int(len(times) * 0.9) - 1]
    where = url.rsplit("@", 1)[-1].split("?")[0]
    print(f"database: {where} ({seeded_s:.1f} s to seed {WORKSPACES} workspaces, {SERVERS} servers, "
          f"{TASKS} tasks, {LOG_ENTRIES} log entries, {ALERTS} alerts)")
    print(f"GET /metrics, {REQUESTS} scrapes via the test client with the bearer token, after 2 warm-ups: "
          f"median {median:.1f} ms, p90 {p90:.1f} ms, min {min(times):.1f} ms ({len(text) // 1024} KiB); "
          f"this process's CPU per scrape: median {statistics.median(cpu):.1f} ms (the rest is the database "
          f"and waiting); GET /health (one SELECT 1) in the same run: "
          f"median {statistics.median(health):.1f} ms")
    ok = median < BAR_MS
    print(f"bar: median under {BAR_MS:.0f} ms: {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
