"""Our own edge nginx: its configuration under a run folder, started as a child process.

Not the system nginx service: `make run` and the tests start one with
`python -m app.routing.edge_server RUN_DIR` or `start_edge(...)`, each with its own prefix.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from app.routing.nginx import (
    TEMPLATE_ENV,
    EdgePaths,
    NginxError,
    check_config,
    master_pid,
    render_routes,
    write_private,
)


def write_main_config(settings: Mapping[str, Any], *, workers: int | str = "auto") -> EdgePaths:
    """Write nginx.conf and nginx.test.conf under EDGE_DIR (and empty routes if none yet)."""
    paths = EdgePaths(Path(settings["EDGE_DIR"]).resolve())
    for sub in ("logs", "tmp", "cache"):
        (paths.run_dir / sub).mkdir(parents=True, exist_ok=True)
    template = TEMPLATE_ENV.get_template("edge.conf.j2")
    common = {
        "workers": workers,
        "run_dir": paths.run_dir,
        "shutdown_timeout": 30,
        "access_log": "off",
        "web_upstream": f"{settings['LISTEN_HOST']}:{settings['LISTEN_PORT']}",
    }
    paths.main_conf.write_text(template.render(routes_file=paths.routes, **common))
    paths.test_conf.write_text(template.render(routes_file=paths.candidate, **common))
    if not paths.routes.exists():
        write_private(paths.routes, render_routes([], settings))
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
