"""Our own edge nginx: its one configuration under a run folder, started as a child process.

Not the system nginx service: `make run` and the tests start one with
`python -m app.routing.edge_server RUN_DIR` or `start_edge(...)`, each with its own prefix.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from app.routing.nginx import (
    AUTH_CACHE_SECONDS,
    AUTH_CONNECT_TIMEOUT_SECONDS,
    AUTH_READ_TIMEOUT_SECONDS,
    GATE_HEADER,
    HANDOFF_READ_TIMEOUT_SECONDS,
    TEMPLATE_ENV,
    TEMPLATES,
    EdgePaths,
    NginxError,
    RouteError,
    check_config,
    domain_host,
    master_pid,
    write_private,
)
from app.routing.signing import ensure_key_file, load_keys
from app.validators import is_plain_ip, is_port

MODULES_DIR = "/usr/share/nginx/modules"  # Debian's libnginx-mod-http-lua and its NDK
ROUTES_ZONE = "64m"  # ~200 bytes a workspace: room for 300,000
DEFAULT_ADMIN_PORT = 8079
DEFAULT_SYNC_SECONDS = 10
DEFAULT_COOKIE_MINUTES = 10
# The JSON access log is written in 64 KiB batches at least every second: one write per batch, not
# per request; if nginx dies, at most the last second's lines are lost.
ACCESS_LOG_BUFFERING = "buffer=64k flush=1s"


def _listen(bind: object, port: object, what: str) -> str:
    if not is_port(port) or not is_plain_ip(bind):
        raise RouteError(f"{what} listen address {bind}:{port} is not an IP and port")
    return f"[{bind}]:{port}" if ":" in str(bind) else f"{bind}:{port}"


def _plain_path(path: Path) -> str:
    """A path safe inside a quoted nginx/Lua string."""
    text = str(path)
    if not re.fullmatch(r"[A-Za-z0-9_./-]+", text):
        raise RouteError(f"path {text!r} has characters the edge configuration does not allow")
    return text


def key_file(settings: Mapping[str, Any]) -> Path:
    """The key shared by the web app, the worker and the edges (default: in the edge's run folder)."""
    return Path(settings.get("EDGE_KEY_FILE") or Path(settings["EDGE_DIR"]) / "edge.key").resolve()


def shared_keys(settings: Mapping[str, Any]) -> list[str]:
    """The shared keys, current first (the key file is created, mode 0600, when missing)."""
    path = key_file(settings)
    ensure_key_file(path)
    return load_keys(path)


def edge_cookie_name(settings: Mapping[str, Any]) -> str:
    """The signed edge cookie's name (`__Host-` prefixed over HTTPS, like the workspace cookie)."""
    return "__Host-slipway_edge" if settings.get("HTTPS") else "slipway_edge"


def cookie_seconds(settings: Mapping[str, Any]) -> int:
    """How long an edge cookie is valid: minutes, so a missed revocation push still ends soon."""
    return max(1, int(settings.get("EDGE_COOKIE_MINUTES", DEFAULT_COOKIE_MINUTES))) * 60


def edge_settings(settings: Mapping[str, Any]) -> dict[str, Any]:
    """Every value the edge configuration needs, whitelisted (RouteError otherwise)."""
    admin_port = settings.get("EDGE_ADMIN_PORT", DEFAULT_ADMIN_PORT)
    if admin_port == settings["EDGE_PORT"]:
        raise RouteError("the admin port must differ from the public port")
    web_host = settings["LISTEN_HOST"]
    if web_host in ("0.0.0.0", "::"):  # noqa: S104 - reach a wildcard-bound web app over loopback
        web_host = "127.0.0.1"
    _listen(web_host, settings["LISTEN_PORT"], "web app")
    return {
        "listen": _listen(settings["EDGE_BIND"], settings["EDGE_PORT"], "edge"),
        # Loopback only, whatever the public bind: pushes never travel over the network in the clear.
        "admin_listen": _listen("127.0.0.1", admin_port, "edge admin"),
        "domain": domain_host(settings["WORKSPACE_DOMAIN"]),
        "web_host": web_host,
        "web_port": int(settings["LISTEN_PORT"]),
        "key_file": _plain_path(key_file(settings)),
        "sync_seconds": max(1, int(settings.get("EDGE_SYNC_SECONDS", DEFAULT_SYNC_SECONDS))),
        "edge_cookie": edge_cookie_name(settings),
        "cookie_seconds": cookie_seconds(settings),
        # Renewed (one call to the web app) in its last third, so an active user never sees it lapse.
        "renew_seconds": cookie_seconds(settings) // 3,
    }


def access_log_path(settings: Mapping[str, Any]) -> Path:
    """The edge's JSON access log: SLIPWAY_EDGE_ACCESS_LOG, or logs/access.json in the edge folder."""
    configured = settings.get("EDGE_ACCESS_LOG")
    return Path(configured) if configured else Path(settings["EDGE_DIR"]).resolve() / "logs" / "access.json"


def write_main_config(settings: Mapping[str, Any], *, workers: int | str = "auto") -> EdgePaths:
    """Write nginx.conf under EDGE_DIR (and the shared key file when missing)."""
    paths = EdgePaths(Path(settings["EDGE_DIR"]).resolve())
    for sub in ("logs", "tmp", "cache"):
        (paths.run_dir / sub).mkdir(parents=True, exist_ok=True)
    values = edge_settings(settings)
    ensure_key_file(Path(values["key_file"]))
    text = TEMPLATE_ENV.get_template("edge.conf.j2").render(
        workers=workers,
        run_dir=_plain_path(paths.run_dir),
        modules_dir=MODULES_DIR,
        lua_dir=_plain_path(TEMPLATES),
        routes_zone=ROUTES_ZONE,
        keepalive=256,
        shutdown_timeout=30,
        access_log=f"{access_log_path(settings)} slipway_json {ACCESS_LOG_BUFFERING}",
        auth_cache_seconds=AUTH_CACHE_SECONDS,
        auth_connect_timeout=AUTH_CONNECT_TIMEOUT_SECONDS,
        auth_read_timeout=AUTH_READ_TIMEOUT_SECONDS,
        handoff_read_timeout=HANDOFF_READ_TIMEOUT_SECONDS,
        gate_header=GATE_HEADER,
        **values,
    )
    write_private(paths.main_conf, text)
    return paths


def start_edge(settings: Mapping[str, Any], *, workers: int | str = "auto") -> subprocess.Popen:
    """Write the configuration, check it and start nginx in the foreground as a child process."""
    paths = write_main_config(settings, workers=workers)
    check_config(paths, settings["NGINX_BIN"], paths.main_conf)
    stderr_log = paths.run_dir / "logs" / "stderr.log"
    with open(stderr_log, "ab") as stderr:
        process = subprocess.Popen(  # noqa: S603 - fixed argv
            [settings["NGINX_BIN"], "-p", str(paths.run_dir), "-c", str(paths.main_conf)],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            start_new_session=True,  # master and workers in one group: see kill_leftovers
        )
    deadline = time.monotonic() + 10
    while master_pid(paths) != process.pid:
        if process.poll() is not None:
            raise NginxError(stderr_log.read_text(errors="replace")[-2000:] or "nginx exited")
        if time.monotonic() > deadline:
            process.kill()
            raise NginxError("nginx did not write its pid file within 10 s")
        time.sleep(0.02)
    return process


def reload_edge(settings: Mapping[str, Any]) -> bool:
    """Rewrite the edge's own configuration (a new TLS certificate, say), check it, HUP the master.

    Routes never need this: they change in memory. True when a running master was signalled.
    """
    paths = write_main_config(settings)
    check_config(paths, settings["NGINX_BIN"])
    pid = master_pid(paths)
    if pid is None:
        return False
    os.kill(pid, signal.SIGHUP)
    return True


def stop_edge(process: subprocess.Popen, timeout: float = 10) -> None:
    """Ask nginx to quit (SIGQUIT: graceful), then kill it if it lingers."""
    if process.poll() is None:
        process.send_signal(3)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def kill_leftovers(process: subprocess.Popen) -> None:
    """After the master died (killed, OOM), kill its orphaned workers: they still hold the port."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def main() -> None:
    """`python -m app.routing.edge_server`: run the edge for the app's settings until it exits."""
    from app import create_app

    app = create_app()
    process = start_edge(app.config)
    print(f"edge nginx pid {process.pid} on {app.config['EDGE_BIND']}:{app.config['EDGE_PORT']}", flush=True)
    sys.exit(process.wait())


if __name__ == "__main__":
    os.environ.setdefault("SLIPWAY_ENV", "development")
    main()
