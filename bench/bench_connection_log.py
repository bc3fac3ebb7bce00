"""Connection-log ingestion against the edge's own peak: the tailer keeps up, with < 5 s lag.

How it is measured (one run, same machine): the Slipway edge (generated map route, `auth_request`
to the real web app in a threaded Werkzeug server, its JSON access log buffered 64 KiB / flushed
every second) proxies a static 1 KiB page served by its own nginx, as in
bench/bench_edge_throughput.py; `wrk -t2 -c32 -d10s` drives it flat out with the owner's cookie
(after a 1 s warm-up, whose lines are ingested first). Meanwhile the worker's tailer runs as in
production (`ingest_available` every CONNECTION_TAIL_SECONDS, default 1 s) into a migrated
database (`BENCH_DATABASE_URL`, else SQLite), and a sampler reads the newest ingested request time
every 0.25 s:
- edge peak: wrk's requests/s = access-log lines/s the edge writes at its peak;
- lag: now − newest request end time in the connection log, max and median over the run, plus how
  long the last line took to be ingested after wrk stopped;
- capacity: the same file ingested again from offset 0 into emptied tables, as fast as it goes
  (lines / s of one tailer) — compared with the edge peak.
Bars: capacity >= edge peak, max lag < 5 s, drained < 5 s after the load stops.
wrk, nginx, the web app and the tailer share the machine's cores: the load average is printed.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import delete, func, select  # noqa: E402
from werkzeug.serving import make_server  # noqa: E402

from app.connections.ingest import CURSOR_NAME, Garbled, ingest_available, parse_line  # noqa: E402
from app.connections.tailer import Tailer  # noqa: E402
from app.extensions import db  # noqa: E402
from app.models import ConnectionSession, ConnectionTail, UserSession, Workspace  # noqa: E402
from app.routing.edge_server import access_log_path, start_edge, stop_edge  # noqa: E402
from app.routing.sync import regenerate  # noqa: E402
from app.security.tokens import Grant, cookie_name, cookie_value  # noqa: E402
from app.timeutil import utcnow  # noqa: E402
from bench.bench_edge_throughput import UPSTREAM_BODY, nginx_conf, wait_port  # noqa: E402
from bench.bench_workspaces import migrated_sqlite  # noqa: E402
from tests.agent.helpers import free_port  # noqa: E402
from tests.builders import make_server as make_server_row  # noqa: E402
from tests.builders import make_user, make_workspace  # noqa: E402
from tests.edgekit import NGINX_BIN, edge_dir  # noqa: E402
from tests.support import build_app  # noqa: E402

SECONDS = 10
WRK = ["wrk", "-t2", "-c32", f"-d{SECONDS}s"]
SAMPLE_EVERY = 0.25
MAX_LAG_SECONDS = 5.0


def _tail(app, stop: threading.Event, tailer: Tailer) -> None:
    """The worker's tail loop, as production runs it (its interval, one tailer)."""
    gap = timedelta(minutes=app.config["CONNECTION_SESSION_GAP_MINUTES"])
    while not stop.wait(app.config["CONNECTION_TAIL_SECONDS"]):
        with app.app_context():
            ingest_available(tailer, app.config["WORKSPACE_DOMAIN"], gap)


def _newest(app):
    with app.app_context():
        return db.session.scalar(select(func.max(ConnectionSession.last_at)))


def _sample(app, stop: threading.Event, lags: list[float]) -> None:
    while not stop.wait(SAMPLE_EVERY):
        newest = _newest(app)
        if newest is not None:
            lags.append((utcnow() - newest).total_seconds())


def _ingested_offset(app) -> int:
    with app.app_context():
        row = db.session.get(ConnectionTail, CURSOR_NAME)
        return row.offset if row else 0


def _capacity(app, log: Path) -> tuple[int, float]:
    """Lines and seconds to ingest the whole log again from 0 into emptied tables."""
    with app.app_context():
        db.session.execute(delete(ConnectionSession))
        db.session.execute(delete(ConnectionTail))
        db.session.commit()
        gap = timedelta(minutes=app.config["CONNECTION_SESSION_GAP_MINUTES"])
        tailer = Tailer(log)
        started = time.perf_counter()
        lines = ingest_available(tailer, app.config["WORKSPACE_DOMAIN"], gap, max_rounds=10_000)
        seconds = time.perf_counter() - started
        tailer.close()
        requests = db.session.scalar(select(func.sum(ConnectionSession.requests)))
        domain = app.config["WORKSPACE_DOMAIN"]
        expected = 0
        for raw in log.read_bytes().splitlines():
            try:
                expected += parse_line(raw, domain) is not None
            except Garbled:
                print(f"   garbled line in the edge's log: {raw[:300]!r}")
        assert requests == expected, f"{requests} requests stored for {expected} workspace requests logged"
        return lines, seconds


def main() -> int:
    """Drive the edge at its peak while the tailer ingests its log; print rates, lag and bars."""
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    if not (shutil.which("wrk") and Path(NGINX_BIN).exists()):
        print("bench_connection_log: wrk and nginx are needed; skipped")
        return 0
    with tempfile.TemporaryDirectory(prefix="slipway-bench-cl-") as tmp, edge_dir() as run:
        up, web_port, edge_port = free_port(), free_port(), free_port()
        (run / "www").mkdir()
        (run / "www" / "index.html").write_text("x" * 1024)
        conf = nginx_conf(run, "upstream", UPSTREAM_BODY, up=up)
        upstream = subprocess.Popen([NGINX_BIN, "-p", str(run), "-c", str(conf)])
        url = os.environ.get("BENCH_DATABASE_URL") or migrated_sqlite(Path(tmp))
        app = build_app(url, Path(tmp), LISTEN_PORT=web_port, EDGE_DIR=run / "edge", EDGE_PORT=edge_port,
                        WORKSPACE_DOMAIN=f"ws.localhost:{edge_port}", NGINX_BIN=NGINX_BIN)
        server = make_server("127.0.0.1", web_port, app, threaded=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        edge = None
        stop = threading.Event()
        try:
            with app.app_context():
                alice = make_user("alice")
                make_workspace(alice, make_server_row(), ports={"vscode": up, "jupyter": up})
                row = UserSession(user_id=alice.id, session_token="c" * 64,
                                  expires_at=utcnow() + timedelta(hours=1))
                db.session.add(row)
                db.session.commit()
                regenerate()
                with app.test_request_context():
                    host = "alice-vscode.ws.localhost"
                    cookie = f"{cookie_name()}={cookie_value(Grant(alice.id, 'alice', host, row.id))}"
            edge = start_edge(app.config, workers=1)
            wait_port(edge_port, host, cookie)
            log = access_log_path(app.config)
            headers = ["-H", f"Host: {host}", "-H", f"Cookie: {cookie}"]
            target = f"http://127.0.0.1:{edge_port}/"
            subprocess.run([*WRK[:3], "-d1s", *headers, target], capture_output=True, check=True)
            tailer = Tailer(log)
            time.sleep(1.2)  # the edge's log buffer flushes every second
            with app.app_context():
                ingest_available(tailer, app.config["WORKSPACE_DOMAIN"], timedelta(minutes=30), 10_000)
            lags: list[float] = []
            threads = [threading.Thread(target=_tail, args=(app, stop, tailer), daemon=True),
                       threading.Thread(target=_sample, args=(app, stop, lags), daemon=True)]
            for thread in threads:
                thread.start()
            out = subprocess.run([*WRK, *headers, target], capture_output=True, text=True, check=True).stdout
            ended = time.monotonic()
            peak = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
            non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
            drained = None
            while time.monotonic() - ended < 30:
                if log.stat().st_size and _ingested_offset(app) == log.stat().st_size:
                    drained = time.monotonic() - ended
                    break
                time.sleep(0.05)
            stop.set()
            for thread in threads:
                thread.join(10)
            tailer.close()
            with app.app_context():
                alice_last = db.session.scalar(select(Workspace.last_activity_at))
            lines, seconds = _capacity(app, log)
        finally:
            stop.set()
            if edge is not None:
                stop_edge(edge)
            server.shutdown()
            upstream.terminate()
            upstream.wait(10)
    capacity = lines / seconds
    max_lag = max(lags) if lags else float("inf")
    print(f"connection log vs the edge's peak, {' '.join(WRK)}, 1 KiB upstream, one run "
          f"(load average {os.getloadavg()[0]:.2f}, database {url.split(':', 1)[0]}):")
    print(f"   edge peak (checked, access log on)  {peak:9.0f} req/s = log lines/s"
          + (f"  ({non2xx.group(1)} non-2xx)" if non2xx else ""))
    print(f"   tailer capacity (one worker)        {capacity:9.0f} lines/s  ({lines} lines, {seconds:.2f} s; "
          f"capacity/peak = {capacity / peak:.2f})")
    print(f"   lag while under load                max {max_lag:.2f} s, median "
          f"{statistics.median(lags) if lags else float('nan'):.2f} s over {len(lags)} samples")
    print(f"   last line ingested after load end   {drained if drained is not None else float('nan'):.2f} s"
          f"; workspace last activity {alice_last}")
    bound = f"{MAX_LAG_SECONDS:.0f} s"
    print(f"   bars: capacity >= edge peak, max lag < {bound}, drained < {bound}")
    met = capacity >= peak and max_lag < MAX_LAG_SECONDS and drained is not None and drained < MAX_LAG_SECONDS
    print("all bars met" if met else "a bar was missed")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
