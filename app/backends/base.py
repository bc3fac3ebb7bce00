"""The container backend contract. Agents over Docker hosts are one implementation today;
Docker Swarm or Kubernetes would be others, behind the same six methods.

Every method is bounded in time and idempotent where stated, so tasks can simply run
again after a crash. Errors are the one hierarchy of `app.agent_client`, raised as they come:
`AgentError` (refused; `str(exc)` is meant for people), `AgentUnavailable` (unreachable or
timed out: nothing is known, retry later), `AgentNotFound` (no managed container has that id
or name; it may never have existed) and `AgentConflict` (e.g. the name is already taken).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field


@dataclass(frozen=True)
class ContainerSpec:
    """What to create: a unique name, the image, limits, the apps' container ports, labels."""

    name: str
    image: str
    cpu: float
    memory_mb: int
    ports: dict[str, int]
    workspace_dir: str
    labels: dict[str, str] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ContainerInfo:
    """A managed container as the backend reports it; `ports` maps app → published host port."""

    id: str
    name: str
    status: str
    ports: dict[str, int]
    labels: dict[str, str] = field(default_factory=dict)
    created: str | None = None
    detail: str = ""  # why it is not running, in words (e.g. "no node has room: ..."), when known

    @property
    def running(self) -> bool:
        """True when the container is running."""
        return self.status == "running"


class ContainerBackend(ABC):
    """One place containers run (a Docker host behind its agent, a cluster, ...)."""

    @abstractmethod
    def create(self, spec: ContainerSpec) -> ContainerInfo:
        """Create and start a container from `spec` and return it with its published ports.

        Raises AgentConflict when a container named `spec.name` exists already (callers
        then look it up with `status(spec.name)`), AgentUnavailable when unreachable.
        """

    @abstractmethod
    def start(self, ref: str) -> ContainerInfo:
        """Start the container `ref` (id or name); starting a running one is a no-op.

        Ports may change across a restart: use the returned ones. Raises AgentNotFound.
        """

    @abstractmethod
    def stop(self, ref: str) -> ContainerInfo:
        """Stop the container `ref`; stopping a stopped one is a no-op. Raises AgentNotFound."""

    @abstractmethod
    def remove(self, ref: str, *, remove_workspace: bool = False) -> bool:
        """Remove the container (and its workspace folder when asked).

        Returns True when it removed something, False when it was already gone: a missing
        container means "done", never an error.
        """

    @abstractmethod
    def status(self, ref: str) -> ContainerInfo | None:
        """The container `ref` (id or name) as it is now, or None when it does not exist."""

    @abstractmethod
    def list_managed(self) -> list[ContainerInfo]:
        """Every container this backend manages for Slipway (running or not)."""
