"""Login at production bcrypt cost plus the first page, and a banned address's refusal: median times.

How it is measured: a dedicated database (`BENCH_DATABASE_URL`, default MariaDB
`slipway_test_bench_sec` on 127.0.0.1; SQLite in a temp dir when set to "sqlite") is migrated
and filled with 5,000 users, 5,000 bans and 50,000 login attempts so a scan would show. The app
runs with bcrypt cost 12 (the production default). Requests go in-process through the Flask test
client (the WSGI app's own time: routing, limiter, session, queries, bcrypt, templates) timed with
`time.perf_counter`.
- login: POST /login with the right password and then GET /home (the page it redirects to);
  10 logins per run after 2 warm-ups, 3 runs. Bar: median < 300 ms. One bcrypt check alone is
  timed beside it (and the load average printed): on a busy machine bcrypt dominates. The bars
  are judged on the median over all runs; each run's median is printed beside it.
- banned: POST /login from a banned address; 200 requests per run after 20 warm-ups, 3 runs.
  Bar: median < 5 ms. bcrypt calls are counted during these requests (must be 0), and the
  ban lookup's query plan is printed (must use the ip_address index, not a scan).
"""

from __future__ import annotations

import os
import re
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from flask_migrate import upgrade  # noqa: E402
from sqlalchemy import insert, text  # noqa: E402

from app import create_app  # noqa: E402
from app.extensions import db  # noqa: E402
from app.models import BannedIP, LoginAttempt, User  # noqa: E402
from app.security import passwords  # noqa: E402
from app.security.passwords import hash_password  # noqa: E402
from app.timeutil import utcnow  # noqa: E402
from bench.benchdb import fresh_database  # noqa: E402
from config import TestingConfig  # noqa: E402

DEFAULT_URL = "mysql+pymysql://slipway:slipway-test-password@127.0.0.1/slipway_test_bench_sec"
PASSWORD = "bench password 123"
BANNED_IP = "203.0.113.66"
CSRF_RE = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')
RUNS = 3
CPU_MS: list[float] = []  # the app thread's CPU time per login (bcrypt and Python; not MariaDB's)


def _database_url(tmp: Path) -> str:
    return fresh_database(DEFAULT_URL, tmp)


def _fill(app) -> None:
    with app.app_context():
        upgrade()
        now = utcnow()
        hashed = hash_password(PASSWORD)
        db.session.execute(
            insert(User),
            [
                {"username": f"bench{i}", "email": f"bench{i}@example.com", "password_hash": hashed,
                 "role": "regular", "status": "approved", "meta": {}, "created_at": now}
                for i in range(5000)
            ],
        )
        db.session.execute(
            insert(BannedIP),
            [
                {"ip_address": f"10.{i // 65536}.{i // 256 % 256}.{i % 256}", "reason": "bench",
                 "created_at": now, "expires_at": now + timedelta(hours=1)}
                for i in range(5000)
            ]
            + [{"ip_address": BANNED_IP, "reason": "bench", "created_at": now,
                "expires_at": now + timedelta(hours=1)}],
        )
        for chunk in range(10):
            db.session.execute(
                insert(LoginAttempt),
                [
                    {"login": f"bench{i % 5000}", "ip_address": f"192.0.2.{i % 250}", "success": False,
                     "created_at": now - timedelta(seconds=i)}
                    for i in range(chunk * 5000, (chunk + 1) * 5000)
                ],
            )
        db.session.commit()


def _query_plan(app) -> str:
    with app.app_context():
        if db.engine.dialect.name == "sqlite":
            sql = "EXPLAIN QUERY PLAN SELECT * FROM banned_ips WHERE ip_address = :ip"
        else:
            sql = "EXPLAIN SELECT * FROM banned_ips WHERE ip_address = :ip"
        rows = db.session.execute(text(sql), {"ip": BANNED_IP}).all()
        return "; ".join(" ".join(str(v) for v in row) for row in rows)


def _token(client) -> str:
    return CSRF_RE.search(client.get("/login").get_data(as_text=True)).group(1)


def _bench_login(app) -> list[float]:
    times = []
    cpu = []
    client = app.test_client()
    for i in range(12):
        token = _token(client)
        form = {"username": "bench7", "password": PASSWORD, "csrf_token": token}
        start, start_cpu = time.perf_counter(), time.thread_time()
        response = client.post("/login", data=form)
        page = client.get(response.headers["Location"])
        elapsed = (time.perf_counter() - start) * 1000
        used = (time.thread_time() - start_cpu) * 1000
        assert response.status_code == 302 and page.status_code == 200, "login failed"
        client.post("/logout", data={"csrf_token": CSRF_RE.search(page.get_data(as_text=True)).group(1)})
        if i >= 2:
            times.append(elapsed)
            cpu.append(used)
    CPU_MS.extend(cpu)
    return times


def _bench_banned(app) -> tuple[list[float], int]:
    client = app.test_client()
    token = _token(client)
    client.environ_base["REMOTE_ADDR"] = BANNED_IP
    calls = []
    real = passwords.bcrypt.checkpw
    passwords.bcrypt.checkpw = lambda pw, h: calls.append(1) or real(pw, h)
    times = []
    form = {"username": "bench7", "password": PASSWORD, "csrf_token": token}
    try:
        for i in range(220):
            start = time.perf_counter()
            response = client.post("/login", data=form)
            elapsed = (time.perf_counter() - start) * 1000
            assert response.status_code == 403, response.status_code
            if i >= 20:
                times.append(elapsed)
    finally:
        passwords.bcrypt.checkpw = real
    return times, len(calls)


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        url = _database_url(Path(tmp))
        app = create_app(
            TestingConfig,
            {"SQLALCHEMY_DATABASE_URI": url, "DATA_DIR": Path(tmp), "WORKSPACE_ROOT": Path(tmp) / "ws",
             "BCRYPT_ROUNDS": 12, "RATELIMIT_ENABLED": False},
        )
        _fill(app)
        print(f"database: {url.split(':')[0]}; bcrypt cost 12; "
              "5,000 users, 5,001 bans, 50,000 login attempts")
        print(f"ban lookup plan: {_query_plan(app)}")
        with app.app_context():
            stored = hash_password(PASSWORD)
        bcrypt_alone = []
        for _ in range(10):
            start = time.perf_counter()
            passwords.bcrypt.checkpw(PASSWORD.encode(), stored.encode())
            bcrypt_alone.append((time.perf_counter() - start) * 1000)
        login_runs = [_bench_login(app) for _ in range(RUNS)]
        banned_runs = [_bench_banned(app) for _ in range(RUNS)]
        all_login = [t for run in login_runs for t in run]
        all_banned = [t for run, _ in banned_runs for t in run]
        bcrypt_calls = sum(calls for _, calls in banned_runs)
        login_median = statistics.median(all_login)
        banned_median = statistics.median(all_banned)
        print(f"login + /home: median {login_median:.1f} ms over {len(all_login)} logins "
              f"(runs: {', '.join(f'{statistics.median(r):.1f}' for r in login_runs)}) bar < 300 ms")
        alone = statistics.median(bcrypt_alone)
        print(f"  of which one bcrypt check at cost 12 alone: median {alone:.1f} ms "
              f"(machine load average {os.getloadavg()[0]:.1f})")
        print(f"banned address 403: median {banned_median:.2f} ms over {len(all_banned)} requests "
              f"(runs: {', '.join(f'{statistics.median(r):.2f}' for r, _ in banned_runs)}) bar < 5 ms; "
              f"bcrypt calls: {bcrypt_calls}")
        with app.app_context():
            db.engine.dispose()
        print(f"  login CPU time in the app thread: median {statistics.median(CPU_MS):.1f} ms")
        ok = login_median < 300 and banned_median < 5 and bcrypt_calls == 0
        print("PASS" if ok else "FAIL")
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
