"""MariaDB restarted while requests run, against the production web command (gunicorn).

A private mariadbd (own port, own datadir) serves gunicorn; clients keep loading a logged-in
page while it is stopped and started again. During the outage every answer is the product's
own 503 page (with its security headers, fast), `/health` says why; within 5 s of the database
answering again, pages answer 200 by themselves. No answer is ever a 500.
"""

from __future__ import annotations

import re
import threading
import time

import pytest
import requests
from flask_migrate import upgrade

from app.extensions import db
from tests.builders import PASSWORD, make_user
from tests.gunicorn_run import gunicorn
from tests.private_services import mariadb_available, private_mariadb
from tests.support import build_app, require_service

pytestmark = pytest.mark.integration
CSRF = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')
CLIENTS = 4


def _logged_in(base: str, username: str) -> requests.Session:
    session = requests.Session()
    token = CSRF.search(session.get(f"{base}/login", timeout=10).text).group(1)
    response = session.post(f"{base}/login", data={"username": username, "password": PASSWORD,
                                                    "csrf_token": token}, timeout=10)
    assert response.status_code == 200 and "/workspaces" in response.url, response.text[:500]
    return session


def test_mariadb_restart_under_requests_gives_503_pages_and_recovers(tmp_path):
    require_service("mariadbd", mariadb_available())
    with private_mariadb(tmp_path / "mariadb") as mariadb:
        app = build_app(mariadb.url, tmp_path / "migrate")
        with app.app_context():
            upgrade()
            username = make_user("outage").username
            db.engine.dispose()
        env = {"SLIPWAY_DATABASE_CONNECT_TIMEOUT": "1", "SLIPWAY_HEALTH_TIMEOUT_SECONDS": "2"}
        with gunicorn(mariadb.url, tmp_path / "web", workers=2, threads=8, env=env) as (base, _master):
            sessions = [_logged_in(base, username) for _ in range(CLIENTS)]
            seen: list[tuple[float, int, float, str, dict]] = []
            stop = threading.Event()

            def load(session: requests.Session) -> None:
                for _ in range(5000):  # bounded; the test stops it long before
                    if stop.is_set():
                        return
                    started = time.monotonic()
                    try:
                        response = session.get(f"{base}/workspaces/", timeout=15, allow_redirects=False)
                    except requests.RequestException as exc:
                        seen.append((started, -1, time.monotonic() - started, repr(exc), {}))
                        continue
                    seen.append((started, response.status_code, time.monotonic() - started,
                                 response.text, dict(response.headers)))
                    time.sleep(0.05)

            threads = [threading.Thread(target=load, args=(s,)) for s in sessions]
            for thread in threads:
                thread.start()
            try:
                time.sleep(1)
                mariadb.stop()
                down_at = time.monotonic()
                time.sleep(2)
                health = requests.get(f"{base}/health", timeout=10)
                assert health.status_code == 503
                # refused at once, or (on a loaded machine) the ping's deadline: either way, it says why
                assert re.match(r"database (unreachable|did not answer within)", health.json()["message"])
                restart_at = time.monotonic()
                mariadb.start()
                back_at = time.monotonic()
                recovered = None
                while time.monotonic() - back_at < 10:
                    if sessions[0].get(f"{base}/workspaces/", timeout=10).status_code == 200:
                        recovered = time.monotonic() - back_at
                        break
                    time.sleep(0.1)
                time.sleep(1)
            finally:
                stop.set()
                for thread in threads:
                    thread.join(30)
            assert requests.get(f"{base}/health", timeout=10).status_code == 200

    assert recovered is not None and recovered < 5, recovered
    print(f"recovered {recovered:.2f} s after the database answered; {len(seen)} answers")
    statuses = {status for _, status, _, _, _ in seen}
    assert statuses <= {200, 503}, [(s, body[:200]) for _, s, _, body, _ in seen if s not in (200, 503)][:5]
    outage = [row for row in seen if down_at + 0.5 < row[0] < restart_at]
    assert outage and {status for _, status, _, _, _ in outage} == {503}
    for _, _, elapsed, body, headers in outage:
        assert "cannot reach its database" in body and "· Slipway</title>" in body
        assert headers["Content-Security-Policy"].startswith("default-src 'self'")
        assert headers.get("X-Request-Id") and elapsed < 3, elapsed
    assert any(status == 200 for started, status, *_ in seen if started > back_at)
