"""Workspace commands: `flask edge`, `flask register-local-server`, `flask reconcile-now`."""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import click
from flask import current_app
from flask.cli import with_appcontext
from sqlalchemy import select

from app.extensions import db
from app.models.server import Server
from app.routing.edge_server import kill_leftovers, start_edge, stop_edge
from app.routing.nginx import NginxError
from app.security.crypto import encrypt_secret
from app.security.outbound import agent_url_problem
from app.services import audit
from app.services.workspaces import reconcile_now


@click.command("edge")
@with_appcontext
def edge_command() -> None:
    """Run the edge nginx (own config under EDGE_DIR) with routes from the database, until stopped."""
    # No routes to write: the edge loads the full table from the web app when it starts.
    process = start_edge(current_app.config)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    click.echo(f"edge nginx (pid {process.pid}) on {current_app.config['EDGE_BIND']}:"
               f"{current_app.config['EDGE_PORT']}, config in {current_app.config['EDGE_DIR']}")
    backoff = 1.0
    while not stop.wait(1):
        if process.poll() is None:
            backoff = 1.0
            continue
        # nginx died under us (killed, OOM): bring it back (it pulls the current routes from the web
        # app as it starts), backing off up to 30 s while it keeps failing; /health/ready reports
        # the edge down meanwhile.
        click.echo(f"edge nginx exited with {process.returncode}; restarting it", err=True)
        kill_leftovers(process)
        if stop.wait(backoff):
            return
        try:
            process = start_edge(current_app.config)
        except (NginxError, OSError) as exc:
            click.echo(f"edge nginx did not start again: {exc}", err=True)
            backoff = min(backoff * 2, 30.0)
            continue
        click.echo(f"edge nginx restarted (pid {process.pid})", err=True)
    stop_edge(process)


@click.command("register-local-server")
@click.option("--name", default="local", show_default=True, help="Server name.")
@click.option("--agent-url", required=True, help="The agent's URL, e.g. http://127.0.0.1:9100.")
@click.option("--token-file", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@with_appcontext
def register_local_server(name: str, agent_url: str, token_file: Path) -> None:
    """Register the local agent as a server unless a server of that name exists (idempotent)."""
    if db.session.scalar(select(Server.id).where(Server.name == name)):
        click.echo(f"server {name} already registered")
        return
    if problem := agent_url_problem(agent_url):
        raise click.ClickException(problem)
    token = token_file.read_text().strip()
    db.session.add(Server(name=name, agent_url=agent_url, publish_host="127.0.0.1", status="online",
                          token_encrypted=encrypt_secret(token, "server.token")))
    audit.record("server_added", None, {"name": name, "agent_url": agent_url}, source="cli")
    db.session.commit()
    click.echo(f"registered server {name} at {agent_url}")


@click.command("reconcile-now")
@with_appcontext
def reconcile_now_command() -> None:
    """Queue a reconcile pass (the worker runs it)."""
    task = reconcile_now("cli")
    click.echo(f"queued reconcile task #{task.id}" if task else "a reconcile pass is already queued")
