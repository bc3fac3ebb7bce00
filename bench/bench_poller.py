"""Poller benchmark: stub agents on loopback ports, 10 % dead and 10 % slow.

For 50, 100, 250 and 500 agents (the stubs run in a separate process, `tests.stub_agent`),
one poller process runs `Poller.poll_round()` five times and reports the median cycle wall
time, the poller process's CPU time per cycle (time.process_time: main thread plus pool
threads) and the outcome counts. Bar: at 500 agents one cycle completes within the read
timeout + 1 s. Database: SQLite in a temp dir, or BENCH_DATABASE_URL (e.g. MariaDB).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from flask_migrate import upgrade  # noqa: E402
from sqlalchemy import MetaData, create_engine, delete  # noqa: E402

from app import create_app  # noqa: E402
from app.extensions import db  # noqa: E402
from app.models import PollerLease, Server, ServerMetric  # noqa: E402
from app.security.crypto import encrypt_secret  # noqa: E402
from app.worker.poller import Poller  # noqa: E402
from config import TestingConfig  # noqa: E402

TOKEN = "b" * 40
CONNECT_TIMEOUT, READ_TIMEOUT, SLOW_DELAY = 1.0, 2.0, 4.0
SIZES = (50, 100, 250, 500)
ROUNDS = 5


def start_fleet(count: int) -> tuple[subprocess.Popen, list[dict]]:
    """Start `count` stubs in a child process; returns it and their URLs/modes."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.stub_agent", str(count), "0.1", "0.1", str(SLOW_DELAY), TOKEN],
        cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    stubs = []
    for line in proc.stdout:
        if line.strip() == "ready":
            break
        stubs.append(json.loads(line))
    return proc, stubs


def make_app(tmp: Path):
    """A migrated app on SQLite (or BENCH_DATABASE_URL) with poller settings for the bench."""
    url = os.environ.get("BENCH_DATABASE_URL") or f"sqlite:///{tmp / 'bench.db'}"
    engine = create_engine(url)
    meta = MetaData()
    meta.reflect(engine)
    meta.drop_all(engine)
    engine.dispose()
    app = create_app(TestingConfig, {
        "SQLALCHEMY_DATABASE_URI": url, "DATA_DIR": tmp, "WORKSPACE_ROOT": tmp / "ws",
        "AGENT_CONNECT_TIMEOUT": CONNECT_TIMEOUT, "AGENT_READ_TIMEOUT": READ_TIMEOUT,
    })
    with app.app_context():
        upgrade()
    return app


def bench_size(app, count: int) -> dict:
    """Median cycle time and CPU per cycle for `count` agents."""
    proc, stubs = start_fleet(count)
    try:
        with app.app_context():
            db.session.execute(delete(ServerMetric))
            db.session.execute(delete(Server))
            db.session.execute(delete(PollerLease))
            sealed = encrypt_secret(TOKEN, "server.token")
            db.session.add_all(Server(name=f"s{n}", agent_url=stub["url"], token_encrypted=sealed,
                                      publish_host="127.0.0.1") for n, stub in enumerate(stubs))
            db.session.commit()
        poller = Poller(app, holder="bench")
        walls, cpus, outcomes = [], [], {}
        for _ in range(ROUNDS):
            with app.app_context():
                poller.acquire_lease()
                cpu0, wall0 = time.process_time(), time.perf_counter()
                report = poller.poll_round()
                walls.append(time.perf_counter() - wall0)
                cpus.append(time.process_time() - cpu0)
                outcomes = report.outcomes
            time.sleep(0.2)
        poller.pool.shutdown(wait=True)
    finally:
        proc.stdin.close()
        proc.wait(30)
    result = {"agents": count, "median_cycle_s": statistics.median(walls), "max_cycle_s": max(walls),
              "median_cpu_s": statistics.median(cpus), "outcomes": outcomes}
    print(f"  {count:4d} agents: cycle median {result['median_cycle_s']:.2f}s (max {max(walls):.2f}s), "
          f"poller CPU {result['median_cpu_s'] * 1000:.0f} ms/cycle, outcomes {outcomes}", flush=True)
    return result


def main() -> int:
    """Run every size and print the figures; exit 1 if 500 agents miss the bar."""
    bound = READ_TIMEOUT + 1
    print(f"poller bench: {ROUNDS} rounds per size, connect timeout {CONNECT_TIMEOUT}s, read timeout "
          f"{READ_TIMEOUT}s, slow stubs sleep {SLOW_DELAY}s; stubs in a separate process; "
          f"pool {TestingConfig.load()[0]['POLL_POOL_SIZE']} threads")
    with tempfile.TemporaryDirectory() as tmp:
        app = make_app(Path(tmp))
        results = [bench_size(app, count) for count in SIZES]
    first, last = results[0], results[-1]
    print(f"growth 50 -> 500 agents: cycle x{last['median_cycle_s'] / first['median_cycle_s']:.2f}, "
          f"CPU x{last['median_cpu_s'] / max(first['median_cpu_s'], 1e-9):.2f}")
    ok = last["max_cycle_s"] <= bound
    print(f"bar: 500 agents within read timeout + 1 s = {bound:.1f}s: {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
