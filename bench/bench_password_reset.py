"""Reset requests answer alike for known and unknown addresses; queued mail does not slow pages.

How it is measured: a dedicated database (`BENCH_DATABASE_URL`, default MariaDB
`slipway_test_bench_mail` on 127.0.0.1; SQLite in a temp dir when set to "sqlite") is migrated
and filled with 5,000 users. Mail is switched on (an SMTP host is set) but no worker runs, so
everything queued stays queued. Requests go in-process through the Flask test client, timed
with `time.perf_counter` around the request alone (the CSRF token is read before).
- reset: POST /login/forgot, alternating a known and an unknown address (so drift hits both
  alike), 5 warm-ups each, then 50 each. Bar: the medians differ by at most 10 %. The app
  thread's CPU time per request (`time.thread_time`, blind to other processes' load but also
  to MariaDB's own work) is printed beside.
- queued mail: 1,000 notifications are queued through the function the app uses (one
  send_mail task each; the time is printed). Then, in 10 rounds alternating "none queued" (the
  tasks deleted) and "1,000 queued" (the same rows put back), GET of the admin dashboard (it
  counts tasks), the account page and the login page, 5 warm-ups then 10 each per round, so
  50 samples per page and state; alternating often spreads the machine's load over both.
  Bar: each page's median with 1,000 queued is within 10 % (or 2 ms) of its median with none.
"""

from __future__ import annotations

import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from flask_migrate import upgrade  # noqa: E402
from sqlalchemy import func, insert, select  # noqa: E402

from app import create_app  # noqa: E402
from app.extensions import db  # noqa: E402
from app.mail.tasks import queue_message  # noqa: E402
from app.models import Task, TaskEvent, User  # noqa: E402
from app.security.passwords import hash_password  # noqa: E402
from app.timeutil import utcnow  # noqa: E402
from bench.benchdb import fresh_database  # noqa: E402
from config import TestingConfig  # noqa: E402

DEFAULT_URL = "mysql+pymysql://slipway:slipway-test-password@127.0.0.1/slipway_test_bench_mail"
PASSWORD = "bench password 123"
CSRF_RE = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')
SAMPLES = 50
WARMUP = 5
NOTIFICATIONS = 1000


def _fill(app) -> None:
    with app.app_context():
        upgrade()
        hashed = hash_password(PASSWORD)
        now = utcnow()
        db.session.execute(insert(User), [
            {"username": f"bench{i}", "email": f"bench{i}@example.com", "password_hash": hashed,
             "role": "admin" if i == 0 else "regular", "status": "approved", "meta": {}, "created_at": now}
            for i in range(5000)])
        db.session.commit()


def _token(client, page: str = "/login/forgot") -> str:
    return CSRF_RE.search(client.get(page).get_data(as_text=True)).group(1)


def _bench_reset(app) -> dict[str, tuple[list[float], list[float]]]:
    """Wall and CPU milliseconds per request, for "known" and "unknown" addresses."""
    client = app.test_client()
    token = _token(client)
    times: dict[str, tuple[list[float], list[float]]] = {"known": ([], []), "unknown": ([], [])}
    for i in range(SAMPLES + WARMUP):
        for email, key in ((f"bench{i + 1}@example.com", "known"), (f"nobody{i}@example.com", "unknown")):
            start, start_cpu = time.perf_counter(), time.thread_time()
            response = client.post("/login/forgot", data={"email": email, "csrf_token": token})
            elapsed, cpu = (time.perf_counter() - start) * 1000, (time.thread_time() - start_cpu) * 1000
            assert response.status_code == 302, response.status_code
            if i >= WARMUP:
                times[key][0].append(elapsed)
                times[key][1].append(cpu)
    return times


PAGES = ("/admin/", "/account/", "/login")
ROUNDS = 10
PER_ROUND = 10


def _time_pages(app, client, into: dict[str, list[float]]) -> None:
    for page in PAGES:
        target = client if page != "/login" else app.test_client()
        for i in range(PER_ROUND + WARMUP):
            start = time.perf_counter()
            response = target.get(page)
            elapsed = (time.perf_counter() - start) * 1000
            assert response.status_code == 200, (page, response.status_code)
            if i >= WARMUP:
                into.setdefault(page, []).append(elapsed)


def _set_queue(app, rows: list[dict] | None) -> None:
    """Delete every task, then put `rows` back (None: leave the queue empty)."""
    with app.app_context():
        db.session.execute(TaskEvent.__table__.delete())
        db.session.execute(Task.__table__.delete())
        if rows:
            db.session.execute(insert(Task), rows)
        db.session.commit()


def _queued_rows(app) -> list[dict]:
    with app.app_context():
        table = Task.__table__
        rows = db.session.execute(select(table).where(table.c.kind == "send_mail"))
        return [dict(row._mapping) for row in rows]


def _queue_notifications(app) -> float:
    with app.app_context():
        start = time.perf_counter()
        for i in range(NOTIFICATIONS):
            queue_message(f"bench{i % 5000}@example.com", "Your build finished: bench", "task_finished",
                          {"username": f"bench{i % 5000}", "what": "build", "state": "succeeded",
                           "target": "bench", "message": "", "url": "http://127.0.0.1:8000/tasks/1"},
                          kind="builds")
        db.session.commit()
        elapsed = (time.perf_counter() - start) * 1000
        queued = db.session.scalar(select(func.count(Task.id)).where(Task.kind == "send_mail",
                                                                     Task.state == "queued"))
        assert queued == NOTIFICATIONS, queued
    return elapsed


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        url = fresh_database(DEFAULT_URL, Path(tmp))
        app = create_app(TestingConfig, {
            "SQLALCHEMY_DATABASE_URI": url, "DATA_DIR": Path(tmp), "WORKSPACE_ROOT": Path(tmp) / "ws",
            "BCRYPT_ROUNDS": 12, "RATELIMIT_ENABLED": False, "SMTP_HOST": "127.0.0.1", "SMTP_PORT": 2525,
            "SMTP_SECURITY": "none"})
        _fill(app)
        print(f"database: {url.split(':')[0]}; 5,000 users; no worker running (mail stays queued)")
        times = _bench_reset(app)
        mk, mu = (statistics.median(times[key][0]) for key in ("known", "unknown"))
        ck, cu = (statistics.median(times[key][1]) for key in ("known", "unknown"))
        gap = abs(mk - mu) / mu * 100
        print(f"reset request: known address median {mk:.2f} ms, unknown {mu:.2f} ms "
              f"over {SAMPLES} each; difference {gap:.1f} % (bar <= 10 %)")
        print(f"  app thread CPU time: known {ck:.2f} ms, unknown {cu:.2f} ms "
              f"(difference {abs(ck - cu) / cu * 100:.1f} %)")
        client = app.test_client()
        token = _token(client, "/login")
        form = {"username": "bench0", "password": PASSWORD, "csrf_token": token}
        response = client.post("/login", data=form)
        assert response.status_code == 302, "admin login failed"
        _set_queue(app, None)
        queue_ms = _queue_notifications(app)
        rows = _queued_rows(app)
        print(f"queued {NOTIFICATIONS} notifications in {queue_ms:.0f} ms "
              f"({queue_ms / NOTIFICATIONS:.2f} ms each)")
        none: dict[str, list[float]] = {}
        queued: dict[str, list[float]] = {}
        for round_no in range(ROUNDS):
            with_queue = round_no % 2 == 1
            _set_queue(app, rows if with_queue else None)
            _time_pages(app, client, queued if with_queue else none)
        pages_ok = True
        for page in PAGES:
            before, after = statistics.median(none[page]), statistics.median(queued[page])
            ok = after <= max(before * 1.10, before + 2.0)
            pages_ok &= ok
            print(f"GET {page}: median {before:.2f} ms with none queued, {after:.2f} ms with "
                  f"{NOTIFICATIONS} queued, {len(none[page])} samples each "
                  f"(bar: within 10 % or 2 ms) {'ok' if ok else 'SLOWER'}")
        print(f"machine load average {os.getloadavg()[0]:.2f}")
        with app.app_context():
            db.engine.dispose()
        ok = gap <= 10 and pages_ok
        print("PASS" if ok else "FAIL")
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
