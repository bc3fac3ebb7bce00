"""Render the workspace routes, check them with `nginx -t`, swap them in atomically, reload.

The database is the truth and the routes file a projection of it: one `map` from
workspace host to upstream address (and the workspace's gate secret) and one server
block for every workspace. Every value is whitelisted before it is rendered; `nginx -t`
is a second line of defence, not the first. On any failure the last good file stays in
place. The file holds the gate secrets, so it is written readable by its owner only.
"""

from __future__ import annotations

import fcntl
import ipaddress
import os
import re
import signal
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from app.models.workspace import WORKSPACE_APPS
from app.validators import is_dns_name, is_plain_ip, is_port, is_username_shape
from config import BASE_DIR

TEMPLATES = BASE_DIR / "docker" / "nginx"
STOPPED = "-"  # map value of a workspace that is not running
GATE_SECRET_RE = re.compile(r"[A-Za-z0-9_-]{16,128}")  # what secrets.token_urlsafe makes
GATE_HEADER = "X-Slipway-Gate"  # the header the workspace's gate checks
AUTH_CACHE_SECONDS = 5
# The owner check must answer fast or fail closed: a frozen web app must not hold requests ~60 s.
AUTH_CONNECT_TIMEOUT_SECONDS = 2
AUTH_READ_TIMEOUT_SECONDS = 5
ROUTES_MODE = 0o600  # the routes file carries the gate secrets

TEMPLATE_ENV = Environment(
    loader=FileSystemLoader(str(TEMPLATES)),
    undefined=StrictUndefined,
    autoescape=False,  # noqa: S701 - nginx config, every value whitelisted first
    keep_trailing_newline=True,
)


class RouteError(ValueError):
    """A value refused by the whitelist; it never reaches the nginx file."""


class NginxError(RuntimeError):
    """`nginx -t` refused the new routes, or nginx could not be reloaded; the message is nginx's."""


class WorkspaceRoutes(NamedTuple):
    """One workspace on the edge: its owner and, while it runs, where its two apps listen.

    `upstream_host` None means it is not running: both its hosts answer the stopped page.
    `gate_secret` (plain text) is sent to the workspace with every request; None only for a
    container made before the gate existed. One record per workspace, not per app: 10,000
    are rendered on every route change.
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
    def test_conf(self) -> Path:
        """The same main configuration, including the candidate routes file instead."""
        return self.run_dir / "nginx.test.conf"

    @property
    def routes(self) -> Path:
        """The live generated routes file."""
        return self.run_dir / "routes.conf"

    @property
    def candidate(self) -> Path:
        """Where a new routes file is written and checked before the swap."""
        return self.run_dir / "routes.conf.next"

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


def _upstream_host(host: object) -> str:
    """The upstream host as nginx wants it (IPv6 in brackets); RouteError unless an IP or DNS name."""
    if is_plain_ip(host):
        address = ipaddress.ip_address(str(host))
        return f"[{address.compressed}]" if address.version == 6 else address.compressed
    if not is_dns_name(host):
        raise RouteError(f"upstream host {host!r} is neither an IP address nor a DNS name")
    return str(host)


def render_routes(workspaces: Iterable[WorkspaceRoutes], settings: Mapping[str, Any]) -> str:
    """The routes file for `workspaces` (two map entries each); RouteError before anything is written."""
    suffix = "." + domain_host(settings["WORKSPACE_DOMAIN"])
    bind = settings["EDGE_BIND"]
    if not is_port(settings["EDGE_PORT"]) or not is_plain_ip(bind):
        raise RouteError(f"edge listen address {bind}:{settings['EDGE_PORT']} is not an IP and port")
    listen = f"[{bind}]:{settings['EDGE_PORT']}" if ":" in bind else f"{bind}:{settings['EDGE_PORT']}"
    addresses: dict[object, str] = {}  # few distinct upstream hosts: validate each once
    names: set[object] = set()
    lines: list[str] = []
    add = lines.append  # 20,000 map entries per route change: the loop is kept lean on purpose
    for username, upstream_host, vscode_port, jupyter_port, gate_secret in workspaces:
        if username in names:
            raise RouteError(f"duplicate routes for {username!r}")
        if not is_username_shape(username):
            raise RouteError(f"username {username!r} is not a DNS label")
        names.add(username)
        if upstream_host is None:
            add(f'    {username}-vscode{suffix} "{STOPPED}";')
            add(f'    {username}-jupyter{suffix} "{STOPPED}";')
            continue
        if not (is_port(vscode_port) and is_port(jupyter_port)):
            raise RouteError(f"ports {vscode_port!r}, {jupyter_port!r} of {username!r} are not ports")
        address = addresses.get(upstream_host)
        if address is None:
            address = addresses[upstream_host] = _upstream_host(upstream_host)
        if gate_secret is None:
            gate = ""
        elif GATE_SECRET_RE.fullmatch(gate_secret):
            gate = "|" + gate_secret
        else:
            raise RouteError(f"the gate secret of {username!r} is not a token")
        add(f'    {username}-vscode{suffix} "{address}:{vscode_port}{gate}";')
        add(f'    {username}-jupyter{suffix} "{address}:{jupyter_port}{gate}";')
    return TEMPLATE_ENV.get_template("routes.conf.j2").render(
        count=len(names),
        map_lines="\n".join(lines),
        listen=listen,
        auth_cache_seconds=AUTH_CACHE_SECONDS,
        auth_connect_timeout=AUTH_CONNECT_TIMEOUT_SECONDS,
        auth_read_timeout=AUTH_READ_TIMEOUT_SECONDS,
        gate_header=GATE_HEADER,
    )


def write_private(path: Path, text: str) -> None:
    """Write `text` to `path` (flushed to disk) readable and writable by its owner only."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, ROUTES_MODE)
    with os.fdopen(fd, "w") as handle:
        os.fchmod(handle.fileno(), ROUTES_MODE)  # an existing file keeps its mode otherwise
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())


def check_config(paths: EdgePaths, nginx_bin: str, conf: Path | None = None) -> None:
    """Run `nginx -t` on `conf` (default: the candidate); raise NginxError with its output."""
    conf = conf or paths.test_conf
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


def install(text: str, paths: EdgePaths, nginx_bin: str) -> bool:
    """Write `text` as the candidate, `nginx -t` it, rename it into place and HUP the master.

    Returns True when a running nginx was signalled. On a failed check the candidate is
    removed, the live file is untouched, and NginxError carries nginx's message.
    """
    paths.run_dir.mkdir(parents=True, exist_ok=True)
    with open(paths.run_dir / "routes.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one writer at a time, across processes
        write_private(paths.candidate, text)
        try:
            check_config(paths, nginx_bin)
        except NginxError:
            paths.candidate.unlink(missing_ok=True)
            raise
        os.replace(paths.candidate, paths.routes)
        pid = master_pid(paths)
        if pid is None:
            return False
        # Our own nginx -t already parsed the file: HUP avoids a third parse by `nginx -s reload`.
        os.kill(pid, signal.SIGHUP)
        return True
