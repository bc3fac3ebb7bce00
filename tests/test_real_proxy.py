"""Behind a real nginx and gunicorn: bans and audit name the real client, forged headers count for
nothing, and neither server announces a version."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests
from requests.adapters import HTTPAdapter
from sqlalchemy import select

from app.extensions import db
from app.models import LoginAttempt
from tests.agent.helpers import free_port
from tests.edgekit import NGINX_BIN, edge_dir, nginx_available
from tests.support import require_service

ROOT = Path(__file__).resolve().parent.parent
PROXY_SOURCE = "127.0.0.2"  # nginx talks to the app from here: the only trusted proxy
CLIENT_SOURCE = "127.0.0.3"  # the browser's address as nginx sees it
NGINX_CONF = """
daemon off;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log;
events {{ worker_connections 64; }}
http {{
  access_log off;
  server_tokens off;
  client_body_temp_path {dir}/body; proxy_temp_path {dir}/proxy; fastcgi_temp_path {dir}/fcgi;
  uwsgi_temp_path {dir}/uwsgi; scgi_temp_path {dir}/scgi;
  server {{
    listen 127.0.0.1:{port};
    location / {{
      proxy_pass http://127.0.0.1:{app_port};
      proxy_bind {source};
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto $scheme;
    }}
  }}
}}
"""


class SourceAdapter(HTTPAdapter):
    """Connect from a chosen loopback address, like a browser on another machine."""

    def __init__(self, source: str) -> None:
        self.source = source
        super().__init__()

    def init_poolmanager(self, *args, **kwargs):
        kwargs["source_address"] = (self.source, 0)
        return super().init_poolmanager(*args, **kwargs)


def _wait(url: str, process: subprocess.Popen, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url}: the server exited with {process.returncode}")
        try:
            requests.get(url, timeout=5)
            return
        except requests.RequestException:  # not listening yet, or slow on a busy machine
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {seconds}s")


@contextmanager
def _process(args: list[str], env: dict[str, str] | None, log: Path) -> Iterator[subprocess.Popen]:
    with log.open("wb") as out:
        process = subprocess.Popen(args, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


@pytest.fixture
def stack(app, database_url):
    """gunicorn serving the app (trusting only nginx's address) behind a real nginx."""
    require_service("nginx", nginx_available())
    with edge_dir() as run:
        app_port, edge_port = free_port(), free_port()
        env = {
            **os.environ,
            "SLIPWAY_ENV": "testing",
            "DATABASE_URL": database_url,
            "SLIPWAY_DATA_DIR": str(run / "data"),
            "SLIPWAY_TRUSTED_PROXY_COUNT": "1",
            "SLIPWAY_TRUSTED_PROXIES": PROXY_SOURCE,
            "SLIPWAY_RATELIMIT_ENABLED": "false",
        }
        gunicorn = [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{app_port}", "--workers", "1",
                    "--threads", "4", "wsgi:app"]
        conf = run / "nginx.conf"
        conf.write_text(NGINX_CONF.format(dir=run, port=edge_port, app_port=app_port, source=PROXY_SOURCE))
        with _process(gunicorn, env, run / "gunicorn.log") as web:
            _wait(f"http://127.0.0.1:{app_port}/health", web)
            with _process([NGINX_BIN, "-c", str(conf), "-p", str(run)], None, run / "nginx.log") as edge:
                _wait(f"http://127.0.0.1:{edge_port}/health", edge)
                yield {"direct": f"http://127.0.0.1:{app_port}", "edge": f"http://127.0.0.1:{edge_port}"}


def failed_login(base_url: str, source: str, forged: str) -> requests.Response:
    session = requests.Session()
    session.mount("http://", SourceAdapter(source))
    html = session.get(f"{base_url}/login", timeout=30).text
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html).group(1)
    return session.post(
        f"{base_url}/login",
        data={"username": "nobody", "password": "wrong password", "csrf_token": token},
        headers={"X-Forwarded-For": forged},
        timeout=30,
    )


@pytest.mark.integration
def test_real_client_ip_through_nginx_and_no_version_banners(app, stack):
    through_edge = failed_login(stack["edge"], CLIENT_SOURCE, "6.6.6.6")
    direct = failed_login(stack["direct"], "127.0.0.1", "7.7.7.7")
    assert through_edge.status_code == direct.status_code == 200
    with app.app_context():
        ips = list(db.session.scalars(select(LoginAttempt.ip_address).order_by(LoginAttempt.id)))
    assert ips == [CLIENT_SOURCE, "127.0.0.1"]
    assert through_edge.headers["Server"] == "nginx"
    assert not re.search(r"\d", direct.headers.get("Server", ""))
    for response in (through_edge, direct):
        assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
        assert "X-Powered-By" not in response.headers
