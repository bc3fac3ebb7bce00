"""The live log stream: entry ingested through POST /api/v1/logs → shown in a real browser, 10 viewers.

How it is measured: a dedicated MariaDB database (`BENCH_DATABASE_URL`, default
`slipway_test_bench_logs_live` on 127.0.0.1) is migrated, the day-one alert rules are seeded, an
admin with a `logs:write` key is created. gunicorn serves the production entry point
(`-c gunicorn.conf.py wsgi:app`, `GUNICORN_WORKERS` gthread workers, the production configuration,
rate limits off, no second factor asked of the admin viewers) and `flask worker` runs beside it,
so the rules are evaluated as in production.
Headless Chromium (Playwright, Debian's /usr/bin/chromium) opens `VIEWERS` pages of
`/logs/live?source=benchlive`, each in its own browser context logged in through the login form;
a MutationObserver added to every page before its scripts run records `Date.now()` the moment a
row with a new `data-entry-id` is inserted into the table.
One shipper process then POSTs `RATE` entries/s for `SECONDS` s, in `BATCHES_PER_SECOND` NDJSON
batches a second, each entry carrying `fields.sent_ms`: the wall-clock time (ms) its request was
sent. Afterwards every entry's id and `sent_ms` are read back from the database; the latency of
one entry on one page is its arrival there minus `sent_ms` (the browser and the shipper share the
machine's clock). Entries of the first `WARMUP` s are not counted. One more viewer, a plain
WebSocket client in this process, records when each entry reached it: the server's share of the
latency, printed beside the browsers' figure. Median and p95 over every
(entry, page) pair are printed, with how many pairs were seen of those expected, the skipped-entries
markers shown and the load average.
Bar: median < 500 ms, and every page saw every entry (no gap, none skipped).
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
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import simple_websocket  # noqa: E402
from flask_migrate import upgrade  # noqa: E402
from sqlalchemy import select  # noqa: E402

from app.extensions import db  # noqa: E402
from app.logs.defaults import seed_rules  # noqa: E402
from app.models import LogEntry  # noqa: E402
from app.services import api_keys  # noqa: E402
from bench.benchdb import fresh_database  # noqa: E402
from bench.gunicorn_process import production_env, stop, wait_ready  # noqa: E402
from tests.agent.helpers import free_port  # noqa: E402
from tests.builders import PASSWORD, make_user  # noqa: E402
from tests.livesrv import cookie_header, login  # noqa: E402
from tests.page_helpers import CHROMIUM, CHROMIUM_ARGS, browser_available  # noqa: E402
from tests.support import build_app  # noqa: E402

DEFAULT_URL = "mysql+pymysql://slipway:slipway-test-password@127.0.0.1/slipway_test_bench_logs_live"
VIEWERS = int(os.environ.get("BENCH_VIEWERS", "10"))
RATE = int(os.environ.get("BENCH_RATE", "1000"))  # entries per second
SECONDS = int(os.environ.get("BENCH_SECONDS", "20"))
WARMUP = 2  # seconds of entries not counted (sockets and caches settling)
BATCHES_PER_SECOND = 20
GUNICORN_WORKERS = int(os.environ.get("BENCH_WORKERS", "2"))
SOURCE = "benchlive"
BAR_MS = 500.0
DRAIN_SECONDS = 15  # how long the pages may take to show the last entries

# Runs in every page before live.js: the arrival time of each row, keyed by entry id.
OBSERVER_JS = """
window.__arrivals = {};
window.__skipped = 0;
new MutationObserver((records) => {
  const now = Date.now();
  for (const record of records) {
    for (const node of record.addedNodes) {
      if (node.nodeType !== 1 || node.tagName !== 'TR') { continue; }
      const id = node.getAttribute('data-entry-id');
      if (id !== null && !(id in window.__arrivals)) { window.__arrivals[id] = now; }
      if (node.classList.contains('log-skipped')) { window.__skipped += 1; }
    }
  }
}).observe(document, {childList: true, subtree: true});
"""


def _ship(port: int, key: str, start_at: float, out: mp.Queue) -> None:
    """POST RATE entries/s for SECONDS s from `start_at`, each stamped with the time its batch was sent."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Content-Type": "application/x-ndjson", "Authorization": f"Bearer {key}"}
    per_batch = RATE // BATCHES_PER_SECOND
    batches = SECONDS * BATCHES_PER_SECOND
    accepted = errors = late = 0
    for n in range(batches):
        due = start_at + n / BATCHES_PER_SECOND
        pause = due - time.time()
        if pause > 0:
            time.sleep(pause)
        else:
            late += 1
        sent_ms = int(time.time() * 1000)
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sent_ms / 1000)) + "Z"
        body = b"".join(json.dumps({
            "ts": ts, "source": SOURCE, "host": "bench", "level": "info",
            "message": f"live bench entry {n * per_batch + i}",
            "fields": {"sent_ms": sent_ms, "n": n * per_batch + i},
        }, separators=(",", ":")).encode() + b"\n" for i in range(per_batch))
        conn.request("POST", "/api/v1/logs", body=body, headers=headers)
        response = conn.getresponse()
        payload = response.read()
        if response.status != 200:
            errors += 1
            if errors <= 3:
                print(f"  shipper: HTTP {response.status} {payload[:200]!r}", file=sys.stderr)
            continue
        accepted += json.loads(payload)["data"]["accepted"]
    conn.close()
    out.put((accepted, errors, late, batches))


class _BrowserLikeClient(simple_websocket.Client):
    """Sends `Host: host:port` as browsers do (the stream compares Origin with it)."""

    def handshake(self) -> None:
        self.host = f"{self.host}:{self.port}"
        super().handshake()


def _socket_viewer(base_url: str, stop: threading.Event, arrivals: dict[str, int]) -> None:
    """A plain WebSocket client (no browser) on the same stream: when each entry left the server."""
    session = login(base_url, "benchviewer")
    headers = {"Cookie": cookie_header(session), "Origin": base_url}
    url = base_url.replace("http://", "ws://") + f"/logs/live/stream?source={SOURCE}&after=0"
    ws = _BrowserLikeClient.connect(url, headers=headers)
    try:
        while not stop.is_set():
            try:
                raw = ws.receive(timeout=0.5)
            except simple_websocket.ConnectionClosed:
                return
            if raw is None:
                continue
            now = int(time.time() * 1000)
            for entry in json.loads(raw)["entries"]:
                arrivals.setdefault(str(entry["id"]), now)
    finally:
        ws.close()


def _login(context, base_url: str, username: str) -> None:
    page = context.new_page()
    page.goto(f"{base_url}/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("[type=submit]")
    page.wait_for_load_state()
    page.close()


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def _measure(app, base_url: str, port: int, key: str) -> tuple[list[float], int, int, int, dict]:  # noqa: PLR0915
    """Open the viewers, ship the entries, collect arrivals; returns latencies and counts."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            pages = []
            for _ in range(VIEWERS):
                context = browser.new_context()
                _login(context, base_url, "benchviewer")
                page = context.new_page()
                page.add_init_script(OBSERVER_JS)
                page.goto(f"{base_url}/logs/live?source={SOURCE}")
                page.wait_for_selector(".logs-live.live-connected", timeout=20000)
                pages.append(page)
            stop, socket_arrivals = threading.Event(), {}
            reference = threading.Thread(target=_socket_viewer, args=(base_url, stop, socket_arrivals),
                                         daemon=True)
            reference.start()
            print(f"  {VIEWERS} viewers connected; shipping", flush=True)
            out: mp.Queue = mp.Queue()
            start_at = time.time() + 1
            shipper = mp.Process(target=_ship, args=(port, key, start_at, out))
            shipper.start()
            # Playwright's sync API must be driven from this thread; idle here while the shipper runs.
            pages[0].wait_for_timeout((SECONDS + 1) * 1000)
            shipped = out.get(timeout=SECONDS + 120)
            shipper.join(timeout=10)
            with app.app_context():
                rows = db.session.execute(select(LogEntry.id, LogEntry.fields)
                                          .where(LogEntry.source == SOURCE)).all()
                db.session.rollback()
            sent = {str(row.id): row.fields["sent_ms"] for row in rows}
            newest = max((int(i) for i in sent), default=0)
            drain_until = time.time() + DRAIN_SECONDS
            last_shown = "() => Number(document.querySelector('.logs-live').getAttribute('data-last-id'))"
            for page in pages:
                try:
                    page.wait_for_function(f"() => ({last_shown})() >= {newest}",
                                           timeout=max(1000, (drain_until - time.time()) * 1000))
                except PlaywrightTimeout:
                    pass  # counted below as entries not seen
            behind = [newest - page.evaluate(last_shown) for page in pages]
            if any(behind):
                print(f"  pages still behind the newest entry after {DRAIN_SECONDS} s (ids): {behind}")
            arrivals = [page.evaluate("() => window.__arrivals") for page in pages]
            stop.set()
            reference.join(timeout=5)
            skipped = sum(page.evaluate("() => window.__skipped") for page in pages)
        finally:
            browser.close()
    counted_from = (start_at + WARMUP) * 1000
    latencies = []
    expected = seen = 0
    for page_arrivals in arrivals:
        for entry_id, sent_ms in sent.items():
            if sent_ms < counted_from:
                continue
            expected += 1
            if entry_id in page_arrivals:
                seen += 1
                latencies.append(page_arrivals[entry_id] - sent_ms)
    delivered = [socket_arrivals[i] - ms for i, ms in sent.items()
                 if ms >= counted_from and i in socket_arrivals]
    accepted, errors, late, batches = shipped
    return latencies, expected, seen, skipped, {"accepted": accepted, "errors": errors, "late": late,
                                                 "batches": batches, "stored": len(sent),
                                                 "delivered": delivered}


def main() -> int:
    """Serve the app, open the viewers, ship at RATE; print median/p95; exit 1 when the bar is missed."""
    if not browser_available():
        print("this bench needs Playwright and Chromium (/usr/bin/chromium)")
        return 1
    data_dir = Path(tempfile.mkdtemp(prefix="slipway-bench-logs-live-"))
    url = fresh_database(DEFAULT_URL, data_dir)
    if not url.startswith("mysql"):
        print("this bench measures MariaDB; set BENCH_DATABASE_URL to a mysql+pymysql URL")
        return 1
    app = build_app(url, data_dir)
    with app.app_context():
        upgrade()
        seed_rules()
        db.session.commit()
        admin = make_user("benchshipper", role="admin")
        make_user("benchviewer", role="admin")
        key = api_keys.create(admin, "live bench shipper", "logs:write", None, source="cli").value
    port = free_port()
    env = production_env(
        url, data_dir,
        SLIPWAY_MFA_REQUIRED_ROLES="qvp",  # not admin: the viewers log in with a password alone
        SLIPWAY_GUNICORN_WORKERS=str(GUNICORN_WORKERS),
        PROMETHEUS_MULTIPROC_DIR=str(data_dir / "prometheus"),
    )
    server = subprocess.Popen(
        [str(ROOT / ".venv/bin/gunicorn"), "-c", "gunicorn.conf.py", "-b", f"127.0.0.1:{port}",
         "--log-level", "warning", "wsgi:app"], cwd=ROOT, env=env)
    worker = subprocess.Popen([str(ROOT / ".venv/bin/flask"), "--app", "wsgi", "worker"], cwd=ROOT, env=env,
                              stdout=subprocess.DEVNULL)
    try:
        wait_ready(port, server)
        print(f"database: {url.split('@')[-1]}; {VIEWERS} Chromium viewers of /logs/live; {RATE:,} entries/s "
              f"for {SECONDS} s in {BATCHES_PER_SECOND} batches/s; gunicorn {GUNICORN_WORKERS} workers; "
              f"load average {os.getloadavg()[0]:.1f}")
        latencies, expected, seen, skipped, shipped = _measure(app, f"http://127.0.0.1:{port}", port, key)
        load = os.getloadavg()[0]
    finally:
        stop(server)
        stop(worker)
        with app.app_context():
            db.engine.dispose()
    print(f"  shipped: {shipped['accepted']:,} accepted in {shipped['batches']} batches, {shipped['errors']} "
          f"errors, {shipped['late']} batches sent late; {shipped['stored']:,} stored")
    if not latencies:
        print("  no entry was shown: FAIL")
        return 1
    median = statistics.median(latencies)
    print(f"  ingested -> shown over {len(latencies):,} (entry, page) pairs after a {WARMUP} s warm-up: "
          f"median {median:.0f} ms, p95 {_percentile(latencies, 0.95):.0f} ms, max {max(latencies):.0f} ms")
    delivered = shipped["delivered"]
    if delivered:
        print(f"  ingested -> received by a plain WebSocket client (no browser, same stream): median "
              f"{statistics.median(delivered):.0f} ms, p95 {_percentile(delivered, 0.95):.0f} ms "
              f"over {len(delivered):,} entries")
    print(f"  seen {seen:,} of {expected:,} expected; 'entries skipped' markers: {skipped}; "
          f"load average at the end {load:.1f}")
    ok = median < BAR_MS and seen == expected and skipped == 0 and shipped["errors"] == 0
    print(f"bar: median < {BAR_MS:.0f} ms, every entry on every page: {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
