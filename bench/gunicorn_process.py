"""A production-mode gunicorn (and `flask worker`) for the benches that drive the app over HTTP."""

from __future__ import annotations

import http.client
import os
import secrets
import signal
import subprocess
import time
from base64 import urlsafe_b64encode
from pathlib import Path


def production_env(url: str, data_dir: Path, **extra: str) -> dict[str, str]:
    """Environment for SLIPWAY_ENV=production against `url` with fresh secrets; `extra` adds settings."""
    return {
        **os.environ,
        "SLIPWAY_ENV": "production",
        "DATABASE_URL": url,
        "SECRET_KEY": secrets.token_urlsafe(48),
        "SLIPWAY_SECRETS_KEY": urlsafe_b64encode(secrets.token_bytes(32)).decode(),
        "SLIPWAY_HTTPS": "false",
        "SLIPWAY_DATA_DIR": str(data_dir),
        "SLIPWAY_RATELIMIT_ENABLED": "false",
        "SLIPWAY_POLL_ENABLED": "false",
        "SLIPWAY_RECONCILE_INTERVAL_SECONDS": "0",
        **extra,
    }


def wait_ready(port: int, proc: subprocess.Popen) -> None:
    """Wait until the API on 127.0.0.1:`port` answers 200 (60 s at most)."""
    deadline = time.time() + 60
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("gunicorn exited")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/api/v1/")
            if conn.getresponse().status == 200:
                return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError("gunicorn did not answer within 60 s")


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM, then SIGKILL after 20 s."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
