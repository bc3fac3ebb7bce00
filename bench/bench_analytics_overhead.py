"""Analytics middleware overhead: the same page with analytics on and off in one run (bar: < 0.5 ms median).

Two apps on one database, identical but for SLIPWAY_ANALYTICS_ENABLED, each with a signed-in
regular user. Requests to `/menu` (a page that loads the session and renders the layout) go
in-process through Flask's test client, alternating on/off (and which goes first) so drift on a
busy machine hits both alike. The recording app's flusher thread writes its rows meanwhile, so
its cost is in the figure. Reported: both medians, the difference and the ratio.
Database: SQLite in a temp dir, or BENCH_DATABASE_URL (e.g. MariaDB).
"""

from __future__ import annotations

import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from flask_migrate import upgrade  # noqa: E402
from sqlalchemy import func, select  # noqa: E402

from app import create_app  # noqa: E402
from app.analytics.middleware import buffer_for  # noqa: E402
from app.extensions import db  # noqa: E402
from app.models import RequestLog  # noqa: E402
from bench.benchdb import fresh_database  # noqa: E402
from config import TestingConfig  # noqa: E402
from tests.builders import PASSWORD, make_user  # noqa: E402

ROUNDS, WARMUP, BAR_MS, PAGE = 600, 30, 0.5, "/menu"


def _app(url: str, tmp: Path, enabled: bool):
    return create_app(TestingConfig, {"SQLALCHEMY_DATABASE_URI": url, "DATA_DIR": tmp,
                                      "WORKSPACE_ROOT": tmp / "ws", "RATELIMIT_ENABLED": False,
                                      "MFA_REQUIRED_ROLES": "", "ANALYTICS_ENABLED": enabled})


def _login(app, username: str):
    client = app.test_client()
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
    response = client.post("/login", data={"username": username, "password": PASSWORD, "csrf_token": token})
    assert response.status_code == 302, "login failed"
    return client


def main() -> int:
    """Time the page with analytics on and off, interleaved; exit 1 when the difference is over the bar."""
    with tempfile.TemporaryDirectory() as tmp:
        url = fresh_database("sqlite", Path(tmp))
        on, off = _app(url, Path(tmp), True), _app(url, Path(tmp), False)
        with off.app_context():
            upgrade()
            make_user("benchon")
            make_user("benchoff")
        clients = {"on": _login(on, "benchon"), "off": _login(off, "benchoff")}
        times: dict[str, list[float]] = {"on": [], "off": []}
        for n in range(WARMUP + ROUNDS):
            order = ("on", "off") if n % 2 else ("off", "on")
            for key in order:
                started = time.perf_counter()
                response = clients[key].get(PAGE)
                elapsed = (time.perf_counter() - started) * 1000
                assert response.status_code == 200, response.status_code
                if n >= WARMUP:
                    times[key].append(elapsed)
        buffer_for(on).stop()
        with on.app_context():
            stored = db.session.scalar(
                select(func.count()).select_from(RequestLog).where(RequestLog.route == PAGE))
            db.engine.dispose()
        with off.app_context():
            db.engine.dispose()
    med_on, med_off = statistics.median(times["on"]), statistics.median(times["off"])
    diff = med_on - med_off
    print(f"GET {PAGE}, {ROUNDS} requests each, interleaved, test client: "
          f"analytics on median {med_on:.3f} ms, off median {med_off:.3f} ms")
    print(f"difference {diff:+.3f} ms per request, ratio {med_on / med_off:.3f}; "
          f"rows stored by the recording app for {PAGE}: {stored} (sent {WARMUP + ROUNDS})")
    ok = diff < BAR_MS and stored == WARMUP + ROUNDS
    print(f"bar: median difference under {BAR_MS} ms and every request stored: {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
