"""Explicit host ports for workspace containers: picked free on the host IP, retried when taken meanwhile.

Docker re-picks ephemeral ports (`HostPort: ""`) each time a container starts, including restarts by
its restart policy or a daemon restart; the edge would keep routing to the old ports until the
reconciler rewrites the routes. Ports fixed at create time survive those restarts.
"""

from __future__ import annotations

import contextlib
import secrets
import socket
from collections.abc import Collection
from pathlib import Path
from typing import Any

from docker.errors import APIError, NotFound

from agent.docker_ops import MANAGED_LABEL
from agent.errors import AgentError

ATTEMPTS = 3  # creates tried, each on fresh ports, when Docker finds a chosen port taken
_EXTRA_TRIES = 256  # random picks skipped at most (taken, or ports of stopped containers) before giving up
FIRST_PORT = 20000
EPHEMERAL_RANGE_FILE = "/proc/sys/net/ipv4/ip_local_port_range"
_CLASH_MARKERS = ("port is already allocated", "address already in use")


def _range_below_ephemeral() -> tuple[int, int]:
    """Ports from FIRST_PORT up to just below the kernel's ephemeral range (net.ipv4.ip_local_port_range).

    Outgoing connections (the agent's own, a database pool's) and Docker's ephemeral ports are
    taken from the ephemeral range; a stopped workspace's port picked there could be held by one
    of them when the workspace starts again. Below it only a listener started on purpose competes.
    """
    try:
        ephemeral_low = int(Path(EPHEMERAL_RANGE_FILE).read_text().split()[0])
    except (OSError, ValueError, IndexError):
        ephemeral_low = 32768
    return FIRST_PORT, max(FIRST_PORT + 1024, ephemeral_low - 1)


def free_ports(host_ip: str, count: int, taken: Collection[int] = ()) -> list[int]:
    """`count` distinct ports free on `host_ip` a moment ago, outside the ephemeral range, none in `taken`."""
    family = socket.AF_INET6 if ":" in host_ip else socket.AF_INET
    low, high = _range_below_ephemeral()
    ports: list[int] = []
    with contextlib.ExitStack() as stack:
        for _ in range(count + _EXTRA_TRIES):
            port = low + secrets.randbelow(high - low + 1)
            if port in taken or port in ports:
                continue
            # Every socket stays open until the end: a port found free is not offered twice.
            sock = stack.enter_context(socket.socket(family, socket.SOCK_STREAM))
            try:
                sock.bind((host_ip, port))
            except OSError:
                continue  # a listener (or a connection) holds it
            ports.append(port)
            if len(ports) == count:
                return ports
    raise AgentError(503, f"no free host port on {host_ip} between {low} and {high}")


def claimed_ports(api: Any) -> set[int]:
    """Host ports of managed containers, stopped ones included (they take the same ports again on start)."""
    claimed: set[int] = set()
    for row in api.containers(all=True, filters={"label": f"{MANAGED_LABEL}=true"}):
        claimed.update(p["PublicPort"] for p in row.get("Ports") or [] if p.get("PublicPort"))
        if row.get("State") == "running":
            continue
        with contextlib.suppress(NotFound):
            bindings = api.inspect_container(row["Id"])["HostConfig"].get("PortBindings") or {}
            claimed.update(int(b["HostPort"]) for binds in bindings.values() for b in binds or []
                           if str(b.get("HostPort") or "").isdigit())
    return claimed


def is_port_clash(exc: APIError) -> bool:
    """True when Docker refused a start because a chosen host port was taken (a race with another process)."""
    explanation = exc.explanation
    if isinstance(explanation, bytes):
        explanation = explanation.decode("utf-8", "replace")
    text = str(explanation or exc).lower()
    return any(marker in text for marker in _CLASH_MARKERS)
