"""Log ingestion through POST /api/v1/logs into MariaDB, beside the raw `executemany` floor of the same run.

How it is measured: a dedicated MariaDB database (`BENCH_DATABASE_URL`, default
`slipway_test_bench_logs` on 127.0.0.1) is migrated; an admin with a `logs:write` key is created
through the same service as the account page, and alert rules are made active (the day-one defaults
when `app.logs.defaults` provides them, else a handful of rows shaped like them). The worker
(`flask worker`, which evaluates rules after its cursor where the rule engine is wired in) runs
beside the web app, so rules are active but, as designed, never run inside a request.
- floor: `INGEST_PROCS` processes each insert pre-built rows with PyMySQL `executemany` (one
  multi-row INSERT per `BATCH` rows, commit per batch) for `FLOOR_SECONDS`; rows/s summed. The same
  with one process is printed too. The table is emptied afterwards.
- ingest: gunicorn (`GUNICORN_WORKERS` gthread workers, the production entry point `wsgi:app` in
  the production configuration, rate limits off) on loopback; `CLIENTS` client processes each
  POST batches of `BATCH` NDJSON lines (~170 bytes each, pre-built, timestamps of this run) over
  a keep-alive connection for `SECONDS` after a `WARMUP` (not counted). The rate is the sum of
  `accepted` over the timed window / its length; each 10 s slice is printed, and the stored row
  count is checked against the accepted total.
Bars: >= 30,000 entries/s over the 60 s, and >= 0.3x the parallel floor of the same run.
Both compete with MariaDB and each other for the machine's cores: the load average is printed.
"""

from __future__ import annotations

import http.client
import json
import multiprocessing as mp
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import pymysql  # noqa: E402
from flask_migrate import upgrade  # noqa: E402
from sqlalchemy import func, select, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from app.extensions import db  # noqa: E402
from app.logs.defaults import seed_rules  # noqa: E402
from app.models import AlertRule, LogEntry  # noqa: E402
from app.services import api_keys  # noqa: E402
from app.timeutil import utcnow  # noqa: E402
from bench.benchdb import fresh_database  # noqa: E402
from bench.gunicorn_process import production_env, stop, wait_ready  # noqa: E402
from tests.agent.helpers import free_port  # noqa: E402
from tests.builders import make_user  # noqa: E402
from tests.support import build_app  # noqa: E402

DEFAULT_URL = "mysql+pymysql://slipway:slipway-test-password@127.0.0.1/slipway_test_bench_logs"
SECONDS = int(os.environ.get("BENCH_SECONDS", "60"))
WARMUP = 5
FLOOR_SECONDS = 10
BATCH = int(os.environ.get("BENCH_BATCH", "2000"))
GUNICORN_WORKERS = int(os.environ.get("BENCH_WORKERS", "3"))
GUNICORN_THREADS = 2
CLIENTS = int(os.environ.get("BENCH_CLIENTS", "6"))
INGEST_PROCS = GUNICORN_WORKERS
BAR_RATE = 30_000
BAR_RATIO = 0.3


def _line(i: int, ts: str) -> bytes:
    entry = {"ts": ts, "source": "nginx", "host": f"web-{i % 7}",
             "level": ("info", "warning", "error")[i % 3],
             "message": f"GET /api/items/{i} {(200, 404, 504)[i % 3]} 0.0{i % 10}s",
             "fields": {"ip": f"192.0.2.{i % 250}", "status": (200, 404, 504)[i % 3]}}
    return json.dumps(entry, separators=(",", ":")).encode()


def _bodies(count: int) -> list[bytes]:
    ts = utcnow().isoformat(timespec="milliseconds") + "Z"
    return [b"\n".join(_line(n * BATCH + i, ts) for i in range(BATCH)) + b"\n" for n in range(count)]


def _rules(app) -> str:
    with app.app_context():
        seed_rules()
        db.session.commit()
        count = db.session.scalar(select(func.count(AlertRule.id)).where(AlertRule.enabled.is_(True)))
        return f"{count} enabled alert rules: the day-one defaults"


def _floor_rows(count: int) -> list[tuple]:
    now = utcnow()
    rows = []
    for i in range(count):
        entry = json.loads(_line(i, "x"))
        rows.append((now, now, entry["source"], "ingest", entry["level"], None, None, None, entry["host"],
                     entry["message"], json.dumps(entry["fields"]), 0, "[]"))
    return rows


FLOOR_SQL = (
    "INSERT INTO log_entries (ts, received_at, source, category, level, server_id, workspace_id,"
    " username, host, message, fields, risk_score, rule_ids)"
    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
)


def _floor_worker(url: str, seconds: float, out: mp.Queue) -> None:
    parts = make_url(url)
    conn = pymysql.connect(host=parts.host, user=parts.username, password=parts.password,
                           database=parts.database, charset="utf8mb4")
    rows = _floor_rows(BATCH)
    done = 0
    deadline = time.perf_counter() + seconds
    start = time.perf_counter()
    with conn.cursor() as cur:
        while time.perf_counter() < deadline:
            cur.executemany(FLOOR_SQL, rows)
            conn.commit()
            done += len(rows)
    out.put((done, time.perf_counter() - start))
    conn.close()


def _floor(url: str, procs: int) -> float:
    out: mp.Queue = mp.Queue()
    workers = [mp.Process(target=_floor_worker, args=(url, FLOOR_SECONDS, out)) for _ in range(procs)]
    for worker in workers:
        worker.start()
    results = [out.get(timeout=FLOOR_SECONDS + 60) for _ in workers]
    for worker in workers:
        worker.join(timeout=10)
    return sum(done / elapsed for done, elapsed in results)


def _client(port: int, key: str, bodies: list[bytes], start_at: float, end_at: float, out: mp.Queue) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"Content-Type": "application/x-ndjson", "Authorization": f"Bearer {key}"}
    samples = []  # (finished at, accepted) of each request that ended inside the timed window
    errors = 0
    n = 0
    while time.time() < end_at:
        conn.request("POST", "/api/v1/logs", body=bodies[n % len(bodies)], headers=headers)
        response = conn.getresponse()
        payload = response.read()
        n += 1
        finished = time.time()
        if response.status != 200:
            errors += 1
            if errors <= 3:
                print(f"  client: HTTP {response.status} {payload[:200]!r}", file=sys.stderr)
            continue
        accepted = json.loads(payload)["data"]["accepted"]
        if start_at <= finished <= end_at:
            samples.append((finished, accepted))
    out.put((samples, errors, n))
    conn.close()



def main() -> int:
    """Measure the floor, then the API under load; print both; exit 1 when a bar is missed."""
    data_dir = Path(tempfile.mkdtemp(prefix="slipway-bench-logs-"))
    url = fresh_database(DEFAULT_URL, data_dir)
    if not url.startswith("mysql"):
        print("this bench measures MariaDB; set BENCH_DATABASE_URL to a mysql+pymysql URL")
        return 1
    app = build_app(url, data_dir)
    with app.app_context():
        upgrade()
        admin = make_user("benchadmin", role="admin")
        key = api_keys.create(admin, "bench shipper", "logs:write", None, source="cli").value
    print(f"database: {url.split('@')[-1]}; batches of {BATCH} lines; load average {os.getloadavg()[0]:.1f}")
    print(_rules(app))

    floor_one = _floor(url, 1)
    floor = _floor(url, INGEST_PROCS)
    with app.app_context():
        db.session.execute(text("TRUNCATE TABLE log_entries"))
        db.session.commit()
    print(f"floor (PyMySQL executemany, {BATCH}-row batches, {FLOOR_SECONDS} s): 1 connection "
          f"{floor_one:,.0f} rows/s; {INGEST_PROCS} connections {floor:,.0f} rows/s")

    port = free_port()
    env = production_env(url, data_dir)
    server = subprocess.Popen(
        [str(ROOT / ".venv/bin/gunicorn"), "-w", str(GUNICORN_WORKERS), "-k", "gthread", "--threads",
         str(GUNICORN_THREADS), "-b", f"127.0.0.1:{port}", "--log-level", "warning", "wsgi:app"],
        cwd=ROOT, env=env,
    )
    worker = subprocess.Popen([str(ROOT / ".venv/bin/flask"), "--app", "wsgi", "worker"], cwd=ROOT, env=env,
                              stdout=subprocess.DEVNULL)
    try:
        wait_ready(port, server)
        bodies = _bodies(4)
        start_at = time.time() + WARMUP
        end_at = start_at + SECONDS
        out: mp.Queue = mp.Queue()
        clients = [mp.Process(target=_client, args=(port, key, bodies, start_at, end_at, out))
                   for _ in range(CLIENTS)]
        for client in clients:
            client.start()
        results = [out.get(timeout=WARMUP + SECONDS + 120) for _ in clients]
        for client in clients:
            client.join(timeout=10)
        load = os.getloadavg()[0]
    finally:
        stop(server)
        stop(worker)
    samples = [s for result in results for s in result[0]]
    errors = sum(result[1] for result in results)
    accepted = sum(n for _, n in samples)
    rate = accepted / SECONDS
    slices = []
    for k in range(0, SECONDS, 10):
        lo, hi = start_at + k, start_at + min(k + 10, SECONDS)
        slices.append(sum(n for t, n in samples if lo <= t < hi) / (hi - lo))
    with app.app_context():
        stored = db.session.scalar(select(func.count(LogEntry.id)))
        db.engine.dispose()
    requests = sum(result[2] for result in results)
    ratio = rate / floor if floor else 0.0
    print(f"ingest: POST /api/v1/logs through gunicorn ({GUNICORN_WORKERS} workers x {GUNICORN_THREADS} "
          f"threads), {CLIENTS} clients, {SECONDS} s after a {WARMUP} s warm-up")
    print(f"  {rate:,.0f} entries/s sustained (10 s slices: {', '.join(f'{s:,.0f}' for s in slices)}; "
          f"min {min(slices):,.0f}, median {statistics.median(slices):,.0f})")
    print(f"  {requests} requests, {errors} errors; {stored:,} rows stored (warm-up and tail included) for "
          f"{accepted:,} accepted in the window; load average at the end {load:.1f}")
    print(f"  ratio to the {INGEST_PROCS}-connection floor: {ratio:.2f}x (goal >= {BAR_RATIO}x); "
          f"to the 1-connection floor: {rate / floor_one:.2f}x")
    ok = rate >= BAR_RATE and ratio >= BAR_RATIO and errors == 0 and stored >= accepted
    print(f"bars: >= {BAR_RATE:,} entries/s for {SECONDS} s and >= {BAR_RATIO}x the floor: "
          f"{'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
