"""Placement: choose the Docker host for a new workspace."""

from __future__ import annotations

from sqlalchemy import func, select

from app.extensions import db
from app.models import Server, Workspace

MIB = 1024 * 1024
BUSY_PERCENT = 95.0  # a host this busy right now takes no new workspace


def pick_server(cpu: float, memory_mb: int) -> Server | None:
    """The least-loaded online server with room for `cpu` cores and `memory_mb` MiB, or None.

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
    best: tuple[float, str, Server] | None = None
    for server in db.session.scalars(select(Server).where(Server.status == "online")):
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
        candidate = (max(fractions), server.name, server)
        if best is None or candidate[:2] < best[:2]:
            best = candidate
    return best[2] if best else None
