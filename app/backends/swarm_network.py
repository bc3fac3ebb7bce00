"""The one network every workspace service of an instance joins: a Swarm-scoped bridge without ICC.

A bridge network with `enable_icc=false` drops traffic between its containers (the agent hosts'
model), so one workspace cannot reach another's ports, while a task joins it as fast as a plain
container joins a bridge. A per-workspace overlay network gave the same isolation but made every
start build the overlay's sandbox on the node (about 1-2 s here; see docs/swarm.md).

Swarm takes a bridge's options from a *config-only* network of the same name on each node
(`--config-from`); the manager's engine gets it here, other nodes need it made once by hand
(docs/swarm.md). A node without it rejects the task; `swarm_status` says so, with the command.
"""

from __future__ import annotations

import contextlib
from typing import Any

from docker.errors import APIError

from app.agent_client import AgentConflict, AgentError, AgentUnavailable
from app.backends.swarm_client import SwarmConnection, translated

ICC_OPTION = "com.docker.network.bridge.enable_icc"


def network_names(instance: str) -> tuple[str, str]:
    """(config-only network on each node, Swarm-scoped bridge network) of an instance."""
    return f"{instance}-swarm-ws-config", f"{instance}-swarm-ws"


def _named(conn: SwarmConnection, name: str) -> list[dict[str, Any]]:
    """Networks of exactly that name (the engine's filter matches parts of names), oldest first."""
    with translated():
        found = [n for n in conn.api.networks(names=[name]) if n.get("Name") == name]
    return sorted(found, key=lambda n: (n.get("Created", ""), n.get("Id", "")))


def _create(conn: SwarmConnection, body: dict[str, Any]) -> None:
    """POST /networks/create; the SDK's create_network has no ConfigOnly / ConfigFrom."""
    api = conn.api
    try:
        with translated():
            api._result(api._post_json(api._url("/networks/create"), data=body), json=True)
    except AgentConflict:
        pass  # another worker made it a moment ago (CheckDuplicate): use that one
    except AgentUnavailable as exc:
        if "name conflicts with an existing object" not in exc.message:  # the manager's own words
            raise


def workspace_network(conn: SwarmConnection, instance: str, labels: dict[str, str]) -> str:
    """The instance's isolated workspace network, made on first use; its name."""
    config, name = network_names(instance)
    found = _named(conn, config)
    if not found:
        _create(conn, {"Name": config, "Driver": "bridge", "ConfigOnly": True, "CheckDuplicate": True,
                       "Options": {ICC_OPTION: "false"}, "Labels": labels})
        found = _named(conn, config)
        # Two workers at once can both make a local network of that name: keep the oldest.
        for extra in found[1:]:
            with contextlib.suppress(APIError):
                conn.api.remove_network(extra["Id"])
        found = _named(conn, config)
    if not found or any((n.get("Options") or {}).get(ICC_OPTION) != "false" for n in found):
        raise AgentError(f"the network {config} on the manager must be config-only with {ICC_OPTION}=false "
                         f"(remove it; Slipway makes it again)", 409)
    swarm = _named(conn, name)
    if not swarm:
        # Labels are refused on a network made from a config network, so it is known by its name.
        _create(conn, {"Name": name, "Driver": "bridge", "Scope": "swarm", "CheckDuplicate": True,
                       "ConfigFrom": {"Network": config}})
        swarm = _named(conn, name)
    if len(swarm) != 1 or (swarm[0].get("ConfigFrom") or {}).get("Network") != config:
        raise AgentError(f"the network {name} must be the one Swarm-scoped bridge made from {config} "
                         "(remove it; Slipway makes it again)", 409)
    return name

