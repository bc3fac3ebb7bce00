"""Container backends by name; `backend_for(server)` gives the one a server uses."""

from __future__ import annotations

from typing import TYPE_CHECKING

from app.backends.base import ContainerBackend

if TYPE_CHECKING:
    from app.models.server import Server


def _agent() -> type[ContainerBackend]:
    from app.backends.agent import AgentBackend

    return AgentBackend


def _swarm() -> type[ContainerBackend]:
    from app.backends.swarm import SwarmBackend

    return SwarmBackend


BACKENDS = {"agent": _agent, "swarm": _swarm}


def backend_for(server: Server) -> ContainerBackend:
    """The backend instance that runs containers on `server`."""
    return BACKENDS[server.backend or "agent"]()(server)  # type: ignore[call-arg]
