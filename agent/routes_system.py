"""Liveness and host statistics (cheap enough to poll every few seconds)."""

from __future__ import annotations

import os
import shutil
import threading
import time

from flask import Blueprint, Response, current_app

from agent.docker_ops import DockerHolder, translate
from agent.errors import answer

bp = Blueprint("system", __name__)


class CpuSampler:
    """CPU busy percentage between successive calls, from /proc/stat (the first call: since boot)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last: tuple[int, int] | None = None
        self._last_percent = 0.0
        self._last_at = 0.0

    @staticmethod
    def _read() -> tuple[int, int]:
        with open("/proc/stat", encoding="ascii") as fh:
            fields = [int(x) for x in fh.readline().split()[1:]]
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
        return sum(fields), idle

    def percent(self) -> float:
        """Busy share of all CPUs since the previous sample (reused when polled within 0.5 s)."""
        with self._lock:
            now = time.monotonic()
            if self._last is not None and now - self._last_at < 0.5:
                return self._last_percent
            total, idle = self._read()
            prev_total, prev_idle = self._last or (0, 0)
            d_total, d_idle = total - prev_total, idle - prev_idle
            if d_total > 0:
                self._last_percent = round(100.0 * (d_total - d_idle) / d_total, 1)
            self._last, self._last_at = (total, idle), now
            return self._last_percent


def memory() -> dict:
    """Total, used (total minus available) and percent, from /proc/meminfo."""
    info: dict[str, int] = {}
    with open("/proc/meminfo", encoding="ascii") as fh:
        for line in fh:
            key, _, rest = line.partition(":")
            if key in ("MemTotal", "MemAvailable"):
                info[key] = int(rest.split()[0]) * 1024
    total = info.get("MemTotal", 0)
    used = total - info.get("MemAvailable", 0)
    return {"total": total, "used": used, "percent": round(100.0 * used / total, 1) if total else 0.0}


@bp.get("/health")
def health() -> tuple[Response, int]:
    """Liveness only: no details, no auth."""
    return answer({}, "ok")


@bp.get("/get_system_stats")
def system_stats() -> tuple[Response, int]:
    """CPU, load, memory, workspace-root disk, container and image counts, Docker version."""
    docker: DockerHolder = current_app.extensions["agent_docker"]
    root = current_app.config["WORKDIR_DEPLOY"]
    with translate():
        api = docker.api
        containers = api.containers(all=True, trunc=True)
        images = api.images(quiet=True)
    disk = shutil.disk_usage(root)
    data = {
        "cpu_percent": current_app.extensions["agent_cpu"].percent(),
        "load": [round(x, 2) for x in os.getloadavg()],
        "memory": memory(),
        "disk": {
            "path": str(root),
            "total": disk.total,
            "used": disk.used,
            "percent": round(100.0 * disk.used / disk.total, 1) if disk.total else 0.0,
        },
        "containers": {
            "running": sum(1 for c in containers if c.get("State") == "running"),
            "total": len(containers),
        },
        "images": len(images),
        "docker_version": docker.version or "",
    }
    return answer(data, "ok")
