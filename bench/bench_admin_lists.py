"""Admin users list and approval queue with 10,000 users in MariaDB: median server time per page.

How it is measured: a dedicated MariaDB database (`BENCH_DATABASE_URL`, default
`slipway_test_bench` on 127.0.0.1, or `sqlite`) is migrated and filled with 10,000 users (half pending);
an admin logs in through the real form; each page is requested in-process through the
Flask test client (the WSGI app's own time: routing, session check, queries, template) with
`time.perf_counter`. Each page is fetched 40 times per run after 5 warm-ups, three runs; the
figure is the median over all fetches, with the per-run medians beside it. The SQL statement
count per page is printed too (it must not depend on the number of rows).
"""

from __future__ import annotations

import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from flask_migrate import upgrade  # noqa: E402
from sqlalchemy import event, insert  # noqa: E402

from app import create_app  # noqa: E402
from app.extensions import db  # noqa: E402
from app.models import User  # noqa: E402
from app.security.passwords import hash_password  # noqa: E402
from bench.benchdb import fresh_database  # noqa: E402
from config import TestingConfig  # noqa: E402

DEFAULT_URL = "mysql+pymysql://slipway:slipway-test-password@127.0.0.1/slipway_test_bench"
USERS = 10_000
PAGES = ("/admin/users", "/admin/users?page=200", "/admin/users?q=user12&status=pending", "/admin/approvals")
FETCHES, WARMUPS, RUNS = 40, 5, 3
BAR_MS = 50.0
PASSWORD = "bench password 123"


def _fill(app) -> None:
    with app.app_context():
        upgrade()
        admin_hash = hash_password(PASSWORD)
        db.session.add(User(username="benchadmin", email="benchadmin@example.com", password_hash=admin_hash,
                            role="admin", status="approved"))
        rows = [
            {"username": f"user{i}", "email": f"user{i}@example.com", "password_hash": "x",
             "role": "regular", "status": "pending" if i % 2 else "approved"}
            for i in range(USERS)
        ]
        for start in range(0, USERS, 1000):
            db.session.execute(insert(User), rows[start:start + 1000])
        db.session.commit()


def _login(client) -> None:
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
    form = {"username": "benchadmin", "password": PASSWORD, "csrf_token": token}
    response = client.post("/login", data=form)
    assert response.status_code == 302, "admin login failed"


def _time_page(client, url: str) -> list[float]:
    for _ in range(WARMUPS):
        assert client.get(url).status_code == 200, url
    samples = []
    for _ in range(FETCHES):
        start = time.perf_counter()
        response = client.get(url)
        samples.append((time.perf_counter() - start) * 1000)
        assert response.status_code == 200
    return samples


def _count_queries(app, client, url: str) -> int:
    with app.app_context():
        engine = db.engine
    count = 0

    def bump(*_args: object) -> None:
        nonlocal count
        count += 1

    event.listen(engine, "before_cursor_execute", bump)
    client.get(url)
    event.remove(engine, "before_cursor_execute", bump)
    return count


def main() -> int:
    """Fill the database, time each page, print the figures; exit 1 when a page misses the bar."""
    data_dir = Path(tempfile.mkdtemp(prefix="slipway-bench-"))
    url = fresh_database(DEFAULT_URL, data_dir)
    app = create_app(TestingConfig, {"SQLALCHEMY_DATABASE_URI": url, "DATA_DIR": data_dir,
                                     "WORKSPACE_ROOT": data_dir / "ws", "RATELIMIT_ENABLED": False})
    _fill(app)
    client = app.test_client()
    _login(client)
    print(f"admin list pages, {USERS} users in {url.split('@')[-1]}; {RUNS} runs x {FETCHES} fetches")
    failed = False
    for url in PAGES:
        runs = [_time_page(client, url) for _ in range(RUNS)]
        median = statistics.median([s for run in runs for s in run])
        per_run = ", ".join(f"{statistics.median(run):.1f}" for run in runs)
        queries = _count_queries(app, client, url)
        verdict = "ok" if median < BAR_MS else "OVER BAR"
        failed |= median >= BAR_MS
        print(f"  {url:45s} median {median:6.1f} ms (runs: {per_run}) {queries} SQL statements  {verdict}")
    print(f"bar: median under {BAR_MS:.0f} ms server time per page")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
