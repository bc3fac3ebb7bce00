"""HTTP load with Locust: 100 logged-in users and 20 API clients against the production processes.

The stack, all on loopback: gunicorn with gunicorn.conf.py (2 workers x 16 threads, the
production configuration), `flask --app wsgi worker`, a fresh MariaDB database
(`BENCH_DATABASE_URL`, default slipway_test_load_bench), Redis as the rate limiter's storage
(own key prefix), the real agent over Docker and the edge nginx. Before the load,
`BENCH_LOAD_WORKSPACES` owners get a busybox workspace (slipway/test-workspace:latest) each,
provisioned by the worker through the agent; every container, network and image made here
is removed at the end.

Locust (headless, bounded by users, spawn rate and -t) then runs bench/load/locustfile.py:
`BENCH_LOAD_USERS` browser users (admins and qvp fixed at 10 each, the rest regular users
sharing the owners' accounts) plus `BENCH_LOAD_API_CLIENTS` key holders, for
`BENCH_LOAD_SECONDS`, each waiting 1-3 s between actions:
- regular: workspace page, account page, open link (hand-off → exchange on the workspace host
  through the edge → the workspace's page through the edge), the task stream WebSocket (open,
  read one message, close), once log out and in again;
- admin: users list, approvals, audit, servers; approves the `BENCH_LOAD_PENDING` pending
  accounts one by one (each queues a busybox workspace);
- qvp: images list (from the agent), the busybox image's page, uploads, the build form;
  `BENCH_LOAD_BUILDS` builds in all, a one-line Dockerfile FROM the busybox image (built by the
  agent, nothing pushed);
- API: /api/v1/me and /api/v1/, and each client revokes its spare key once.
What differs from a default production deployment, for the bench only: every request comes
from 127.0.0.1, so the per-address login and API limits are raised (the limiter still runs on
Redis) and MFA is not required for admin and qvp (no TOTP in the load).

Printed: requests/s; p50/p95/p99 per page; 5xx count (bar: zero); audited actions that
succeeded against the audit rows written (bar: none lost); RSS and PSS of web (master +
workers) + worker at the peak PSS sample (goal < 250 MB together; reported, not a bar);
database connections of the bench database at peak; the load average. Exit 1 when a bar is missed.
"""

from __future__ import annotations

import csv
import json
import os
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from flask_migrate import upgrade  # noqa: E402
from sqlalchemy import create_engine, func, select, text  # noqa: E402

from app import create_app  # noqa: E402
from app.extensions import db  # noqa: E402
from app.models import AuditLog  # noqa: E402
from app.routing.edge_server import start_edge, stop_edge  # noqa: E402
from app.routing.sync import regenerate  # noqa: E402
from app.services import workspaces as service  # noqa: E402
from bench.bench_memory import children, memory_mb  # noqa: E402
from bench.benchdb import fresh_database  # noqa: E402
from bench.gunicorn_process import production_env, stop, wait_ready  # noqa: E402
from bench.taskwait import wait_tasks  # noqa: E402
from tests.agent.helpers import TEST_IMAGE, free_port, run_agent  # noqa: E402
from tests.builders import PASSWORD, make_api_key, make_server, make_user  # noqa: E402
from tests.edgekit import NGINX_BIN, edge_dir  # noqa: E402
from tests.wsstack import ensure_test_image, remove_instance_objects, stack_available  # noqa: E402

DEFAULT_URL = "mysql+pymysql://slipway:slipway-test-password@127.0.0.1/slipway_test_load_bench"
USERS = int(os.environ.get("BENCH_LOAD_USERS", "100"))
API_CLIENTS = int(os.environ.get("BENCH_LOAD_API_CLIENTS", "20"))
SECONDS = int(os.environ.get("BENCH_LOAD_SECONDS", "120"))
WORKSPACES = int(os.environ.get("BENCH_LOAD_WORKSPACES", "20"))
PENDING = int(os.environ.get("BENCH_LOAD_PENDING", "10"))
BUILDS = int(os.environ.get("BENCH_LOAD_BUILDS", "3"))
ADMINS = QVP = min(10, max(1, USERS // 10))
SPAWN_RATE = int(os.environ.get("BENCH_LOAD_SPAWN_RATE", "10"))  # users started per second
MEMORY_GOAL_MB = 250
SMALL = service.Plan(cpu=0.25, memory_mb=256)  # the busybox image needs little
LOCUSTFILE = ROOT / "bench/load/locustfile.py"


def make_accounts(server_id: int, build_repository: str) -> dict:
    """Owners with a queued workspace, admins, qvp, pending accounts and API keys: the locustfile's plan."""
    owners = []
    for n in range(WORKSPACES):
        user = make_user(f"owner{n}")
        task = service.provision(user, user, SMALL)  # asked by the owner: their task stream is theirs to read
        owners.append({"username": user.username, "task_id": task.id})
    admins = [make_user(f"admin{n}", role="admin").username for n in range(ADMINS)]
    qvp = [make_user(f"qvp{n}", role="qvp").username for n in range(QVP)]
    pending = [make_user(f"pending{n}", status="pending").id for n in range(PENDING)]
    keys = []
    for n in range(API_CLIENTS):
        user = make_user(f"script{n}")
        _, value = make_api_key(user, scope="write", name="load")
        spare, _ = make_api_key(user, name="spare")
        keys.append({"value": value, "spare_id": spare.id})
    return {"password": PASSWORD, "owners": owners, "admins": admins, "qvp": qvp, "pending": pending,
            "api_keys": keys, "server_id": server_id, "builds": BUILDS, "base_image": TEST_IMAGE,
            "build_repository": build_repository}


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process so far, from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Sampler(threading.Thread):
    """Every 2 s: PSS/RSS of gunicorn master + workers + task worker; the bench database's connections."""

    def __init__(self, master: int, worker: int, url: str) -> None:
        super().__init__(daemon=True)
        self.master, self.worker, self.stopping = master, worker, threading.Event()
        self.engine = create_engine(url, pool_size=1)
        self.database = url.rsplit("/", 1)[1]
        self.peak: dict = {"pss": 0.0}
        self.connections = self.threads_connected = 0
        self.pids = [master, *children(master), worker]
        self.cpu_start = [cpu_seconds(pid) for pid in self.pids]
        self.cpu_used: list[float] = []

    def sample(self) -> None:
        """One sample; keeps the one with the largest PSS total."""
        rows = [("web master", self.master)]
        rows += [(f"web worker {n}", pid) for n, pid in enumerate(children(self.master), 1)]
        rows.append(("task worker", self.worker))
        values = [(name, pid, *memory_mb(pid)) for name, pid in rows]
        pss = sum(v[3] for v in values)
        if pss > self.peak["pss"]:
            self.peak = {"pss": pss, "rss": sum(v[2] for v in values), "rows": values}
        with self.engine.connect() as conn:
            held = conn.execute(text("SELECT COUNT(*) FROM information_schema.processlist WHERE db = :db"),
                                {"db": self.database}).scalar_one() - 1  # not this sampler's own
            threads = int(conn.execute(text("SHOW STATUS LIKE 'Threads_connected'")).one()[1])
        self.connections = max(self.connections, held)
        self.threads_connected = max(self.threads_connected, threads)

    def run(self) -> None:
        """Sample until stopped, then take the CPU time each process used meanwhile."""
        while not self.stopping.wait(2):
            try:
                self.sample()
            except (OSError, KeyError):
                pass  # a process restarting between two reads of /proc
        pairs = zip(self.pids, self.cpu_start, strict=True)
        self.cpu_used = [cpu_seconds(pid) - start for pid, start in pairs]


def run_locust(base: str, tmp: Path, plan_file: Path) -> tuple[list[dict], dict, float]:
    """Run Locust headless; (per-name stats rows, the locustfile's results, wall seconds)."""
    results = tmp / "results.json"
    env = {**os.environ, "BENCH_LOAD_PLAN": str(plan_file), "BENCH_LOAD_RESULTS": str(results),
           "BENCH_LOAD_ADMINS": str(ADMINS), "BENCH_LOAD_QVP": str(QVP),
           "BENCH_LOAD_API_CLIENTS": str(API_CLIENTS)}
    command = [str(ROOT / ".venv/bin/locust"), "-f", str(LOCUSTFILE), "--headless", "--host", base,
               "-u", str(USERS + API_CLIENTS), "-r", str(SPAWN_RATE), "-t", f"{SECONDS}s",
               "--stop-timeout", "10", "--csv", str(tmp / "locust"), "--only-summary",
               "--loglevel", "WARNING"]
    t0 = time.monotonic()
    with open(tmp / "locust.log", "wb") as log:
        subprocess.run(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                       timeout=SECONDS + 120, check=False)
    wall = time.monotonic() - t0
    with open(tmp / "locust_stats.csv") as handle:
        rows = list(csv.DictReader(handle))
    return rows, json.loads(results.read_text()), wall


def print_stats(rows: list[dict]) -> None:
    """requests/s and p50/p95/p99 per page."""
    print(f"   {'page':<40} {'requests':>8} {'fail':>5} {'req/s':>6} {'p50':>6} {'p95':>6} {'p99':>6} (ms)")
    for row in rows:
        print(f"   {row['Name'][:40]:<40} {row['Request Count']:>8} {row['Failure Count']:>5} "
              f"{float(row['Requests/s']):6.1f} {row['50%']:>6} {row['95%']:>6} {row['99%']:>6}")


def audit_check(app: object, first_id: int, audited: dict[str, int]) -> int:
    """Compare the audited actions that succeeded with the rows written after `first_id`; rows lost."""
    with app.app_context():
        written = dict(db.session.execute(
            select(AuditLog.action_type, func.count())
            .where(AuditLog.id > first_id).group_by(AuditLog.action_type)
        ).all())
    lost = 0
    print("-- audit: action, successful requests, rows written")
    for action, count in sorted(audited.items()):
        rows = written.get(action, 0)
        lost += max(0, count - rows)
        print(f"   {action:<32} {count:6d} {rows:6d}{'  LOST ' + str(count - rows) if rows < count else ''}")
    others = {a: n for a, n in written.items() if a not in audited}
    print(f"   other rows written (worker, tasks): {others}")
    return lost


def print_memory(sampler: Sampler, requests: int) -> None:
    """The peak sample, per process and together, against the goal; CPU time and connections."""
    peak = sampler.peak
    print(f"-- memory at the peak sample (web + worker), goal < {MEMORY_GOAL_MB} MB together")
    for name, pid, rss, pss in peak.get("rows", []):
        print(f"   {name:<14} pid {pid:7d}  RSS {rss:6.1f} MB  PSS {pss:6.1f} MB")
    verdict = "met" if peak["pss"] < MEMORY_GOAL_MB else "MISSED"
    print(f"   {'together':<26} RSS {peak.get('rss', 0):6.1f} MB  PSS {peak['pss']:6.1f} MB "
          f"(PSS counts shared pages once): goal {verdict}")
    web, task = sum(sampler.cpu_used[:-1]), sampler.cpu_used[-1]
    print(f"-- CPU time used during the load: web (master + workers) {web:.1f} s, task worker {task:.1f} s; "
          f"{web * 1000 / max(1, requests):.0f} ms of web CPU per request")
    print(f"-- database connections at peak: {sampler.connections} to {sampler.database} "
          f"(information_schema.processlist); server-wide Threads_connected {sampler.threads_connected} "
          "(other databases on this server included)")


def main() -> int:  # noqa: PLR0915 - one linear script: start, load, measure, tear down
    """Start the stack, provision, run Locust, print the figures; 1 when a bar is missed."""
    if not stack_available():
        print("bench_load: Docker and nginx are needed; skipped")
        return 0
    ensure_test_image()
    tmp = Path(tempfile.mkdtemp(prefix="slipway-bench-load-"))
    url = fresh_database(DEFAULT_URL, tmp)
    instance = f"loadbench-{secrets.token_hex(4)}"
    network = f"slipway-test-{instance}"
    build_repository = f"slipway-bench-load-{secrets.token_hex(4)}"
    web_port, edge_port, admin_port = free_port(), free_port(), free_port()
    (tmp / "agent-work").mkdir()
    with edge_dir() as run_dir, run_agent(tmp / "agent-work", AGENT_NETWORK=network) as agent:
        env = production_env(url, tmp / "data", **{
            "SLIPWAY_LISTEN_PORT": str(web_port), "SLIPWAY_PUBLIC_URL": f"http://127.0.0.1:{web_port}",
            "SLIPWAY_EDGE_DIR": str(run_dir), "SLIPWAY_EDGE_PORT": str(edge_port),
            "SLIPWAY_WORKSPACE_DOMAIN": f"ws.localhost:{edge_port}",
            "SLIPWAY_EDGE_ADMIN_PORT": str(admin_port),
            "SLIPWAY_EDGE_ADMIN_URLS": f"http://127.0.0.1:{admin_port}", "SLIPWAY_NGINX_BIN": NGINX_BIN,
            "SLIPWAY_INSTANCE": instance, "SLIPWAY_DEFAULT_IMAGE": TEST_IMAGE,
            "SLIPWAY_WORKSPACE_ROOT": str(tmp / "agent-work"),
            "SLIPWAY_MFA_REQUIRED_ROLES": "none",
            "REDIS_URL": "redis://127.0.0.1:6379/0", "SLIPWAY_RATELIMIT_ENABLED": "true",
            "SLIPWAY_RATELIMIT_KEY_PREFIX": f"slipway_test_load_{secrets.token_hex(4)}",
            "SLIPWAY_RATELIMIT_LOGIN": "100000 per minute", "SLIPWAY_RATELIMIT_API": "100000 per minute",
        })
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        os.environ.update(env)  # the bench's own app is the production configuration too
        app = create_app()
        with app.app_context():
            upgrade()
            server = make_server("local", agent_url=agent.base_url, token=agent.token, cpu_cores=64,
                                 memory_total=512 * 1024**3)
            regenerate()
            plan = make_accounts(server.id, build_repository)
            first_id = 0
        edge = start_edge(app.config, workers=1)
        plan["edge_port"] = edge_port
        plan_file = tmp / "plan.json"
        plan_file.write_text(json.dumps(plan))
        web = worker = None
        try:
            with open(tmp / "web.log", "wb") as web_log, open(tmp / "worker.log", "wb") as worker_log:
                web = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py",
                                        "-b", f"127.0.0.1:{web_port}", "wsgi:app"], cwd=ROOT, env=env,
                                       stdout=web_log, stderr=subprocess.STDOUT)
                worker = subprocess.Popen([sys.executable, "-m", "flask", "--app", "wsgi", "worker"],
                                          cwd=ROOT, env=env, stdout=worker_log, stderr=subprocess.STDOUT)
            wait_ready(web_port, web)
            with app.app_context():
                wait_tasks(180)
                first_id = db.session.scalar(select(func.max(AuditLog.id))) or 0
            print(f"stack: gunicorn 2 workers x 16 threads (gunicorn.conf.py, production settings) + "
                  f"worker + MariaDB {url.rsplit('/', 1)[1]} + Redis + agent + edge nginx; "
                  f"{WORKSPACES} busybox workspaces running")
            sampler = Sampler(web.pid, worker.pid, url)
            sampler.start()
            load_before = os.getloadavg()
            rows, results, wall = run_locust(f"http://127.0.0.1:{web_port}", tmp, plan_file)
            load_after = os.getloadavg()
            sampler.stopping.set()
            sampler.join(10)
            with app.app_context():
                wait_tasks(120)  # the approvals' workspaces and the builds: their audit rows too
        finally:
            for process in (web, worker):
                if process is not None:
                    stop(process)
            stop_edge(edge)
            remove_instance_objects(instance, network)
            built = [f"{build_repository}:b{n}" for n in range(BUILDS)]
            subprocess.run(["docker", "image", "rm", "-f", *built], capture_output=True, check=False)
    total = next(r for r in rows if r["Name"] == "Aggregated")
    print(f"-- Locust: {USERS} browser users ({ADMINS} admin, {QVP} qvp, {USERS - ADMINS - QVP} regular on "
          f"{WORKSPACES} workspace owners' accounts) + {API_CLIENTS} API clients, {SECONDS} s "
          f"(spawn {SPAWN_RATE}/s, wall {wall:.0f} s): {total['Request Count']} requests, "
          f"{float(total['Requests/s']):.1f} requests/s, {total['Failure Count']} failures")
    print_stats([r for r in rows if r["Name"] != "Aggregated"])
    server_errors = results["server_errors"]
    print(f"-- 5xx answers: {len(server_errors)} (bar: 0) {server_errors[:10] if server_errors else ''}")
    lost = audit_check(app, first_id, results["audited"])
    print(f"-- audit rows lost: {lost} (bar: 0)")
    print_memory(sampler, int(total["Request Count"]))
    print(f"load average: before {' '.join(f'{x:.2f}' for x in load_before)}; "
          f"after {' '.join(f'{x:.2f}' for x in load_after)} on {os.cpu_count()} CPUs")
    failures = [line for line in (tmp / "locust_failures.csv").read_text().splitlines()[1:6]]
    if failures:
        print("-- failures (first 5, from Locust):\n   " + "\n   ".join(failures))
    print(f"logs and Locust CSVs: {tmp}")
    met = not server_errors and lost == 0
    print("all bars met" if met else "a bar was missed")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
