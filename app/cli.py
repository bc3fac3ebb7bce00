"""Command-line tools: `flask --app wsgi create-admin | create-api-key | check-config`."""

from __future__ import annotations

import sys
from datetime import timedelta

import click
from flask import Flask, current_app
from flask.cli import with_appcontext

from app.services import accounts


@click.command("create-admin")
@click.option("--username", required=True, help="DNS-label username of the admin.")
@click.option("--email", required=True, help="Email address of the admin.")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@click.option("--if-missing", is_flag=True, help="Do nothing (exit 0) if the user exists.")
@with_appcontext
def create_admin(username: str, email: str, password_stdin: bool, if_missing: bool) -> None:
    """Create an approved admin account without any prompt."""
    if not password_stdin:
        raise click.UsageError("pass --password-stdin and send the password on standard input")
    if if_missing and accounts.find_by_login(username):
        click.echo(f"admin {username} already exists")
        return
    password = sys.stdin.readline().rstrip("\r\n")
    try:
        accounts.create_admin(username, email, password)
    except accounts.AccountError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"created admin {username}")


@click.command("create-api-key")
@click.option("--username", required=True, help="Owner of the key (an approved account).")
@click.option("--scope", required=True, help="read, write, or logs:write (admins only: shipping logs).")
@click.option("--days", type=click.IntRange(1, 3650), default=None, help="Expire after this many days.")
@click.option("--name", default="created by create-api-key", show_default=True, help="What the key is for.")
@with_appcontext
def create_api_key(username: str, scope: str, days: int | None, name: str) -> None:
    """Create an API key and print it once (for scripts and log shippers)."""
    from app.security import clock
    from app.services import api_keys

    user = accounts.find_by_login(username)
    if user is None or not user.is_approved:
        raise click.ClickException(f"no approved account named {username!r}")
    expires = clock.now() + timedelta(days=days) if days else None
    try:
        created = api_keys.create(user, name, scope, expires, source="cli")
    except api_keys.ApiKeyError as exc:
        raise click.ClickException(str(exc)) from exc
    until = created.key.expires_at.strftime("%Y-%m-%d %H:%M UTC") if created.key.expires_at else "never"
    click.echo(f"created {scope} key {created.key.prefix}... for {user.username}, expires {until}; "
               "it is shown only this once:", err=True)
    click.echo(created.value)


@click.command("check-config")
@with_appcontext
def check_config() -> None:
    """Print the effective environment name and database; start-up already validated them."""
    click.echo(f"environment: {current_app.config['ENV_NAME']}")
    click.echo(f"database: {current_app.config['SQLALCHEMY_DATABASE_URI'].split('@')[-1]}")
    click.echo("configuration ok")


def register_cli(app: Flask) -> None:
    """Attach the commands to `app`."""
    from app.worker import dev_server_command, worker_command

    app.cli.add_command(create_admin)
    app.cli.add_command(create_api_key)
    app.cli.add_command(check_config)
    app.cli.add_command(worker_command)
    app.cli.add_command(dev_server_command)

    from app.worker.workspace_image import build_workspace_image_command

    app.cli.add_command(build_workspace_image_command)

    from app.workspaces.cli import edge_command, reconcile_now_command, register_local_server

    app.cli.add_command(edge_command)
    app.cli.add_command(register_local_server)
    app.cli.add_command(reconcile_now_command)

    from app.logs.defaults import seed_rules_command

    app.cli.add_command(seed_rules_command)
