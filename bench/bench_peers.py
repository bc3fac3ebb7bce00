"""Side by side with JupyterHub: the same JupyterLab spawned, opened, loaded and stopped by each, one run.

Slipway (the journey stack of bench_workspaces: real agent, web app with worker threads, edge nginx) and
JupyterHub 6 + DockerSpawner + configurable-http-proxy (bench/peers/, installed into a scratch venv and
npm cache under ~/.cache/slipway-bench) both start slipway/workspace:latest: the peer's image is built FROM it
and only adds the jupyterhub package, so both boot the same JupyterLab (Slipway's container also boots
code-server beside it). Same limits (2 CPUs, 1 GiB), containers published on 127.0.0.1, every request on
loopback. Both run at once; the single spawns alternate between them (load from other processes drifts
and then hits both alike), the other phases run side after side. One clock for both, in this order:
1. spawn → ready: from Slipway's approve+provision call / the hub's POST /users/{name}/server until
   JupyterLab (/lab, 200, "JupyterLab" in the page) answers through the edge / the proxy, polled every
   20 ms; SINGLES spawns after one warm-up, median. Slipway's time until code-server also answers is shown.
2. ten at once: ten spawns queued together (ten provisions / ten concurrent POSTs); wall time until all
   ten JupyterLabs answer (checked one after the other, as bench_workspaces does).
3. proxied requests/s: bench_edge_throughput's wrk settings against /api/status of one running JupyterLab,
   through the edge (owner's cookies, checked in Lua) / through the proxy (the service token, checked by
   the single-user server against the hub, cached).
4. ten stops: the ten stopped together (ten stop tasks / ten concurrent DELETEs); wall time until the
   platform reports all ten stopped.
Ratios are Slipway/peer: below 1 is better for times, above 1 for requests/s. Bars: Slipway at least as
good as the peer on each figure. The load average is printed: other processes' load shifts every figure.
"""

from __future__ import annotations

import http.client
import logging
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import select  # noqa: E402

from app.extensions import db  # noqa: E402
from app.models import Server, Task, User, Workspace  # noqa: E402
from app.services import workspaces as service  # noqa: E402
from bench.bench_edge_throughput import WRK, chp_binary, wrk  # noqa: E402
from bench.bench_workspaces import (  # noqa: E402
    REAL,
    REAL_IMAGE,
    both_apps_answer,
    migrated_sqlite,
    owner_cookie,
    wait_tasks_done,
)
from bench.peers.hub import Hub, build_image, running_hub  # noqa: E402
from tests.builders import make_user  # noqa: E402
from tests.wsstack import Stack, journey_stack, stack_available  # noqa: E402

SINGLES, TEN = 3, 10
STATUS_PATH = "/api/status"
Figures = dict[str, float]


def load() -> str:
    """The 1-minute load average, for printing beside a figure."""
    return f"load {os.getloadavg()[0]:.2f}"


class SlipwaySide:
    """Slipway's journey stack (bench_workspaces): approve+provision, the edge, stop tasks."""

    name = "Slipway"

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        # placement reserves CPU without overcommit; the bench's server row claims enough cores
        db.session.scalar(select(Server)).cpu_cores = 64
        db.session.commit()
        self.admin = make_user("boss", role="admin")
        self.users: list[User] = []
        self.both: list[float] = []

    def spawn(self, n: int) -> float:
        """Approve+provision one user until JupyterLab answers through the edge (code-server noted)."""
        user = make_user(f"real{n}", status="pending")
        cookies = (owner_cookie(self.stack, user), owner_cookie(self.stack, user, "jupyter"))
        t0 = time.perf_counter()
        task = service.provision(user, self.admin, REAL, approve=True)
        try:
            lab = both_apps_answer(self.stack, user.username, *cookies, apps=("jupyter",), timeout=300) - t0
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}; {self.state(task.id, user.username)}") from exc
        self.both.append(both_apps_answer(self.stack, user.username, *cookies, timeout=300) - t0)
        return lab

    def state(self, task_id: int, username: str) -> str:
        """The provision task's and the workspace's state, for an error message."""
        db.session.expire_all()
        task = db.session.get(Task, task_id)
        ws = db.session.scalar(select(Workspace).where(Workspace.username == username))
        return (f"task {task.state}: {task.message!r}; workspace "
                f"{ws.status if ws else 'missing'} {ws.ports if ws else ''} {ws.error if ws else ''}")

    def ten(self) -> float:
        """Ten approvals queued together; wall time until all ten JupyterLabs answer."""
        self.users = [make_user(f"ten{n}", status="pending") for n in range(TEN)]
        cookies = [(owner_cookie(self.stack, u), owner_cookie(self.stack, u, "jupyter")) for u in self.users]
        t0 = time.perf_counter()
        ids = [service.provision(user, self.admin, REAL, approve=True).id for user in self.users]
        wait_tasks_done(300, ids)
        ends = [both_apps_answer(self.stack, u.username, *c, apps=("jupyter",), timeout=300)
                for u, c in zip(self.users, cookies, strict=True)]
        return max(ends) - t0

    def rps(self) -> float:
        """wrk through the edge to one JupyterLab's /api/status, with the owner's cookies."""
        user = self.users[0]
        cookie = owner_cookie(self.stack, user, "jupyter", edge=True)
        return wrk(self.stack.edge_port, f"{user.username}-jupyter.ws.localhost", cookie, path=STATUS_PATH)[0]

    def stops(self) -> float:
        """The ten stopped together; wall time until the ten stop tasks succeeded."""
        names = [u.username for u in self.users]
        running = db.session.scalars(select(Workspace).where(Workspace.username.in_(names))).all()
        t0 = time.perf_counter()
        wait_tasks_done(120, [service.request(ws, "stop", self.admin).id for ws in running])
        return time.perf_counter() - t0


class PeerSide:
    """JupyterHub + DockerSpawner + configurable-http-proxy, driven through the hub's REST API."""

    name = "JupyterHub"

    def __init__(self, hub: Hub, pool: ThreadPoolExecutor) -> None:
        self.hub, self.pool = hub, pool
        self.names = [f"ten{n}" for n in range(TEN)]

    def spawn(self, n: int) -> float:
        """POST the user's server; until JupyterLab answers through the proxy."""
        self.hub.api("POST", f"/users/real{n}")
        t0 = time.perf_counter()
        start_server(self.hub, f"real{n}")
        return lab_answers(self.hub, f"real{n}") - t0

    def ten(self) -> float:
        """Ten POSTs at once; wall time until all ten JupyterLabs answer."""
        for name in self.names:
            self.hub.api("POST", f"/users/{name}")
        t0 = time.perf_counter()
        posts = [self.pool.submit(start_server, self.hub, name) for name in self.names]
        ends = [lab_answers(self.hub, name) for name in self.names]
        for post in posts:
            post.result()
        return max(ends) - t0

    def rps(self) -> float:
        """wrk through the proxy to one JupyterLab's /api/status, with the service token."""
        return wrk(self.hub.proxy_port, "127.0.0.1", path=f"/user/{self.names[0]}{STATUS_PATH}",
                   extra=(f"Authorization: token {self.hub.token}",))[0]

    def stops(self) -> float:
        """Ten DELETEs at once; wall time until the hub reports none of them running."""
        t0 = time.perf_counter()
        deletes = [self.pool.submit(self.hub.api, "DELETE", f"/users/{name}/server", 130)
                   for name in self.names]
        for delete in deletes:
            if delete.result()[0] not in (202, 204):
                raise RuntimeError(f"stop: {delete.result()}")
        return stopped(self.hub, self.names) - t0


def lab_answers(hub: Hub, name: str, timeout: float = 300) -> float:
    """Poll /user/{name}/lab through the proxy until JupyterLab answers; the perf_counter time then."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            status, body = hub.proxied(f"/user/{name}/lab")
            if status == 200 and "JupyterLab" in body:
                return time.perf_counter()
        except (OSError, http.client.HTTPException):
            pass
        time.sleep(0.02)
    raise RuntimeError(f"{name}: JupyterLab did not answer through the proxy within {timeout} s")


def start_server(hub: Hub, name: str) -> None:
    """Ask the hub for the user's default server (201 when it started, 202 while it starts)."""
    status, body = hub.api("POST", f"/users/{name}/server", timeout=130)
    if status not in (201, 202):
        raise RuntimeError(f"spawn {name}: {status} {body}")


def stopped(hub: Hub, names: list[str], timeout: float = 120) -> float:
    """Poll the hub until none of `names` has a server (running or stopping); the perf_counter time."""
    deadline = time.monotonic() + timeout
    pending = list(names)
    while pending and time.monotonic() < deadline:
        pending = [name for name in pending if hub.running(name)]
        if pending:
            time.sleep(0.02)
    if pending:
        raise RuntimeError(f"{len(pending)} servers still running after {timeout} s")
    return time.perf_counter()


def measure(sides: tuple[SlipwaySide, PeerSide]) -> dict[str, Figures]:
    """Spawns alternate between the sides (drifting load hits both alike); then each phase side after side."""
    figures: dict[str, Figures] = {side.name: {} for side in sides}
    spawns: dict[str, list[float]] = {side.name: [] for side in sides}
    for n in range(SINGLES + 1):
        for side in sides:
            spawns[side.name].append(side.spawn(n))
    for side in sides:
        runs = spawns[side.name]
        figures[side.name]["spawn"] = statistics.median(runs[1:])
        print(f"   {side.name} spawn -> JupyterLab: {', '.join(f'{t:.2f}' for t in runs[1:])} s "
              f"(warm-up {runs[0]:.2f}); {load()}")
    figures["Slipway"]["spawn_both"] = statistics.median(sides[0].both[1:])
    for phase, what in (("ten", "ten spawns at once, s"), ("rps", "requests/s"), ("stops", "ten stops, s")):
        for side in sides:
            try:
                figures[side.name][phase] = value = getattr(side, phase)()
                print(f"   {side.name} {what}: {value:.2f}; {load()}")
            except (RuntimeError, subprocess.CalledProcessError) as exc:  # reported, and the bar is missed
                figures[side.name][phase] = math.nan
                print(f"   {side.name} {what}: not measured: {str(exc)[:300]}; {load()}")
    return figures


def main() -> int:
    """Start both sides, measure, print them side by side; 1 when Slipway is behind on a figure."""
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    if not (stack_available() and shutil.which("wrk")):
        print("bench_peers: Docker, nginx and wrk are needed; skipped")
        return 0
    if subprocess.run(["docker", "image", "inspect", REAL_IMAGE], capture_output=True).returncode:
        print(f"bench_peers: {REAL_IMAGE} is not built (make images); skipped")
        return 0
    chp = chp_binary()
    if chp is None:
        print("bench_peers: configurable-http-proxy unavailable (npm); skipped")
        return 0
    print(f"side by side with JupyterHub on {os.cpu_count()} CPUs, {load()} at the start; both sides spawn "
          f"{REAL_IMAGE}'s JupyterLab ({REAL.cpu:g} CPUs, {REAL.memory_mb} MiB)")
    image = build_image()
    with (tempfile.TemporaryDirectory(prefix="slipway-bench-peers-") as tmp,
          journey_stack(migrated_sqlite(Path(tmp)), Path(tmp)) as stack, stack.app.app_context(),
          running_hub(chp, image) as hub, ThreadPoolExecutor(TEN) as pool):
        figures = measure((SlipwaySide(stack), PeerSide(hub, pool)))
    slipway, peer = figures["Slipway"], figures["JupyterHub"]
    rows = [(f"spawn -> JupyterLab answers, median of {SINGLES}", "spawn", "s", "lower"),
            ("ten spawns at once, wall", "ten", "s", "lower"),
            (f"requests/s, {' '.join(WRK)} GET {STATUS_PATH}", "rps", "req/s", "higher"),
            ("ten stops at once, wall", "stops", "s", "lower")]
    print(f"{'':<48} {'Slipway':>10} {'JupyterHub':>11} {'Slipway/JupyterHub':>19}")
    met = True
    for label, key, unit, better in rows:
        ratio = slipway[key] / peer[key]
        met &= ratio <= 1 if better == "lower" else ratio >= 1  # False when a figure is nan
        fmt = "{:>10.0f}" if unit == "req/s" else "{:>9.2f}s"
        print(f"{label:<48} {fmt.format(slipway[key])} {fmt.format(peer[key]):>11} "
              f"{ratio:>10.2f}x ({better} is better)")
    print(f"   Slipway spawn until code-server answers too: median {slipway['spawn_both']:.2f} s; "
          f"{load()} at the end")
    print("   bars: Slipway at least as good as JupyterHub on each figure")
    print("all bars met" if met else "a bar was missed")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
