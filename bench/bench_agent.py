"""Agent overhead over the Docker SDK, and the cost of `get_system_stats`.

How it is measured (one run, same machine, same daemon, the busybox test image):
1. Create-and-start, one at a time: ROUNDS rounds; in each, one container through the agent
   (`POST /api/containers`, signed, over loopback HTTP: validation, workspace folder, create,
   start, inspect) and one directly with the docker SDK (`containers.run(detach=True)` with the
   same limits, hardening, network, bind and 127.0.0.1 port publishing: create, inspect, start),
   the order alternating per round. Wall time per call with `time.perf_counter`; medians compared.
   Containers are removed between rounds (not timed).
2. Ten at once: BATCHES batches of ten concurrent create-and-starts each way (a thread pool of ten
   callers), wall time of the whole batch; medians compared.
3. `get_system_stats` with 50 test containers running: STATS_CALLS signed calls after 3 warm-ups;
   median and p90 latency as the caller sees it.
Bars: agent/SDK <= 1.3 (serial) and <= 1.5 (ten at once); stats median < 50 ms.
Everything is labelled `slipway.test=bench-<run id>` and removed at the end.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import requests

import docker

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agent.signing import signed_headers  # noqa: E402

IMAGE = "slipway/test-workspace:latest"
RUN_ID = secrets.token_hex(4)
LABELS = {"slipway.test": f"bench-{RUN_ID}"}
ROUNDS, BATCHES, BATCH, STATS_CONTAINERS, STATS_CALLS = 9, 3, 10, 50, 60
TOKEN = secrets.token_urlsafe(36)
NETWORK = f"slipway-bench-{RUN_ID}"


def free_port() -> int:
    """A free loopback port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def agent_process(workdir: Path) -> Iterator[str]:
    """Run `python -m agent` on a free port; yield its base URL."""
    port = free_port()
    env = {**os.environ, "AGENT_TOKEN": TOKEN, "AGENT_PORT": str(port), "WORKDIR_DEPLOY": str(workdir),
           "AGENT_NETWORK": NETWORK, "AGENT_STOP_TIMEOUT": "2"}
    proc = subprocess.Popen([sys.executable, "-m", "agent"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            with contextlib.suppress(requests.ConnectionError):
                if requests.get(url + "/health", timeout=1).ok:
                    break
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=15)


class Caller:
    """Signed requests to the agent over one pooled session per thread."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.session = requests.Session()
        adapter = requests.adapters.HTTPAdapter(pool_connections=BATCH, pool_maxsize=BATCH)
        self.session.mount("http://", adapter)

    def call(self, method: str, path: str, body: object = None) -> dict:
        """One signed call; raises on a non-2xx answer."""
        data = json.dumps(body).encode() if body is not None else b""
        headers = signed_headers(TOKEN, method, path, data)
        if body is not None:
            headers["Content-Type"] = "application/json"
        response = self.session.request(method, self.url + path, data=data, headers=headers, timeout=120)
        if not response.ok:
            raise RuntimeError(f"{method} {path}: {response.status_code} {response.text[:300]}")
        return response.json()["data"]


GATE_ENV = {"SLIPWAY_GATE_SECRET": secrets.token_urlsafe(32)}  # the image's gate will not start without one


def spec(name: str) -> dict:
    """A create body for the agent."""
    return {"name": name, "image": IMAGE, "cpu": 0.5, "memory_mb": 64,
            "ports": {"vscode": 8080, "jupyter": 8888},
            "workspace": f"bench/{name}", "env": dict(GATE_ENV), "labels": dict(LABELS)}


def direct_run(client: docker.DockerClient, workdir: Path, name: str) -> None:
    """The same create-and-start straight through the SDK."""
    folder = workdir / "direct" / name
    folder.mkdir(parents=True, exist_ok=True)
    client.containers.run(
        IMAGE, name=name, detach=True, labels={**LABELS, "slipway.managed": "true"},
        environment=dict(GATE_ENV),
        ports={"8080/tcp": ("127.0.0.1", None), "8888/tcp": ("127.0.0.1", None)},
        nano_cpus=500_000_000, mem_limit=64 * 1024 * 1024, memswap_limit=64 * 1024 * 1024, pids_limit=512,
        cap_drop=["ALL"], security_opt=["no-new-privileges:true"], network=NETWORK,
        volumes={str(folder): {"bind": "/workspace", "mode": "rw"}}, init=True,
        restart_policy={"Name": "unless-stopped"},
    )


def timed(fn: Callable[[], object]) -> float:
    """Seconds one call takes."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def remove_all(client: docker.DockerClient) -> None:
    """Remove every container this run made (parallel, not timed)."""
    containers = client.containers.list(all=True, filters={"label": f"slipway.test=bench-{RUN_ID}"})
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda c: c.remove(force=True), containers))


def main() -> int:
    """Run the three measurements and print them."""
    build = ROOT / "docker/images/build-test-image.sh"
    subprocess.run(["bash", str(build)], check=True, stdout=subprocess.DEVNULL)
    client = docker.from_env(timeout=120, max_pool_size=BATCH + 2)
    with tempfile.TemporaryDirectory() as tmp, agent_process(Path(tmp) / "ws") as url:
        workdir = Path(tmp) / "ws"
        caller = Caller(url)
        try:
            caller.call("POST", "/api/containers", spec(f"bench-{RUN_ID}-warm"))  # creates the network
            direct_run(client, workdir, f"bench-{RUN_ID}-warmd")
            remove_all(client)
            agent_times, direct_times = [], []
            for i in range(ROUNDS):
                name = f"bench-{RUN_ID}-{i}"
                steps = [
                    (agent_times, lambda n=name: caller.call("POST", "/api/containers", spec(f"{n}a"))),
                    (direct_times, lambda n=name: direct_run(client, workdir, f"{n}d")),
                ]
                for bucket, fn in steps if i % 2 == 0 else reversed(steps):
                    bucket.append(timed(fn))
                remove_all(client)
            agent_batches, direct_batches = [], []
            for b in range(BATCHES):
                with concurrent.futures.ThreadPoolExecutor(BATCH) as pool:
                    names = [f"bench-{RUN_ID}-pa{b}-{k}" for k in range(BATCH)]
                    agent_batches.append(timed(lambda n=names: list(pool.map(
                        lambda x: caller.call("POST", "/api/containers", spec(x)), n))))
                remove_all(client)
                with concurrent.futures.ThreadPoolExecutor(BATCH) as pool:
                    names = [f"bench-{RUN_ID}-pd{b}-{k}" for k in range(BATCH)]
                    direct_batches.append(timed(lambda n=names: list(pool.map(
                        lambda x: direct_run(client, workdir, x), n))))
                remove_all(client)
            with concurrent.futures.ThreadPoolExecutor(BATCH) as pool:
                names = [f"bench-{RUN_ID}-s{k}" for k in range(STATS_CONTAINERS)]
                list(pool.map(lambda x: direct_run(client, workdir, x), names))
            for _ in range(3):
                caller.call("GET", "/get_system_stats")
            stats_times = sorted(
                timed(lambda: caller.call("GET", "/get_system_stats")) for _ in range(STATS_CALLS)
            )
            running = caller.call("GET", "/get_system_stats")["containers"]["running"]
        finally:
            remove_all(client)
            for net in client.networks.list(names=[NETWORK]):
                net.remove()
    serial_a, serial_d = statistics.median(agent_times), statistics.median(direct_times)
    batch_a, batch_d = statistics.median(agent_batches), statistics.median(direct_batches)
    stats_ms = statistics.median(stats_times) * 1000
    print(__doc__.split("\n\n", 1)[1].strip())
    print()
    print(f"create-and-start, one at a time ({ROUNDS} each): agent median {serial_a * 1000:.0f} ms, "
          f"SDK median {serial_d * 1000:.0f} ms, ratio {serial_a / serial_d:.2f} (bar <= 1.30)")
    print(f"ten at once ({BATCHES} batches each): agent median {batch_a:.2f} s, SDK median {batch_d:.2f} s, "
          f"ratio {batch_a / batch_d:.2f} (bar <= 1.50)")
    print(f"get_system_stats with {running} containers running ({STATS_CALLS} calls): "
          f"median {stats_ms:.1f} ms, "
          f"p90 {stats_times[int(STATS_CALLS * 0.9)] * 1000:.1f} ms (bar < 50 ms)")
    ok = serial_a / serial_d <= 1.3 and batch_a / batch_d <= 1.5 and stats_ms < 50
    print("all bars met" if ok else "SOME BAR MISSED")
    return 0


if __name__ == "__main__":
    sys.exit(main())
