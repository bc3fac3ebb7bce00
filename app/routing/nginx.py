"""Workspace hosts and route values for the edge, whitelisted; the edge nginx's own files.

The database is the truth and the edge's in-memory table a projection of it: one line per
workspace (`put user address vscode_port jupyter_port gate_secret` or `stop user`). Every
value is whitelisted here before it is sent, and again by the edge before it is stored.
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from app.models.workspace import WORKSPACE_APPS
from app.validators import is_dns_name, is_plain_ip, is_port, is_username_shape
from config import BASE_DIR

TEMPLATES = BASE_DIR / "docker" / "nginx"
GATE_SECRET_RE = re.compile(r"[A-Za-z0-9_-]{16,128}")  # what secrets.token_urlsafe makes
GATE_HEADER = "X-Slipway-Gate"  # the header the workspace's gate checks
AUTH_CACHE_SECONDS = 5
# The owner check must answer fast or fail closed: a frozen web app must not hold requests ~60 s.
AUTH_CONNECT_TIMEOUT_SECONDS = 2
AUTH_READ_TIMEOUT_SECONDS = 5
# The hand-off and the other /_slipway/ pages are page navigations, not a check on every request:
# they wait longer for a busy web app (a burst of logins) before the edge's own 503 page.
HANDOFF_READ_TIMEOUT_SECONDS = 15
PRIVATE_MODE = 0o600  # key files and anything carrying gate secrets

TEMPLATE_ENV = Environment(
    loader=FileSystemLoader(str(TEMPLATES)),
    undefined=StrictUndefined,
    autoescape=False,  # noqa: S701 - nginx config, every value whitelisted first
    keep_trailing_newline=True,
)


class RouteError(ValueError):
    """A value refused by the whitelist; it never reaches the nginx file."""


class NginxError(RuntimeError):
    """nginx refused its configuration, or an edge refused a push; the message says why."""


class WorkspaceRoutes(NamedTuple):
    """One workspace on the edge: its owner and, while it runs, where its two apps listen.

    `upstream_host` None means it is not running: both its hosts answer the stopped page.
    `gate_secret` (plain text) is sent to the workspace with every request; None only for a
    container made before the gate existed. One record per workspace, not per app.
    """

    username: str
    upstream_host: str | None = None
    vscode_port: int | None = None
    jupyter_port: int | None = None
    gate_secret: str | None = None


@dataclass(frozen=True)
class EdgePaths:
    """Where the edge nginx keeps its files (all under one run folder)."""

    run_dir: Path

    @property
    def main_conf(self) -> Path:
        """The main configuration nginx runs with."""
        return self.run_dir / "nginx.conf"

    @property
    def pid_file(self) -> Path:
        """The master's pid file."""
        return self.run_dir / "nginx.pid"


def domain_host(workspace_domain: str) -> str:
    """The host part of WORKSPACE_DOMAIN (`ws.localhost:8080` → `ws.localhost`), whitelisted."""
    host = workspace_domain.rsplit(":", 1)[0] if ":" in workspace_domain else workspace_domain
    if not is_dns_name(host):
        raise RouteError(f"WORKSPACE_DOMAIN {workspace_domain!r} is not a DNS name")
    return host


def workspace_host(username: str, app: str, workspace_domain: str) -> str:
    """The host serving `app` of `username`'s workspace: `{user}-{app}.{domain}` (no port)."""
    if not is_username_shape(username):
        raise RouteError(f"username {username!r} is not a DNS label")
    if app not in WORKSPACE_APPS:
        raise RouteError(f"app {app!r} is not one of {', '.join(WORKSPACE_APPS)}")
    return f"{username}-{app}.{domain_host(workspace_domain)}"


def parse_workspace_host(host: str, workspace_domain: str) -> tuple[str, str] | None:
    """(username, app) for a workspace host (port ignored), or None when it is not one."""
    host = host.lower().rsplit(":", 1)[0] if host.count(":") == 1 else host.lower()
    suffix = "." + domain_host(workspace_domain)
    if not host.endswith(suffix):
        return None
    name, _, app = host[: -len(suffix)].rpartition("-")
    if app not in WORKSPACE_APPS or not is_username_shape(name):
        return None
    return name, app


def _upstream_address(host: object) -> str:
    """The upstream as the edge's balancer wants it: an IP (IPv6 in brackets); a DNS name is resolved."""
    if is_plain_ip(host):
        address = ipaddress.ip_address(str(host))
        return f"[{address.compressed}]" if address.version == 6 else address.compressed
    if not is_dns_name(host):
        raise RouteError(f"upstream host {host!r} is neither an IP address nor a DNS name")
    # The balancer connects to addresses only: a server published by name is resolved at push time.
    try:
        found = socket.getaddrinfo(str(host), None, type=socket.SOCK_STREAM)[0][4][0]
    except (OSError, IndexError) as exc:
        raise RouteError(f"upstream host {host!r} does not resolve") from exc
    return _upstream_address(found)


def route_lines(workspaces: Iterable[WorkspaceRoutes]) -> list[str]:
    """The edge's table lines for `workspaces` (`put user address vscode jupyter gate` or `stop user`).

    RouteError before anything is sent: every value is whitelisted here and again by the edge.
    """
    addresses: dict[object, str] = {}  # few distinct upstream hosts: validate (and resolve) each once
    names: set[object] = set()
    lines: list[str] = []
    add = lines.append  # 100,000 lines for a full table: the loop is kept lean on purpose
    for username, upstream_host, vscode_port, jupyter_port, gate_secret in workspaces:
        if username in names:
            raise RouteError(f"duplicate routes for {username!r}")
        if not is_username_shape(username):
            raise RouteError(f"username {username!r} is not a DNS label")
        names.add(username)
        if upstream_host is None:
            add(f"stop {username}")
            continue
        if not (is_port(vscode_port) and is_port(jupyter_port)):
            raise RouteError(f"ports {vscode_port!r}, {jupyter_port!r} of {username!r} are not ports")
        address = addresses.get(upstream_host)
        if address is None:
            address = addresses[upstream_host] = _upstream_address(upstream_host)
        if gate_secret is None:
            gate = "-"
        elif GATE_SECRET_RE.fullmatch(gate_secret):
            gate = gate_secret
        else:
            raise RouteError(f"the gate secret of {username!r} is not a token")
        add(f"put {username} {address} {vscode_port} {jupyter_port} {gate}")
    return lines


def table_text(workspaces: Iterable[WorkspaceRoutes]) -> str:
    """The full table as the edge loads it: `replace`, then one line per workspace."""
    return "\n".join(["replace", *route_lines(workspaces)]) + "\n"


def write_private(path: Path, text: str) -> None:
    """Write `text` to `path` (flushed to disk) readable and writable by its owner only."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_MODE)
    with os.fdopen(fd, "w") as handle:
        os.fchmod(handle.fileno(), PRIVATE_MODE)  # an existing file keeps its mode otherwise
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())


def check_config(paths: EdgePaths, nginx_bin: str, conf: Path | None = None) -> None:
    """Run `nginx -t` on `conf` (default: the main configuration); raise NginxError with its output."""
    conf = conf or paths.main_conf
    result = subprocess.run(  # noqa: S603 - fixed argv, no shell
        [nginx_bin, "-t", "-q", "-p", str(paths.run_dir), "-c", str(conf)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    if result.returncode != 0:
        raise NginxError((result.stderr or result.stdout).strip() or f"nginx -t exited {result.returncode}")


def master_pid(paths: EdgePaths) -> int | None:
    """The running master's pid, or None when the edge is not running."""
    try:
        pid = int(paths.pid_file.read_text().strip())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    return pid
