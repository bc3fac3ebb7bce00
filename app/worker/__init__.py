"""The worker: `flask --app wsgi worker` runs the task runner (and the poller, where present).

`make run` starts the same threads inside the development server (`flask dev-server`).
"""

from __future__ import annotations

import importlib
import logging
import signal
import threading
import time

import click
from flask import Flask, current_app
from flask.cli import with_appcontext
from werkzeug.serving import run_simple

# Modules that register task kinds or finish hooks when imported (each area adds its own).
KIND_MODULES: tuple[str, ...] = (
    "app.workspaces.handlers",
    "app.workspaces.reconcile",
    "app.servers.handlers",
    "app.images.handlers",
    "app.worker.workspace_image",
    "app.logs.webhook",
    "app.mail.tasks",
    "app.mail.notify",
)


DEV_SHUTDOWN_SECONDS = 5.0


def load_kinds() -> None:
    """Import every module that registers task kinds."""
    for name in KIND_MODULES:
        importlib.import_module(name)


def start_worker(app: Flask, stop: threading.Event) -> list[threading.Thread]:
    """Start the runner (and poller) threads for `app`; they end when `stop` is set."""
    from app.worker.runner import Runner

    runner = Runner(app)
    thread = threading.Thread(target=runner.run, args=(stop,), name="slipway-runner", daemon=True)
    thread.start()
    threads = [thread]
    from app.worker.retention import retention_loop

    archiving = threading.Thread(target=retention_loop, args=(app, stop), name="slipway-archive", daemon=True)
    archiving.start()
    threads.append(archiving)
    from app.logs.evaluate import evaluate_loop
    from app.logs.retention import retention_loop as log_retention_loop

    for target, name in ((evaluate_loop, "slipway-rules"), (log_retention_loop, "slipway-log-retention")):
        logs_thread = threading.Thread(target=target, args=(app, stop), name=name, daemon=True)
        logs_thread.start()
        threads.append(logs_thread)
    if app.config["RECONCILE_INTERVAL_SECONDS"] > 0:
        from app.workspaces.reconcile import schedule_loop

        scheduling = threading.Thread(
            target=schedule_loop, args=(app, stop), name="slipway-reconcile", daemon=True
        )
        scheduling.start()
        threads.append(scheduling)
    from app.analytics.rollup import rollup_loop

    rolling = threading.Thread(
        target=rollup_loop, args=(app, stop), name="slipway-analytics-rollup", daemon=True
    )
    rolling.start()
    threads.append(rolling)
    from app.connections.loops import idle_loop, tail_loop

    for target, name in ((tail_loop, "slipway-connection-log"), (idle_loop, "slipway-idle-stop")):
        connections_thread = threading.Thread(target=target, args=(app, stop), name=name, daemon=True)
        connections_thread.start()
        threads.append(connections_thread)
    if app.config["POLL_ENABLED"]:
        from app.worker.poller import Poller

        poller = Poller(app)
        polling = threading.Thread(target=poller.run, args=(stop,), name="slipway-poller", daemon=True)
        polling.start()
        threads.append(polling)
    return threads


@click.command("worker")
@with_appcontext
def worker_command() -> None:
    """Run the task runner until SIGTERM or SIGINT; running tasks finish or are released."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    threads = start_worker(app, stop)
    click.echo(f"worker started ({len(threads)} threads)")
    while not stop.wait(1):
        pass
    grace = app.config["WORKER_SHUTDOWN_GRACE_SECONDS"] + 5
    for thread in threads:
        thread.join(timeout=grace)
    click.echo("worker stopped")


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


@click.command("dev-server")
@with_appcontext
def dev_server_command() -> None:
    """Serve the app with the worker running as threads inside (for `make run`)."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    stop = threading.Event()
    threads = start_worker(app, stop)
    signal.signal(signal.SIGTERM, _interrupt)  # stop like Ctrl-C, so the finally below runs
    try:
        # app.run() refuses to run inside a `flask` command, so serve with Werkzeug directly.
        run_simple(
            app.config["LISTEN_HOST"],
            app.config["LISTEN_PORT"],
            app,
            threaded=True,
            use_reloader=False,
        )
    finally:
        stop.set()
        # A few seconds for the poller to hand back its lease, so the next `make run` polls at once.
        deadline = time.monotonic() + DEV_SHUTDOWN_SECONDS
        for thread in threads:
            thread.join(timeout=max(deadline - time.monotonic(), 0))
