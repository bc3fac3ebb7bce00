"""Placement: choose the Docker host for a new workspace."""

from __future__ import annotations

from sqlalchemy import and_, func, or_, select

from app.extensions import db
from app.models import Server, Workspace

MIB = 1024 * 1024
BUSY_PERCENT = 95.0  # a host this busy right now takes no new workspace
# Registered but never polled: its status is still the initial "unknown".
FIRST_POLL_PENDING = and_(Server.status == "unknown", Server.last_polled_at.is_(None))


def pick_server(cpu: float, memory_mb: int) -> Server | None:
    """The least-loaded online server with room for `cpu` cores and `memory_mb` MiB, or None.

    With no online server that fits, a server never polled yet (its first poll pending) is
    tried, so a provision right after the local server is registered is not refused; its task
    waits for the agent like any other.

    Room counts what workspaces already reserve there (their CPU and memory limits) against the
    capacity the agent reported (`cpu_cores` when known, `memory_total`); a host whose live CPU
    or memory use is above 95 % is skipped. "Least loaded" is the highest fraction of reserved
    capacity (after placing this one) or live use, whichever is larger.
    """
    reserved = {
        server_id: (float(cpus or 0), int(memory or 0))
        for server_id, cpus, memory in db.session.execute(
            select(Workspace.server_id, func.sum(Workspace.cpu), func.sum(Workspace.memory_mb))
            .group_by(Workspace.server_id)
        ).all()
    }
    best: tuple[bool, float, str, Server] | None = None
    candidates = select(Server).where(or_(Server.status == "online", FIRST_POLL_PENDING))
    for server in db.session.scalars(candidates):
        used_cpu, used_memory = reserved.get(server.id, (0.0, 0))
        live = max(server.cpu_percent or 0.0, server.memory_percent or 0.0) / 100
        if live * 100 >= BUSY_PERCENT:
            continue
        fractions = [live]
        if server.memory_total:
            capacity_mb = server.memory_total / MIB
            if used_memory + memory_mb > capacity_mb:
                continue
            fractions.append((used_memory + memory_mb) / capacity_mb)
        if server.cpu_cores:
            if used_cpu + cpu > server.cpu_cores:
                continue
            fractions.append((used_cpu + cpu) / server.cpu_cores)
        candidate = (server.status != "online", max(fractions), server.name, server)
        if best is None or candidate[:3] < best[:3]:
            best = candidate
    return best[3] if best else None
