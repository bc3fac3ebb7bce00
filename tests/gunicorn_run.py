"""Run the production web command (gunicorn with gunicorn.conf.py) for a test or a bench."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests

from tests.agent.helpers import free_port, stop_process

ROOT = Path(__file__).resolve().parents[1]


def wait_for_200(url: str, process: subprocess.Popen, log: Path, seconds: float = 60) -> None:
    """Wait until `url` answers 200; fail with the log's tail when the process dies or time runs out."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if requests.get(url, timeout=5).status_code == 200:
                return
        except (requests.ConnectionError, requests.Timeout):
            pass
        time.sleep(0.1)
    raise AssertionError(f"{url} did not come up: {log.read_text(errors='replace')[-3000:]}")


@contextmanager
def gunicorn(database_url: str, data_dir: Path, *, workers: int = 1, threads: int = 4,
             env: dict[str, str] | None = None,
             port: int | None = None) -> Iterator[tuple[str, subprocess.Popen]]:
    """`gunicorn -c gunicorn.conf.py wsgi:app` on `port` (default: a free one); yields (base URL, master)."""
    port = port or free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    full_env = {
        **{k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"},
        "SLIPWAY_ENV": "testing",
        "DATABASE_URL": database_url,
        "SLIPWAY_DATA_DIR": str(data_dir),
        "SLIPWAY_RATELIMIT_ENABLED": "false",
        "SLIPWAY_GUNICORN_BIND": f"127.0.0.1:{port}",
        "SLIPWAY_GUNICORN_WORKERS": str(workers),
        "SLIPWAY_GUNICORN_THREADS": str(threads),
        **(env or {}),
    }
    log = data_dir / "gunicorn.log"
    with open(log, "ab") as out:
        process = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"],
                                   cwd=ROOT, env=full_env, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_200(f"{base}/login", process, log)
        yield base, process
    finally:
        stop_process(process, timeout=10)
