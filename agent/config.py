"""Agent settings, parsed from the environment with their types; `problems()` lists every error at once."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

MIN_TOKEN_LENGTH = 32


def _bool(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


@dataclass
class AgentConfig:
    """Everything the agent reads from its environment."""

    token: str = ""
    dev: bool = False
    bind: str = "127.0.0.1"
    port: int = 9100
    workdir_deploy: Path = Path("/srv/slipway/workspaces")
    host_ip: str = "127.0.0.1"
    network: str = "slipway-workspaces"
    allowed_ips: list[str] = field(default_factory=list)
    edge_ips: list[str] = field(default_factory=list)
    threads: int = 16
    pids_limit: int = 512
    workspace_mount: str = "/workspace"
    workspace_uid: int = 1000
    stop_timeout: int = 10
    max_body_mb: int = 256
    max_import_mb: int = 8192
    docker_timeout: int = 120
    events_max: int = 10_000
    host_check_seconds: int = 60
    disk_warn_percent: int = 90
    memory_warn_percent: int = 90
    parse_errors: list[str] = field(default_factory=list)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> AgentConfig:
        """Read AGENT_* and WORKDIR_DEPLOY; unparsable values are kept as problems."""
        env = os.environ if env is None else env
        cfg = cls()
        cfg.token = env.get("AGENT_TOKEN", "")
        cfg.dev = _bool(env.get("AGENT_DEV"))
        cfg.bind = env.get("AGENT_BIND", cfg.bind)
        cfg.host_ip = env.get("AGENT_HOST_IP", cfg.host_ip)
        cfg.network = env.get("AGENT_NETWORK", cfg.network)
        cfg.workspace_mount = env.get("AGENT_WORKSPACE_MOUNT", cfg.workspace_mount)
        cfg.workdir_deploy = Path(env.get("WORKDIR_DEPLOY", str(cfg.workdir_deploy)))
        cfg.allowed_ips = [ip.strip() for ip in env.get("AGENT_ALLOWED_IPS", "").split(",") if ip.strip()]
        cfg.edge_ips = [ip.strip() for ip in env.get("AGENT_EDGE_IPS", "").split(",") if ip.strip()]
        ints = {
            "AGENT_PORT": "port", "AGENT_THREADS": "threads", "AGENT_PIDS_LIMIT": "pids_limit",
            "AGENT_WORKSPACE_UID": "workspace_uid", "AGENT_STOP_TIMEOUT": "stop_timeout",
            "AGENT_MAX_BODY_MB": "max_body_mb", "AGENT_MAX_IMPORT_MB": "max_import_mb",
            "AGENT_DOCKER_TIMEOUT": "docker_timeout",
            "AGENT_EVENTS_MAX": "events_max", "AGENT_HOST_CHECK_SECONDS": "host_check_seconds",
            "AGENT_DISK_WARN_PERCENT": "disk_warn_percent",
            "AGENT_MEMORY_WARN_PERCENT": "memory_warn_percent",
        }
        for name, attr in ints.items():
            raw = env.get(name)
            if raw is None or raw == "":
                continue
            try:
                setattr(cfg, attr, int(raw))
            except ValueError:
                cfg.parse_errors.append(f"{name} must be an integer, got {raw!r}")
        return cfg

    def problems(self) -> list[str]:
        """Every configuration problem (empty when the agent may start)."""
        found = list(self.parse_errors)
        if not self.token:
            found.append("AGENT_TOKEN is not set")
        elif len(self.token) < MIN_TOKEN_LENGTH and not self.dev:
            found.append(
                f"AGENT_TOKEN must be at least {MIN_TOKEN_LENGTH} characters (or set AGENT_DEV=true)"
            )
        if not 1 <= self.port <= 65535:
            found.append("AGENT_PORT must be between 1 and 65535")
        for name, value in (("AGENT_BIND", self.bind), ("AGENT_HOST_IP", self.host_ip)):
            try:
                ipaddress.ip_address(value)
            except ValueError:
                found.append(f"{name} must be an IP address, got {value!r}")
        if self.host_ip in ("0.0.0.0", "::"):
            found.append("AGENT_HOST_IP must be one address (every interface would bypass firewalls)")
        for ip in self.allowed_ips:
            try:
                ipaddress.ip_network(ip, strict=False)
            except ValueError:
                found.append(f"AGENT_ALLOWED_IPS has an invalid address {ip!r}")
        found.extend(self._edge_problems())
        if not self.workdir_deploy.is_absolute():
            found.append("WORKDIR_DEPLOY must be an absolute path")
        if not self.workspace_mount.startswith("/"):
            found.append("AGENT_WORKSPACE_MOUNT must be an absolute path")
        if self.threads < 1 or self.pids_limit < 16 or self.stop_timeout < 0:
            found.append("AGENT_THREADS must be >= 1, AGENT_PIDS_LIMIT >= 16, AGENT_STOP_TIMEOUT >= 0")
        if not 1 <= self.events_max <= 1_000_000:
            found.append("AGENT_EVENTS_MAX must be between 1 and 1000000")
        if self.host_check_seconds < 1:
            found.append("AGENT_HOST_CHECK_SECONDS must be >= 1")
        for name, value in (("AGENT_DISK_WARN_PERCENT", self.disk_warn_percent),
                            ("AGENT_MEMORY_WARN_PERCENT", self.memory_warn_percent)):
            if not 1 <= value <= 100:
                found.append(f"{name} must be between 1 and 100")
        return found

    def _edge_problems(self) -> list[str]:
        """AGENT_EDGE_IPS must name the edge when workspaces publish on a routable address."""
        found = []
        networks = []
        for ip in self.edge_ips:
            try:
                networks.append(ipaddress.ip_network(ip, strict=False))
            except ValueError:
                found.append(f"AGENT_EDGE_IPS has an invalid address {ip!r}")
        try:
            host = ipaddress.ip_address(self.host_ip)
        except ValueError:
            return found
        if not host.is_loopback and not any(n.version == host.version for n in networks) and not found:
            found.append(
                f"AGENT_EDGE_IPS must list the edge's address when AGENT_HOST_IP ({self.host_ip}) is not "
                "loopback: published ports bypass host firewalls, so only the edge may be admitted"
            )
        return found
