"""Explicit host ports for workspace containers: picked free on the host IP, retried when taken meanwhile.

Docker re-picks ephemeral ports (`HostPort: ""`) each time a container starts, including restarts by
its restart policy or a daemon restart; the edge would keep routing to the old ports until the
reconciler rewrites the routes. Ports fixed at create time survive those restarts.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Collection
from typing import Any

from docker.errors import APIError, NotFound

from agent.docker_ops import MANAGED_LABEL
from agent.errors import AgentError

ATTEMPTS = 3  # creates tried, each on fresh ports, when Docker finds a chosen port taken
_EXTRA_BINDS = 64  # kernel picks skipped at most (ports of stopped containers) before giving up
_CLASH_MARKERS = ("port is already allocated", "address already in use")


def free_ports(host_ip: str, count: int, taken: Collection[int] = ()) -> list[int]:
    """`count` distinct ports the kernel found free on `host_ip` a moment ago, none of them in `taken`."""
    family = socket.AF_INET6 if ":" in host_ip else socket.AF_INET
    ports: list[int] = []
    with contextlib.ExitStack() as stack:
        for _ in range(count + _EXTRA_BINDS):
            # Every socket stays open until the end, so the kernel never hands out the same port twice.
            sock = stack.enter_context(socket.socket(family, socket.SOCK_STREAM))
            sock.bind((host_ip, 0))
            port = sock.getsockname()[1]
            if port not in taken:
                ports.append(port)
                if len(ports) == count:
                    return ports
    raise AgentError(503, f"no free host port on {host_ip}")


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
