"""Container backends by name; `backend_for(server)` gives the one a server uses."""

from __future__ import annotations

from typing import TYPE_CHECKING

from app.backends.base import ContainerBackend

if TYPE_CHECKING:
    from app.models.server import Server


def _agent() -> type[ContainerBackend]:
    from app.backends.agent import AgentBackend

    return AgentBackend


BACKENDS = {"agent": _agent}


def backend_for(server: Server) -> ContainerBackend:
    """The backend instance that runs containers on `server`."""
    return BACKENDS["agent"]()(server)  # type: ignore[call-arg]
