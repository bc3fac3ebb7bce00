"""The edge nginx killed under `flask edge`: it comes back by itself (and pulls the current routes
from the web app as any starting edge does: tests/test_edge_sync.py proves that part).

SIGKILL on the master leaves its workers orphaned and still holding the port; `flask edge`
kills them and starts nginx again. Without `flask edge`, /health/ready names the edge.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from app.routing.nginx import EdgePaths, master_pid
from tests.agent.helpers import free_port, stop_process
from tests.edgekit import nginx_available
from tests.support import build_app, require_service

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[1]


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _wait(predicate, seconds: float):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.1)
    raise AssertionError("timed out")


def test_flask_edge_brings_a_killed_nginx_back(app, database_url, tmp_path):
    require_service("nginx", nginx_available())
    port, edge_dir = free_port(), (tmp_path / "edge").resolve()
    paths = EdgePaths(edge_dir)
    env = {**os.environ, "SLIPWAY_ENV": "testing", "DATABASE_URL": database_url,
           "SLIPWAY_DATA_DIR": str(tmp_path / "data"), "SLIPWAY_EDGE_DIR": str(edge_dir),
           "SLIPWAY_EDGE_PORT": str(port)}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    ready_app = build_app(database_url, tmp_path / "ready", EDGE_DIR=edge_dir, EDGE_PORT=port)
    log = tmp_path / "edge.log"
    with open(log, "wb") as out:
        edge = subprocess.Popen([sys.executable, "-m", "flask", "--app", "wsgi", "edge"], cwd=ROOT, env=env,
                                stdout=out, stderr=subprocess.STDOUT)
    try:
        first = _wait(lambda: _answers(port) and master_pid(paths), 60)
        os.kill(first, signal.SIGKILL)
        killed_at = time.monotonic()
        second = _wait(lambda: (pid := master_pid(paths)) and pid != first and _answers(port) and pid, 30)
        back_after = time.monotonic() - killed_at
        assert edge.poll() is None, log.read_text()
        assert paths.main_conf.exists()
        checks = ready_app.test_client().get("/health/ready").get_json()["data"]
        assert checks["edge"] is True
        assert back_after < 10, back_after
    finally:
        stop_process(edge, timeout=20)
    assert "restarted" in log.read_text(), log.read_text()
    assert master_pid(paths) is None and not _answers(port)  # no orphaned worker left on the port
    response = ready_app.test_client().get("/health/ready")
    assert response.status_code == 503 and "edge" in response.get_json()["message"]
    assert second != first
