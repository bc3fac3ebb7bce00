"""A workspace service's state in words, from its spec and its tasks (no Engine calls here)."""

from __future__ import annotations

import re
from typing import Any

MIB = 1024 * 1024
DRIVER_LABEL = "slipway.volume_driver"
NODE_LABEL = "slipway.volume_node"  # where a local volume lives, once known (several nodes only)
CONFIG_MISSING_RE = re.compile(r'configuration network "([^"]{1,200})" does not exist')
WAITING = frozenset({"new", "allocated", "pending", "assigned", "accepted", "preparing", "ready", "starting"})


def _version(item: dict[str, Any]) -> int:
    return int(((item.get("Version") or item.get("Meta", {}).get("Version") or {}).get("Index")) or 0)


def amount(memory_bytes: int) -> str:
    """Memory for people: "4 GB", "512 MB"."""
    mb = memory_bytes / MIB
    return f"{mb / 1024:g} GB" if mb >= 1024 else f"{mb:g} MB"


def no_room_message(service: dict[str, Any], scheduler_says: str) -> str:
    """"no node has room": what the service reserves, and the scheduler's own words."""
    template = service["Spec"].get("TaskTemplate") or {}
    reservations = (template.get("Resources") or {}).get("Reservations") or {}
    wants = []
    if reservations.get("MemoryBytes"):
        wants.append(f"{amount(int(reservations['MemoryBytes']))} of memory")
    if reservations.get("NanoCPUs"):
        wants.append(f"{int(reservations['NanoCPUs']) / 1e9:g} CPU")
    free = " and ".join(wants) or "the resources asked for"
    return f"no node has room: no node has {free} free ({scheduler_says})"


def unplaceable_message(service: dict[str, Any], scheduler_says: str) -> str:
    """A task no node takes (drained, down, constraints): why, and what that means for the files."""
    labels = service["Spec"].get("Labels") or {}
    text = f"no node can run it now ({scheduler_says})"
    if labels.get(DRIVER_LABEL) == "local":
        node = labels.get(NODE_LABEL)
        where = f"node {node}" if node else "the node that first ran it"
        text += (f"; its files are in a local volume on {where}, and the local driver cannot follow a "
                 "workspace to another node: it waits for that node to be active again (or use a "
                 "shared volume driver, see docs/swarm.md)")
    return text


def missing_network_message(task: dict[str, Any], config: str) -> str:
    """A node that lacks the workspace network's config-only network: which, and the fix."""
    node = (task.get("NodeID") or "?")[:12]
    return (f"node {node} is not prepared for Slipway's workspaces: it has no network {config}; run "
            f"`docker network create --config-only -o com.docker.network.bridge.enable_icc=false {config}` "
            "on it (see docs/swarm.md)")


def service_state(service: dict[str, Any], tasks: list[dict[str, Any]]) -> tuple[str, str]:
    """(status, detail): running | starting | no_room | failed | stopping | exited, and why."""
    replicas = ((service["Spec"].get("Mode") or {}).get("Replicated") or {}).get("Replicas", 0)
    ordered = sorted(tasks, key=_version, reverse=True)
    running = [t for t in ordered if (t.get("Status") or {}).get("State") == "running"]
    if not replicas:
        return ("stopping", "") if running else ("exited", "")
    if any(t.get("DesiredState") == "running" for t in running):
        return "running", ""
    since = _version(service)
    for task in ordered:
        status = task.get("Status") or {}
        state, err = status.get("State", ""), status.get("Err") or status.get("Message") or ""
        if state == "pending" and "insufficient resources" in err:
            return "no_room", no_room_message(service, err)
        if state == "pending" and "no suitable node" in err:
            return "pending", unplaceable_message(service, err)
        if state == "rejected" and _version(task) > since and CONFIG_MISSING_RE.search(err):
            return "failed", missing_network_message(task, CONFIG_MISSING_RE.search(err).group(1))
        if state in ("failed", "rejected") and _version(task) > since:
            return "failed", f"the task was {state}: {err}" if err else f"the task was {state}"
    if ordered and (ordered[0].get("Status") or {}).get("State") in WAITING:
        return "starting", (ordered[0].get("Status") or {}).get("Message", "")
    return "starting", "no task yet"


PLACEMENT_RE = re.compile(r"(node|engine)\.[A-Za-z0-9._-]{1,100}\s*(==|!=)\s*[A-Za-z0-9._:/-]{1,100}")
SPREAD_RE = re.compile(r"spread=node\.labels\.[A-Za-z0-9._-]{1,100}")


def placement_problem(text: str) -> str | None:
    """Why the placement rules (one a line) are not usable, or None."""
    for line in (text or "").splitlines():
        line = line.strip()
        if line and not (PLACEMENT_RE.fullmatch(line) or SPREAD_RE.fullmatch(line)):
            return (f"{line!r} is neither a constraint (node.labels.name==value, node.role==worker, ...) "
                    "nor spread=node.labels.name.")
    return None
