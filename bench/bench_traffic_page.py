"""Traffic page over 30 days of rollups from 10,000 requests/min: median time per range (bar: < 100 ms).

The rollup tables are filled as the worker would have left them after 30 days at 10,000
requests a minute spread over 20 routes and 40 active users a minute (one row per minute and
route, one whole-site row, one per minute and user, and the hour and day rows the job derives from
them: about 2.9 million rows). The page is
then requested in-process through Flask's test client as a signed-in admin, 15 times per
range after two warm-ups; the figure is the median wall time of the request.
Database: SQLite in a temp dir, or BENCH_DATABASE_URL (e.g. MariaDB).
"""

from __future__ import annotations

import re
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
from app.models import RequestRollup, RequestUserRollup  # noqa: E402
from app.models.analytics import ALL  # noqa: E402
from app.timeutil import utcnow  # noqa: E402
from bench.benchdb import fresh_database  # noqa: E402
from config import TestingConfig  # noqa: E402
from tests.builders import PASSWORD, make_user  # noqa: E402

DAYS, PER_MINUTE, ROUTES, USERS_PER_MINUTE, USERS = 30, 10_000, 20, 40, 400
REQUESTS, BAR_MS = 15, 100.0


def _period_rows(rows: list[dict], keys: tuple[str, ...], span: int) -> list[dict]:
    """Hour or day rows from shorter rows, as the rollup job writes them (sums, weighted percentiles, max)."""
    hours: dict[tuple, dict] = {}
    for row in rows:
        start = row["minute"].replace(minute=0) if span == 60 else row["minute"].replace(hour=0, minute=0)
        key = (start, *(row[k] for k in keys))
        fresh = {"span_minutes": span, "minute": key[0], **{k: row[k] for k in keys},
                 **{f: 0 for f in SUMMED if f in row}}
        if "max_ms" in row:
            fresh["max_ms"] = 0.0
        acc = hours.setdefault(key, fresh)
        for field in SUMMED:
            if field in row:
                acc[field] += row[field] * (row["count"] if field.startswith("p") else 1)
        if "max_ms" in row:
            acc["max_ms"] = max(acc["max_ms"], row["max_ms"])
    for acc in hours.values():
        for field in ("p50_ms", "p95_ms", "p99_ms"):
            if field in acc:
                acc[field] /= acc["count"]
    return list(hours.values())


SUMMED = ("count", "errors_4xx", "errors_5xx", "bytes", "duration_sum_ms", "p50_ms", "p95_ms", "p99_ms")


def _fill(now_minute) -> int:
    """Insert 30 days of minute and hour rollups, an hour at a time; returns the number of rows."""
    per_route = PER_MINUTE // ROUTES
    per_user = PER_MINUTE // USERS_PER_MINUTE
    routes = [("GET" if n % 4 else "POST", f"/area{n}/<int:item_id>") for n in range(ROUTES)]
    total, day_routes, day_users = 0, [], []
    first_hour = (now_minute - timedelta(days=DAYS)).replace(minute=0)
    for h in range(DAYS * 24 + 1):
        hour = first_hour + timedelta(hours=h)
        batch, user_batch = [], []
        for m in range(60):
            minute = hour + timedelta(minutes=m)
            if minute >= now_minute:
                break
            wave = m / 60
            for n, (method, route) in enumerate(routes):
                p50 = 5.0 + n + 10 * wave
                batch.append({"span_minutes": 1, "minute": minute, "method": method, "route": route,
                              "count": per_route, "errors_4xx": n % 3, "errors_5xx": 1 if n == 7 else 0,
                              "bytes": per_route * 2048, "duration_sum_ms": per_route * p50 * 1.2,
                              "p50_ms": p50, "p95_ms": p50 * 3, "p99_ms": p50 * 6, "max_ms": p50 * 20})
            batch.append({"span_minutes": 1, "minute": minute, "method": ALL, "route": ALL,
                          "count": PER_MINUTE, "errors_4xx": 20, "errors_5xx": 1, "bytes": PER_MINUTE * 2048,
                          "duration_sum_ms": PER_MINUTE * 20.0, "p50_ms": 15.0 + 10 * wave, "p95_ms": 60.0,
                          "p99_ms": 120.0, "max_ms": 900.0})
            first = (h * 60 + m) * 7 % USERS
            for k in range(USERS_PER_MINUTE):
                user_batch.append({"span_minutes": 1, "minute": minute, "user_id": 1000 + (first + k) % USERS,
                                   "count": per_user, "errors_4xx": k % 2, "errors_5xx": 0,
                                   "bytes": per_user * 2048})
        if not batch:
            break
        hour_routes = _period_rows(batch, ("method", "route"), 60)
        hour_users = _period_rows(user_batch, ("user_id",), 60)
        day_routes += hour_routes
        day_users += hour_users
        batch += hour_routes
        user_batch += hour_users
        if hour.hour == 23 or hour + timedelta(hours=1) > now_minute:
            batch += _period_rows(day_routes, ("method", "route"), 24 * 60)
            user_batch += _period_rows(day_users, ("user_id",), 24 * 60)
            day_routes, day_users = [], []
        db.session.execute(insert(RequestRollup), batch)
        db.session.execute(insert(RequestUserRollup), user_batch)
        db.session.commit()
        total += len(batch) + len(user_batch)
    return total


def main() -> int:
    """Fill the rollups, time the page per range, print the figures; exit 1 when a range is over the bar."""
    with tempfile.TemporaryDirectory() as tmp:
        url = fresh_database("sqlite", Path(tmp))
        app = create_app(TestingConfig, {"SQLALCHEMY_DATABASE_URI": url, "DATA_DIR": Path(tmp),
                                         "WORKSPACE_ROOT": Path(tmp) / "ws", "RATELIMIT_ENABLED": False,
                                         "MFA_REQUIRED_ROLES": "", "ANALYTICS_ENABLED": False})
        started = time.perf_counter()
        with app.app_context():
            upgrade()
            make_user("benchadmin", role="admin")
            rows = _fill(utcnow().replace(second=0, microsecond=0))
        print(f"filled {rows:,} rollup rows ({DAYS} days, {PER_MINUTE:,} requests/min, {ROUTES} routes, "
              f"{USERS_PER_MINUTE} users/min) in {time.perf_counter() - started:.0f} s "
              f"on {url.split(':')[0]}")
        client = app.test_client()
        page = client.get("/login").get_data(as_text=True)
        token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
        login = client.post("/login", data={"username": "benchadmin", "password": PASSWORD,
                                            "csrf_token": token})
        assert login.status_code == 302, "admin login failed"
        ok = True
        for key in ("1h", "24h", "7d"):
            for _ in range(2):
                assert client.get(f"/logs/traffic?range={key}").status_code == 200
            times = []
            for _ in range(REQUESTS):
                begun = time.perf_counter()
                response = client.get(f"/logs/traffic?range={key}")
                times.append((time.perf_counter() - begun) * 1000)
                assert response.status_code == 200 and b"/area7/&lt;int:item_id&gt;" in response.data
            median = statistics.median(times)
            ok = ok and median < BAR_MS
            print(f"traffic page range={key}: median {median:.1f} ms, min {min(times):.1f} ms, "
                  f"max {max(times):.1f} ms over {REQUESTS} requests")
        with app.app_context():
            db.engine.dispose()
    print(f"bar: median under {BAR_MS:.0f} ms for every range: {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
