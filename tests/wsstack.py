"""The whole workspace journey on this machine, for the end-to-end test and the benchmark.

`journey_stack()` starts: the real agent (`python -m agent`, free port), the web app
(threaded Werkzeug server, free port) with the worker threads inside, the edge nginx
(own run folder, free port) and a server row for the agent. Every container it makes
carries `slipway.app.instance=<random>`; they and the agent's network are removed at the end.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import Flask
from werkzeug.serving import make_server as make_http_server

from app.extensions import db
from app.routing.edge_server import start_edge, stop_edge
from app.routing.sync import regenerate
from app.worker import start_worker
from tests.agent.helpers import TEST_IMAGE, docker_available, free_port, run_agent
from tests.builders import make_server
from tests.edgekit import NGINX_BIN, edge_dir, nginx_available
from tests.support import build_app

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def stack_available() -> bool:
    """Docker and nginx are both present."""
    return docker_available() and nginx_available()


def ensure_test_image() -> None:
    """Build the test image with its script when it is missing (about a second)."""
    have = subprocess.run(["docker", "image", "inspect", TEST_IMAGE], capture_output=True, check=False)
    if have.returncode != 0:
        subprocess.run(["bash", str(ROOT / "docker/images/build-test-image.sh")], check=True, cwd=ROOT,
                       env={**os.environ, "TEST_IMAGE": TEST_IMAGE})


@dataclass
class Stack:
    """Handles on the running journey."""

    app: Flask
    web: str
    edge_port: int
    instance: str
    agent: Any
    worker_stop: threading.Event

    def host_url(self, username: str, app: str, path: str = "/") -> str:
        """The browser URL of a workspace app (Chromium resolves *.localhost to loopback)."""
        return f"http://{username}-{app}.ws.localhost:{self.edge_port}{path}"


def wait_until(check: Callable[[], Any], timeout: float = 30, every: float = 0.05) -> Any:
    """Poll `check` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(every)


def remove_instance_objects(instance: str, network: str) -> None:
    import docker

    client = docker.from_env(timeout=60)
    for container in client.containers.list(all=True, filters={"label": f"slipway.app.instance={instance}"}):
        container.remove(force=True)
    for net in client.networks.list(names=[network]):
        if net.name == network:
            net.remove()


@contextmanager
def journey_stack(database_url: str, data_dir: Path, **overrides: Any) -> Iterator[Stack]:
    """Agent + web + worker + edge nginx, torn down (and its containers removed) afterwards."""
    ensure_test_image()
    instance = f"wstest-{secrets.token_hex(4)}"
    network = f"slipway-test-{instance}"
    web_port, edge_port, admin_port = free_port(), free_port(), free_port()
    (data_dir / "agent-work").mkdir(parents=True, exist_ok=True)
    with edge_dir() as run_dir, run_agent(data_dir / "agent-work", AGENT_NETWORK=network) as agent:
        settings = {
            "LISTEN_PORT": web_port, "PUBLIC_URL": f"http://127.0.0.1:{web_port}",
            "EDGE_DIR": run_dir, "EDGE_PORT": edge_port, "WORKSPACE_DOMAIN": f"ws.localhost:{edge_port}",
            "EDGE_ADMIN_PORT": admin_port, "EDGE_ADMIN_URLS": f"http://127.0.0.1:{admin_port}",
            "NGINX_BIN": NGINX_BIN, "INSTANCE_NAME": instance, "RECONCILE_INTERVAL_SECONDS": 0,
            "POLL_ENABLED": False, "MFA_REQUIRED_ROLES": "", "TASK_POLL_MS": 50,
            "TASK_RETRY_BASE_SECONDS": 0, "ORPHAN_GRACE_SECONDS": 3600, "WORKER_CONCURRENCY": 12,
            "AGENT_RETRIES": 0, "DEFAULT_IMAGE": TEST_IMAGE, **overrides,
        }
        app = build_app(database_url, data_dir, **settings)
        stop = threading.Event()
        server = make_http_server("127.0.0.1", web_port, app, threaded=True)
        serving = threading.Thread(target=server.serve_forever, daemon=True)
        serving.start()
        edge = None
        try:
            with app.app_context():
                make_server_row = make_server("local", agent_url=agent.base_url, token=agent.token)
                assert make_server_row.id
                regenerate()
            edge = start_edge(app.config, workers=1)
            start_worker(app, stop)
            yield Stack(app, f"http://127.0.0.1:{web_port}", edge_port, instance, agent, stop)
        finally:
            stop.set()
            if edge is not None:
                stop_edge(edge)
            server.shutdown()
            serving.join(5)
            time.sleep(0.3)  # let in-flight tasks notice the stop
            remove_instance_objects(instance, network)
            with app.app_context():
                for table in reversed(db.metadata.sorted_tables):
                    db.session.execute(table.delete())
                db.session.commit()
                db.engine.dispose()
