"""Several Slipway instances on one database, for the multi-instance test.

`cluster(database_url, root)` starts, all on loopback: a private Redis, the real agent (a server
row for it), TWO production web processes (`tests/gunicorn_run.gunicorn`, one port each), TWO
`flask --app wsgi worker` processes and TWO edges (nginx + Lua, each with its own public and
admin port, both listed in SLIPWAY_EDGE_ADMIN_URLS), each edge in front of one web process.
What an install must share is shared (one database, Redis, SECRET_KEY, SLIPWAY_SECRETS_KEY, the
edge key file, the uploads and workspace folders, the instance name, the public URLs); what is
per instance (data folder, ports, run folders, logs) is not. Every process, container and
network it made is gone afterwards, and the tables are emptied.
"""

from __future__ import annotations

import base64
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flask import Flask

from app.extensions import db
from app.routing.edge_server import kill_leftovers, start_edge, stop_edge
from app.routing.signing import ensure_key_file
from tests.agent.helpers import TEST_IMAGE, AgentProcess, free_port, run_agent
from tests.builders import make_server
from tests.edgekit import NGINX_BIN, edge_dir
from tests.gunicorn_run import gunicorn
from tests.private_services import private_redis
from tests.support import build_app
from tests.wsstack import ensure_test_image, remove_instance_objects

ROOT = Path(__file__).resolve().parents[1]
TASK_LEASE_SECONDS = 4  # short, so a killed worker's task is taken over within seconds
LOGIN_LIMIT = 6  # failed logins an address may POST per hour, whichever web process it reaches
LOCK_THRESHOLD = 3  # consecutive failures that lock a login name from one address (database)
# Only the pull at an edge's start: a route an edge serves later reached it by a push.
EDGE_SYNC_SECONDS = 3600
WORKER_START_SECONDS = 60


@dataclass
class Edge:
    """One running edge: its ports, its run folder's settings and the nginx master."""

    settings: dict[str, Any]
    process: subprocess.Popen

    @property
    def port(self) -> int:
        """The public listener's port."""
        return int(self.settings["EDGE_PORT"])


@dataclass
class Cluster:
    """Handles on every process of the two-instance install."""

    app: Flask  # the test's own handle on the shared database (same keys as the processes)
    webs: list[str]
    web_processes: list[subprocess.Popen]
    workers: list[subprocess.Popen]
    edges: list[Edge]
    agent: AgentProcess
    instance: str
    workspace_domain: str
    root: Path
    access_logs: list[Path]
    _edge_runs: ExitStack = field(default_factory=ExitStack)

    def restart_edge(self, index: int) -> Edge:
        """Stop edge `index` and start a fresh nginx on the same ports with an empty run folder."""
        old = self.edges[index]
        stop_edge(old.process)
        kill_leftovers(old.process)
        folder = self._edge_runs.enter_context(edge_dir())
        process = start_edge({**old.settings, "EDGE_DIR": folder}, workers=1)
        self.edges[index] = Edge({**old.settings, "EDGE_DIR": folder}, process)
        return self.edges[index]


def worker_process(database_url: str, data_dir: Path, env: dict[str, str]) -> subprocess.Popen:
    """`flask --app wsgi worker` on `database_url` with `env`; its output in data_dir/worker.log."""
    data_dir.mkdir(parents=True, exist_ok=True)
    full_env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    full_env.update({"SLIPWAY_ENV": "testing", "DATABASE_URL": database_url,
                     "SLIPWAY_DATA_DIR": str(data_dir), **env})
    with open(data_dir / "worker.log", "ab") as out:
        return subprocess.Popen([sys.executable, "-m", "flask", "--app", "wsgi", "worker"], cwd=ROOT,
                                env=full_env, stdout=out, stderr=subprocess.STDOUT)


def wait_worker_started(process: subprocess.Popen, log: Path, seconds: float = WORKER_START_SECONDS) -> None:
    """Wait until the worker printed that it started; fail with its log when it dies or time runs out."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and process.poll() is None:
        if log.exists() and "worker started" in log.read_text(errors="replace"):
            return
        time.sleep(0.1)
    raise AssertionError(f"the worker did not start: {log.read_text(errors='replace')[-3000:]}")


def signal_tree(process: subprocess.Popen, sig: int) -> None:
    """Signal a process and its direct children (the agent's gunicorn master and its workers)."""
    children = subprocess.run(["pgrep", "-P", str(process.pid)], capture_output=True, text=True,
                              timeout=10, check=False).stdout.split()
    for pid in [process.pid, *map(int, children)]:
        os.kill(pid, sig)


def stop_worker(process: subprocess.Popen, timeout: float = 30) -> None:
    """SIGTERM (running tasks finish or are released), then SIGKILL when it lingers."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def _empty_tables(app: Flask) -> None:
    with app.app_context():
        for table in reversed(db.metadata.sorted_tables):
            db.session.execute(table.delete())
        db.session.commit()
        db.engine.dispose()


@contextmanager
def cluster(database_url: str, root: Path) -> Iterator[Cluster]:
    """Two web processes, two workers and two edges on one database and one Redis (see the module doc)."""
    ensure_test_image()
    instance = f"multi-{secrets.token_hex(4)}"
    network = f"slipway-test-{instance}"
    shared = root / "shared"  # what every instance of an install must see: one folder each
    for sub in ("uploads", "workspaces", "keys"):
        (shared / sub).mkdir(parents=True, exist_ok=True)
    key_file = shared / "keys" / "edge.key"
    ensure_key_file(key_file)  # made once, then copied to every host (here: one path for all)
    secret_key = secrets.token_urlsafe(48)
    secrets_key = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()
    web_ports = [free_port(), free_port()]
    edge_ports = [free_port(), free_port()]
    admin_ports = [free_port(), free_port()]
    # One public name for the workspace hosts (a load balancer in front of the edges in production;
    # here the test sends each request to the edge it means, with that Host header).
    domain = f"ws.localhost:{edge_ports[0]}"
    db_app = build_app(database_url, root / "test-app", SECRET_KEY=secret_key, SECRETS_KEY=secrets_key,
                       EDGE_KEY_FILE=str(key_file), WORKSPACE_DOMAIN=domain)
    _empty_tables(db_app)
    with ExitStack() as stack:
        redis = stack.enter_context(private_redis(root / "redis"))
        (root / "agent-work").mkdir(parents=True, exist_ok=True)
        agent = stack.enter_context(run_agent(root / "agent-work", AGENT_NETWORK=network))
        stack.callback(remove_instance_objects, instance, network)
        stack.callback(_empty_tables, db_app)
        with db_app.app_context():
            make_server("local", agent_url=agent.base_url, token=agent.token)
        common = {
            "SECRET_KEY": secret_key, "SLIPWAY_SECRETS_KEY": secrets_key, "REDIS_URL": redis.url,
            "SLIPWAY_EDGE_KEY_FILE": str(key_file),
            "SLIPWAY_EDGE_ADMIN_URLS": ",".join(f"http://127.0.0.1:{port}" for port in admin_ports),
            "SLIPWAY_UPLOAD_DIR": str(shared / "uploads"),
            "SLIPWAY_WORKSPACE_ROOT": str(shared / "workspaces"),
            "SLIPWAY_INSTANCE": instance, "SLIPWAY_PUBLIC_URL": f"http://127.0.0.1:{web_ports[0]}",
            "SLIPWAY_WORKSPACE_DOMAIN": domain, "SLIPWAY_DEFAULT_IMAGE": TEST_IMAGE,
            "SLIPWAY_RATELIMIT_ENABLED": "true", "SLIPWAY_RATELIMIT_LOGIN": f"{LOGIN_LIMIT} per hour",
            "SLIPWAY_LOGIN_LOCK_THRESHOLD": str(LOCK_THRESHOLD),
            # The test names its client addresses (X-Forwarded-For) as a proxy in front would.
            "SLIPWAY_TRUSTED_PROXY_COUNT": "1",
        }
        web_processes, webs = [], []
        for n, port in enumerate(web_ports):
            base, process = stack.enter_context(gunicorn(
                database_url, root / f"web{n}", workers=1, threads=4, port=port,
                env={**common, "SLIPWAY_LISTEN_PORT": str(port)}))
            webs.append(base)
            web_processes.append(process)
        worker_env = {
            **common, "SLIPWAY_TASK_LEASE_SECONDS": str(TASK_LEASE_SECONDS), "SLIPWAY_TASK_POLL_MS": "100",
            "SLIPWAY_TASK_RETRY_BASE_SECONDS": "0", "SLIPWAY_WORKER_CONCURRENCY": "2",
            "SLIPWAY_POLL_ENABLED": "false", "SLIPWAY_RECONCILE_INTERVAL_SECONDS": "0",
            "SLIPWAY_AGENT_READ_TIMEOUT": "30", "SLIPWAY_POLL_LEASE_SECONDS": "60",
            "SLIPWAY_ORPHAN_GRACE_SECONDS": "3600",
        }
        # Each worker tails the access log of "its" edge (the edge on its host) under a name of its own.
        access_logs = [root / f"edge{n}-access.json" for n in range(2)]
        workers = []
        for n in range(2):
            process = worker_process(database_url, root / f"worker{n}", {
                **worker_env, "SLIPWAY_EDGE_ACCESS_LOG": str(access_logs[n]),
                "SLIPWAY_CONNECTION_TAIL_NAME": f"edge-{n}", "SLIPWAY_CONNECTION_TAIL_SECONDS": "0.2"})
            stack.callback(stop_worker, process)
            workers.append(process)
        for n, process in enumerate(workers):
            wait_worker_started(process, root / f"worker{n}" / "worker.log")
        running = Cluster(db_app, webs, web_processes, workers, [], agent, instance, domain, root,
                          access_logs)
        stack.enter_context(running._edge_runs)
        # Registered before the first start: an edge that fails to start still gets the others stopped.
        stack.callback(lambda: [stop_edge(edge.process) for edge in running.edges])
        for n in range(2):
            settings = {
                "EDGE_DIR": running._edge_runs.enter_context(edge_dir()), "EDGE_BIND": "127.0.0.1",
                "EDGE_PORT": edge_ports[n], "EDGE_ADMIN_PORT": admin_ports[n], "EDGE_KEY_FILE": key_file,
                "EDGE_SYNC_SECONDS": EDGE_SYNC_SECONDS, "NGINX_BIN": NGINX_BIN, "LISTEN_HOST": "127.0.0.1",
                "LISTEN_PORT": web_ports[n], "WORKSPACE_DOMAIN": domain, "EDGE_ACCESS_LOG": access_logs[n],
            }
            running.edges.append(Edge(settings, start_edge(settings, workers=1)))
        yield running

