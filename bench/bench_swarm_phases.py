"""Where a Swarm workspace start spends its time, by the network the service joins.

Straight against the local single-node Swarm (no Slipway in the way), ROUNDS times each, alternating:
a service like the backend's (test image, init, caps dropped, 0.1 CPU / 64 MB, ports 8080 and 8888
published in host mode) is created, its task's states are read every 10 ms, and port 8080 is asked
every 5 ms until the workspace gate answers. Medians, in ms from just before the first API call, of:
the network made (`net`), the service made (`svc`), the task first seen `preparing`, `starting`,
`running`, and the gate answering (`gate`). Networks:

- `overlay`: a new overlay network per workspace (what the backend did first);
- `bridge`: the one Swarm-scoped bridge without inter-container traffic (what the backend does now,
  `app/backends/swarm_network.py`);
- `none`: no network (the default bridge, where containers reach each other: the floor, not an option).
"""

from __future__ import annotations

import http.client
import os
import secrets
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import docker.types as dt  # noqa: E402

import docker  # noqa: E402
from app.backends.swarm_client import SwarmConnection  # noqa: E402
from app.backends.swarm_network import workspace_network  # noqa: E402
from tests.agent.helpers import TEST_IMAGE  # noqa: E402
from tests.swarmkit import SOCKET_URL, remove_instance, swarm_available  # noqa: E402

ROUNDS = 5
MODES = ("overlay", "bridge", "none")
PHASES = ("net", "svc", "preparing", "starting", "running", "gate")


def gate_answers(port: int, deadline: float) -> bool:
    """True once the port answers any HTTP status (the gate's 403)."""
    while time.monotonic() < deadline:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
        try:
            conn.request("GET", "/")
            conn.getresponse().read()
            return True
        except (OSError, http.client.HTTPException):
            time.sleep(0.005)
        finally:
            conn.close()
    return False


def one_start(api: docker.APIClient, conn: SwarmConnection, instance: str, mode: str) -> dict[str, float]:
    """Create one service on the network `mode`, time its phases, remove it (and its overlay)."""
    labels = {"slipway.managed": "true", "slipway.app.instance": instance}
    name = f"bench-phase-{secrets.token_hex(3)}"
    marks: dict[str, float] = {}
    t0 = time.perf_counter()
    networks = []
    if mode == "overlay":
        networks = [api.create_network(name + "-net", driver="overlay", labels=labels)["Id"]]
    elif mode == "bridge":
        networks = [workspace_network(conn, instance, labels)]
    marks["net"] = time.perf_counter() - t0
    container = dt.ContainerSpec(TEST_IMAGE, env={"SLIPWAY_GATE_SECRET": secrets.token_urlsafe(32)},
                                 init=True, cap_drop=["ALL"])
    template = dt.TaskTemplate(container, resources=dt.Resources(
        cpu_limit=10**8, mem_limit=64 * 2**20, cpu_reservation=10**8, mem_reservation=64 * 2**20))
    ports = [{"Protocol": "tcp", "TargetPort": port, "PublishMode": "host"} for port in (8080, 8888)]
    service = api.create_service(template, name=name, labels=labels, networks=networks,
                                 endpoint_spec=dt.EndpointSpec(mode="vip", ports=ports))
    marks["svc"] = time.perf_counter() - t0
    port, deadline = None, time.monotonic() + 120
    while port is None and time.monotonic() < deadline:
        for task in api.tasks(filters={"service": service["ID"]}):
            status = task["Status"]
            marks.setdefault(status["State"], time.perf_counter() - t0)
            if status["State"] == "running":
                published = (status.get("PortStatus") or {}).get("Ports") or []
                port = next((p["PublishedPort"] for p in published if p["TargetPort"] == 8080), None)
        time.sleep(0.01)
    if port is None or not gate_answers(port, deadline):
        raise RuntimeError(f"{mode}: the task did not serve within 120 s ({marks})")
    marks["gate"] = time.perf_counter() - t0
    api.remove_service(service["ID"])
    return marks


def main() -> int:
    """ROUNDS starts per network, alternating; medians per phase."""
    if not swarm_available():
        print("needs an active single-node Swarm (scripts/services.sh test)")
        return 1
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    instance = f"bench-{secrets.token_hex(4)}"
    api = docker.APIClient(base_url=SOCKET_URL, version="1.41", timeout=60)
    conn = SwarmConnection(SOCKET_URL, None, timeout=60)
    found: dict[str, list[dict[str, float]]] = {mode: [] for mode in MODES}
    try:
        for _ in range(ROUNDS):
            for mode in MODES:
                found[mode].append(one_start(api, conn, instance, mode))
                time.sleep(1)  # let the removed task's container go before the next start
    finally:
        conn.close()
        remove_instance(instance, timeout=120)
    print(f"median ms over {ROUNDS} starts each, from the first API call:")
    print(f"  {'network':<8}" + "".join(f"{p:>10}" for p in PHASES))
    for mode, runs in found.items():
        cells = [statistics.median(r[p] for r in runs if p in r) * 1000 if any(p in r for r in runs) else None
                 for p in PHASES]
        print(f"  {mode:<8}" + "".join(f"{c:10.0f}" if c is not None else f"{'-':>10}" for c in cells))
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
