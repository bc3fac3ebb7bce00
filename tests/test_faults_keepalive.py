"""gunicorn keeps an idle client connection open longer than the edge keeps its idle upstream ones.

gunicorn's default (2 s) closed connections that the edge or a load balancer was about to reuse.
"""

from __future__ import annotations

import http.client
import re
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.gunicorn_run import gunicorn

ROOT = Path(__file__).resolve().parents[1]


def test_keepalive_setting_sits_between_the_edge_and_a_load_balancer(monkeypatch, tmp_path):
    import runpy

    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path / "prom"))
    monkeypatch.delenv("SLIPWAY_GUNICORN_KEEPALIVE", raising=False)
    settings = runpy.run_path(str(ROOT / "gunicorn.conf.py"))
    edge = (ROOT / "docker/nginx/edge.conf.j2").read_text()
    upstream = edge.split("upstream slipway_web", 1)[1].split("\n    }", 1)[0]
    edge_idle = int(re.search(r"keepalive_timeout (\d+)s;", upstream).group(1))
    assert edge_idle < settings["keepalive"] < 60
    monkeypatch.setenv("SLIPWAY_GUNICORN_KEEPALIVE", "45")
    assert runpy.run_path(str(ROOT / "gunicorn.conf.py"))["keepalive"] == 45


@pytest.mark.integration
def test_an_idle_connection_is_still_usable_after_five_seconds(database_url, tmp_path, app):
    with gunicorn(database_url, tmp_path / "data") as (base, _process):
        parts = urlsplit(base)
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
        try:
            connection.request("GET", "/login")
            first = connection.getresponse()
            first.read()
            assert first.status == 200 and first.getheader("Connection", "").lower() != "close"
            socket_before = connection.sock
            time.sleep(5)
            connection.request("GET", "/login")  # on the same socket: a closed one raises here or below
            second = connection.getresponse()
            second.read()
            assert second.status == 200 and connection.sock is socket_before
        finally:
            connection.close()
