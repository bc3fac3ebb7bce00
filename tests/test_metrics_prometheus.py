"""A real Prometheus scrapes a live Slipway (gunicorn, two workers) and the test reads a metric back."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

from tests.agent.helpers import free_port, stop_process
from tests.gunicorn_run import wait_for_200  # also waits out Prometheus's 503s while it starts
from tests.support import require_service

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "prometheus-scrape-token-" + "y" * 20
PROMETHEUS_BIN = shutil.which("prometheus") or "/usr/bin/prometheus"
REQUESTS = 20

PROMETHEUS_CONFIG = """
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: slipway
    metrics_path: /metrics
    authorization:
      type: Bearer
      credentials_file: {token_file}
    static_configs:
      - targets: ["127.0.0.1:{port}"]
  - job_name: slipway-without-token
    metrics_path: /metrics
    static_configs:
      - targets: ["127.0.0.1:{port}"]
"""


@contextmanager
def _process(command: list[str], env: dict[str, str] | None, log: Path) -> Iterator[subprocess.Popen]:
    with open(log, "wb") as out:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield process
    finally:
        stop_process(process, timeout=10)


def _query(base: str, expression: str) -> list[dict]:
    response = requests.get(f"{base}/api/v1/query", params={"query": expression}, timeout=5)
    response.raise_for_status()
    body = response.json()
    assert body["status"] == "success", body
    return body["data"]["result"]


@pytest.mark.integration
def test_prometheus_scrapes_a_live_slipway_with_the_bearer_token(database_url, tmp_path, app):
    require_service("prometheus", os.access(PROMETHEUS_BIN, os.X_OK))
    app_port, prom_port = free_port(), free_port()
    data_dir = tmp_path / "data"
    stale_dir = data_dir / "prometheus"
    stale_dir.mkdir(parents=True)
    (stale_dir / f"counter_{os.getpid()}.db").write_bytes(b"stale values from an earlier run")
    env = {
        **{k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"},
        "SLIPWAY_ENV": "testing",
        "DATABASE_URL": database_url,
        "SLIPWAY_DATA_DIR": str(data_dir),
        "SLIPWAY_METRICS_TOKEN": TOKEN,
        "SLIPWAY_RATELIMIT_ENABLED": "false",
    }
    # the production command (README): the config file turns on multiprocess mode and cleans its directory
    web = [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "--bind", f"127.0.0.1:{app_port}",
           "--workers", "2", "--threads", "4", "wsgi:app"]
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    config = tmp_path / "prometheus.yml"
    config.write_text(PROMETHEUS_CONFIG.format(token_file=token_file, port=app_port))
    prometheus = [PROMETHEUS_BIN, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                  f"--web.listen-address=127.0.0.1:{prom_port}", "--log.level=warn"]
    base_app, base_prom = f"http://127.0.0.1:{app_port}", f"http://127.0.0.1:{prom_port}"

    with _process(web, env, tmp_path / "gunicorn.log") as web_proc:
        wait_for_200(f"{base_app}/health", web_proc, tmp_path / "gunicorn.log")
        assert not (stale_dir / f"counter_{os.getpid()}.db").exists()  # cleaned when the master started
        for _ in range(REQUESTS):  # a new connection each time, so both workers serve some
            assert requests.get(f"{base_app}/login", timeout=10).status_code == 200
        assert requests.get(f"{base_app}/metrics", timeout=10).status_code == 404
        # whichever worker answers, it reports every worker's count
        seen = set()
        for _ in range(8):
            text = requests.get(f"{base_app}/metrics", headers={"Authorization": f"Bearer {TOKEN}"},
                                timeout=10).text
            series = 'slipway_http_requests_total{method="GET",route="/login",status="200"}'
            line = next(line for line in text.splitlines() if line.startswith(series))
            seen.add(float(line.rsplit(" ", 1)[1]))
        assert seen == {float(REQUESTS)}

        with _process(prometheus, None, tmp_path / "prometheus.log") as prom_proc:
            wait_for_200(f"{base_prom}/-/ready", prom_proc, tmp_path / "prometheus.log")
            expression = ('sum(slipway_http_requests_total'
                          '{job="slipway",route="/login",method="GET",status="200"})')
            deadline = time.monotonic() + 60
            result: list[dict] = []
            while time.monotonic() < deadline:
                result = _query(base_prom, expression)
                if result:
                    break
                time.sleep(0.5)
            assert result, (tmp_path / "prometheus.log").read_text()[-3000:]
            assert float(result[0]["value"][1]) == REQUESTS
            up: dict[str, str] = {}
            while time.monotonic() < deadline and len(up) < 2:  # each job's first scrape, staggered
                up = {item["metric"]["job"]: item["value"][1] for item in _query(base_prom, "up")}
                time.sleep(0.2)
            assert up == {"slipway": "1", "slipway-without-token": "0"}  # the scrape without it got a 404
            workspaces = _query(base_prom, 'slipway_workspaces{job="slipway"}')
            assert {item["metric"]["status"] for item in workspaces} >= {"running", "stopped"}
