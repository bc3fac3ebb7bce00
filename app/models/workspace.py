"""Workspaces (one container per user, on one server) and used hand-off token ids."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from types import MappingProxyType

from sqlalchemy import Float, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db
from app.models.server import Server
from app.timeutil import utcnow

WORKSPACE_STATUSES = ("provisioning", "running", "stopped", "error", "deleting")
# The workspace apps and the container port each is published from (the gate's port in the image);
# models, routing, tasks and the reconciler all read this one table.
APP_PORTS: Mapping[str, int] = MappingProxyType({"vscode": 8080, "jupyter": 8888})
WORKSPACE_APPS: tuple[str, ...] = tuple(APP_PORTS)
GATE_SECRET_PURPOSE = "workspace.gate_secret"  # noqa: S105 - the encryption purpose, not a secret


class Workspace(db.Model):
    """A user's container: where it runs, what it runs, its limits, published ports and state.

    Both the backend's container id and its (deterministic) name are kept, so a container
    can always be found again, even half-created. `username` is copied from the owner so
    the row (and its routes and audit) outlive the account until the delete task ran.
    """

    __tablename__ = "workspaces"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), unique=True)
    username: Mapped[str] = mapped_column(String(32), unique=True)
    server_id: Mapped[int] = mapped_column(ForeignKey("servers.id"), index=True)
    container_id: Mapped[str | None] = mapped_column(String(80))
    container_name: Mapped[str] = mapped_column(String(80), unique=True)
    image: Mapped[str] = mapped_column(String(255))
    cpu: Mapped[float] = mapped_column(Float)
    memory_mb: Mapped[int]
    # The published host port of each app (None until the container runs); plain integer
    # columns because the routes are rendered from every row on each route change.
    vscode_port: Mapped[int | None]
    jupyter_port: Mapped[int | None]
    # The secret the edge sends with every request and the container's gate checks, encrypted
    # (crypto.encrypt_secret, GATE_SECRET_PURPOSE); new for every container created. None only for
    # containers created before the gate existed.
    gate_secret: Mapped[str | None] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(16), default="provisioning", index=True)
    error: Mapped[str] = mapped_column(String(1000), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    # Idle stop: the end of the last request through the edge (from the connection log), when the
    # idle check first saw it running, when it was stopped for being idle, and the owner's opt-out.
    last_activity_at: Mapped[datetime | None]
    running_since: Mapped[datetime | None]
    idle_stopped_at: Mapped[datetime | None]
    keep_running: Mapped[bool] = mapped_column(default=False)

    server: Mapped[Server] = relationship()

    @property
    def ports(self) -> dict[str, int]:
        """The published host port of each app that has one, e.g. {"vscode": 49153, "jupyter": 49154}."""
        pairs = (("vscode", self.vscode_port), ("jupyter", self.jupyter_port))
        return {app: port for app, port in pairs if port is not None}

    @ports.setter
    def ports(self, ports: Mapping[str, int]) -> None:
        self.vscode_port = ports.get("vscode")
        self.jupyter_port = ports.get("jupyter")

    @property
    def lock_key(self) -> str:
        """The task lock every lifecycle task of this workspace holds (one at a time)."""
        return f"workspace:{self.username}"

    def __repr__(self) -> str:
        return f"<Workspace {self.username} {self.status}>"


class UsedHandoffToken(db.Model):
    """The id of a redeemed hand-off token, kept until the token would have expired anyway."""

    __tablename__ = "used_handoff_tokens"

    jti: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(index=True)
