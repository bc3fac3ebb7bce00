"""Analytics under steady load: 100 requests/s for 60 s over HTTP; sent must equal stored, nobody waits.

The app runs in Werkzeug's threaded HTTP server on 127.0.0.1 (analytics on, defaults: flush every
second or every 1,000 rows); four client threads send GET /login on a fixed schedule of 100 a
second (BENCH_SECONDS changes the length). Bars: every request answered is stored (counted
in `request_logs` once the flusher has caught up, without a final flush), no row overflowed,
and no request waited on the flusher: the recording step (a deque append) is timed inside the
server and its 99th percentile must stay under 1 ms. The flusher writes about once a second,
so requests that waited for its batch writes would put the write time (printed beside it)
into the top percent; the maximum is printed too (on a busy machine it shows the scheduler).
Database: SQLite in a temp dir, or BENCH_DATABASE_URL (e.g. MariaDB).
"""

from __future__ import annotations

import http.client
import logging
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from flask_migrate import upgrade  # noqa: E402
from sqlalchemy import func, select  # noqa: E402
from werkzeug.serving import make_server  # noqa: E402

import app.analytics.buffer as buffer_module  # noqa: E402
from app import create_app  # noqa: E402
from app.analytics.middleware import buffer_for  # noqa: E402
from app.extensions import db  # noqa: E402
from app.models import RequestLog  # noqa: E402
from bench.benchdb import fresh_database  # noqa: E402
from config import TestingConfig  # noqa: E402

RATE, SECONDS, SENDERS, ADD_P99_BAR_MS = 100, int(os.environ.get("BENCH_SECONDS", "60")), 4, 1.0


def _stored(app) -> int:
    with app.app_context():
        query = select(func.count()).select_from(RequestLog).where(RequestLog.route == "/login")
        return db.session.scalar(query)


def main() -> int:
    """Serve, send on schedule, wait for the flusher, compare counts; exit 1 when a bar is missed."""
    with tempfile.TemporaryDirectory() as tmp:
        url = fresh_database("sqlite", Path(tmp))
        app = create_app(TestingConfig, {"SQLALCHEMY_DATABASE_URI": url, "DATA_DIR": Path(tmp),
                                         "WORKSPACE_ROOT": Path(tmp) / "ws", "RATELIMIT_ENABLED": False,
                                         "ANALYTICS_ENABLED": True})
        with app.app_context():
            upgrade()
        buffer = buffer_for(app)
        add_ms: list[float] = []
        flush_ms: list[float] = []
        real_add, real_flush = buffer.add, buffer.flush

        def timed_add(row: dict) -> None:
            started = time.perf_counter()
            real_add(row)
            add_ms.append((time.perf_counter() - started) * 1000)

        def timed_flush() -> int:
            started = time.perf_counter()
            written = real_flush()
            if written:
                flush_ms.append((time.perf_counter() - started) * 1000)
            return written

        buffer.add, buffer.flush = timed_add, timed_flush
        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no access line per request
        server = make_server("127.0.0.1", 0, app, threaded=True)
        port = server.server_port
        serving = threading.Thread(target=server.serve_forever, daemon=True)
        serving.start()
        total = RATE * SECONDS
        answered, failed, latency = [0] * SENDERS, [0] * SENDERS, [[] for _ in range(SENDERS)]
        start = time.monotonic() + 0.5

        def sender(slot: int) -> None:
            for n in range(slot, total, SENDERS):
                delay = start + n / RATE - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                began = time.perf_counter()
                try:
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                    conn.request("GET", "/login")
                    status = conn.getresponse().status
                    conn.close()
                except OSError:
                    failed[slot] += 1
                    continue
                latency[slot].append((time.perf_counter() - began) * 1000)
                if status == 200:
                    answered[slot] += 1
                else:
                    failed[slot] += 1

        threads = [threading.Thread(target=sender, args=(i,)) for i in range(SENDERS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=SECONDS + 120)
        finished = time.monotonic()
        took = finished - start
        sent = sum(answered)
        while _stored(app) < sent and time.monotonic() < finished + 15:
            time.sleep(0.1)
        caught_up = time.monotonic() - finished
        stored = _stored(app)
        server.shutdown()
        buffer.stop()
        with app.app_context():
            db.engine.dispose()
    lat = sorted(x for part in latency for x in part)
    adds = sorted(add_ms)
    print(f"{sent} requests answered in {took:.1f} s ({sent / took:.1f}/s; {sum(failed)} failed) over HTTP "
          f"to Werkzeug's threaded server; latency median {statistics.median(lat):.1f} ms, "
          f"p99 {lat[int(len(lat) * 0.99) - 1]:.1f} ms, max {lat[-1]:.1f} ms")
    print(f"stored {stored} of {sent} ({stored - sent:+d}), flusher caught up {caught_up:.1f} s after "
          f"the last request; buffer overflows {buffer.overflowed}; flush batches {len(flush_ms)}, slowest "
          f"{max(flush_ms, default=0):.1f} ms")
    print(f"recording step per request: median {statistics.median(adds) * 1000:.1f} us, "
          f"p99 {adds[int(len(adds) * 0.99) - 1] * 1000:.1f} us, max {adds[-1]:.3f} ms "
          f"(overflow counter {buffer_module.overflowed})")
    add_p99 = adds[int(len(adds) * 0.99) - 1]
    ok = (sent == total and stored == sent and buffer.overflowed == 0 and add_p99 < ADD_P99_BAR_MS)
    print(f"bar: {total} answered, sent = stored, no overflow, recording step p99 under "
          f"{ADD_P99_BAR_MS:.0f} ms: {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
