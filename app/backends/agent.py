"""The container backend over a Slipway agent (one Docker host), through `AgentClient`."""

from __future__ import annotations

from typing import Any

from flask import current_app

from app.agent_client import AgentClient, AgentNotFound
from app.backends.base import ContainerBackend, ContainerInfo, ContainerSpec
from app.models.server import Server

INSTANCE_LABEL = "slipway.app.instance"  # the agent reserves slipway.*, except slipway.app*


def _info(data: dict[str, Any]) -> ContainerInfo:
    ports = {str(k): int(v) for k, v in (data.get("ports") or {}).items() if v}
    return ContainerInfo(
        id=str(data.get("id", "")),
        name=str(data.get("name", "")).lstrip("/"),
        status=str(data.get("status", "unknown")),
        ports=ports,
        labels=dict(data.get("labels") or {}),
        created=data.get("created"),
    )


class AgentBackend(ContainerBackend):
    """Containers on one server, through its agent's signed HTTP API (its errors pass through)."""

    def __init__(
        self, server: Server, client: AgentClient | None = None, instance: str | None = None
    ) -> None:
        self.server = server
        self.client = client or AgentClient.for_server(server)
        # Several Slipway installs (or test runs) may share a Docker host: each sees only its own.
        self.instance = instance or current_app.config["INSTANCE_NAME"]

    def create(self, spec: ContainerSpec) -> ContainerInfo:
        """Create and start the container on the agent (see ContainerBackend.create)."""
        body = {
            "name": spec.name,
            "image": spec.image,
            "cpu": spec.cpu,
            "memory_mb": spec.memory_mb,
            "ports": spec.ports,
            "workspace": spec.workspace_dir,
            "env": spec.env,
            "labels": {**spec.labels, INSTANCE_LABEL: self.instance},
        }
        return _info(self.client.create_container(body))

    def start(self, ref: str) -> ContainerInfo:
        """Start the container (see ContainerBackend.start)."""
        return _info(self.client.start_container(ref))

    def stop(self, ref: str) -> ContainerInfo:
        """Stop the container (see ContainerBackend.stop)."""
        return _info(self.client.stop_container(ref))

    def remove(self, ref: str, *, remove_workspace: bool = False) -> bool:
        """Delete the container; an agent 404 means it was gone already (returns False)."""
        try:
            self.client.delete_container(ref, remove_workspace=remove_workspace)
        except AgentNotFound:
            return False
        return True

    def status(self, ref: str) -> ContainerInfo | None:
        """Find the container by id (or id prefix) or name among the managed ones."""
        for info in self.list_managed():
            if ref in (info.id, info.name) or (len(ref) >= 12 and info.id.startswith(ref)):
                return info
        return None

    def list_managed(self) -> list[ContainerInfo]:
        """Every container the agent manages for this Slipway instance."""
        items = self.client.list_containers({INSTANCE_LABEL: self.instance})
        mine = [item for item in items if (item.get("labels") or {}).get(INSTANCE_LABEL) == self.instance]
        return [_info(item) for item in mine]
