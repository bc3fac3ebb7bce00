"""Servers list page with 500 servers: median server time over 30 requests (bar: under 50 ms).

Measured in-process with Flask's test client (no network), logged in as an admin, after
two warm-up requests; the page reads only the poll cache in the database (no agent call).
Database: SQLite in a temp dir, or BENCH_DATABASE_URL (e.g. MariaDB).
"""

from __future__ import annotations

import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from flask_migrate import upgrade  # noqa: E402
from sqlalchemy import MetaData, create_engine  # noqa: E402

from app import create_app  # noqa: E402
from app.extensions import db  # noqa: E402
from app.models import Server  # noqa: E402
from app.security.crypto import encrypt_secret  # noqa: E402
from app.timeutil import utcnow  # noqa: E402
from config import TestingConfig  # noqa: E402
from tests.builders import PASSWORD, make_user  # noqa: E402

SERVERS, REQUESTS, BAR_MS = 500, 30, 50.0


def main() -> int:
    """Fill 500 servers, time the list page, print the figures; exit 1 when over the bar."""
    with tempfile.TemporaryDirectory() as tmp:
        url = os.environ.get("BENCH_DATABASE_URL") or f"sqlite:///{Path(tmp) / 'bench.db'}"
        engine = create_engine(url)
        meta = MetaData()
        meta.reflect(engine)
        meta.drop_all(engine)
        engine.dispose()
        app = create_app(TestingConfig, {"SQLALCHEMY_DATABASE_URI": url, "DATA_DIR": Path(tmp),
                                         "WORKSPACE_ROOT": Path(tmp) / "ws", "RATELIMIT_ENABLED": False,
                                         "MFA_REQUIRED_ROLES": ""})
        with app.app_context():
            upgrade()
            make_user("benchadmin", role="admin")
            sealed, now = encrypt_secret("t" * 40, "server.token"), utcnow()
            statuses = ("online", "online", "online", "degraded", "offline")
            db.session.add_all(
                Server(name=f"host-{n:03d}", agent_url=f"http://10.0.{n // 250}.{n % 250 + 1}:9100",
                       token_encrypted=sealed, publish_host="127.0.0.1", status=statuses[n % 5],
                       cpu_percent=n % 100, memory_percent=(n * 7) % 100, disk_percent=(n * 3) % 100,
                       containers_running=n % 9, containers_total=n % 9 + 2, last_seen_at=now,
                       stats={"docker_version": "27.0", "managed_containers": []})
                for n in range(SERVERS))
            db.session.commit()
        client = app.test_client()
        page = client.get("/login").get_data(as_text=True)
        token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
        login = client.post("/login", data={"username": "benchadmin", "password": PASSWORD,
                                            "csrf_token": token})
        assert login.status_code == 302, "admin login failed"
        for _ in range(2):
            assert client.get("/servers/").status_code == 200
        times = []
        for _ in range(REQUESTS):
            started = time.perf_counter()
            response = client.get("/servers/")
            times.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200 and b"host-499" in response.data
        with app.app_context():
            db.engine.dispose()
    median = statistics.median(times)
    p90 = sorted(times)[int(len(times) * 0.9) - 1]
    print(f"servers list, {SERVERS} servers, {REQUESTS} requests via the test client: "
          f"median {median:.1f} ms, "
          f"p90 {p90:.1f} ms, min {min(times):.1f} ms ({len(response.data) // 1024} KiB page)")
    ok = median < BAR_MS
    print(f"bar: median under {BAR_MS:.0f} ms: {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
