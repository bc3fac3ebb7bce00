"""The container backend over a Slipway agent (one Docker host), through `AgentClient`."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from flask import current_app

from app.agent_client.client import AgentClient, AgentConflict, AgentError, AgentNotFound, AgentUnavailable
from app.backends.base import (
    BackendConflict,
    BackendError,
    BackendNotFound,
    BackendUnavailable,
    ContainerBackend,
    ContainerInfo,
    ContainerSpec,
)
from app.models.server import Server

T = TypeVar("T")
INSTANCE_LABEL = "slipway.app.instance"  # the agent reserves slipway.*, except slipway.app*


@contextmanager
def _mapped_errors() -> Iterator[None]:
    try:
        yield
    except AgentUnavailable as exc:
        raise BackendUnavailable(exc.message) from exc
    except AgentNotFound as exc:
        raise BackendNotFound(exc.message) from exc
    except AgentConflict as exc:
        raise BackendConflict(exc.message) from exc
    except AgentError as exc:
        raise BackendError(exc.message) from exc


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
    """Containers on one server, through its agent's signed HTTP API."""

    def __init__(
        self, server: Server, client: AgentClient | None = None, instance: str | None = None
    ) -> None:
        self.server = server
        self.client = client or AgentClient.for_server(server)
        # Several Slipway installs (or test runs) may share a Docker host: each sees only its own.
        self.instance = instance or current_app.config["INSTANCE_NAME"]

    def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        with _mapped_errors():
            return fn(*args, **kwargs)

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
        return _info(self._call(self.client.create_container, body))

    def start(self, ref: str) -> ContainerInfo:
        """Start the container (see ContainerBackend.start)."""
        return _info(self._call(self.client.start_container, ref))

    def stop(self, ref: str) -> ContainerInfo:
        """Stop the container (see ContainerBackend.stop)."""
        return _info(self._call(self.client.stop_container, ref))

    def remove(self, ref: str, *, remove_workspace: bool = False) -> bool:
        """Delete the container; an agent 404 means it was gone already (returns False)."""
        try:
            self._call(self.client.delete_container, ref, remove_workspace=remove_workspace)
        except BackendNotFound:
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
        items = self._call(self.client.list_containers, {INSTANCE_LABEL: self.instance})
        mine = [item for item in items if (item.get("labels") or {}).get(INSTANCE_LABEL) == self.instance]
        return [_info(item) for item in mine]
