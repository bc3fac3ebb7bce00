"""Flask-Migrate bound to the app without importing it: Alembic loads only when a migration runs.

Importing Flask-Migrate imports Alembic, Mako, Pygments and SQLAlchemy's other dialects (about
11 MB per process, measured with bench/import_memory.py); the web workers and the
task worker never migrate, so only `flask db ...` and `flask_migrate.upgrade()` callers pay it.
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Any

import click
from flask import Flask

if TYPE_CHECKING:
    from flask_migrate import Migrate
    from flask_sqlalchemy import SQLAlchemy


class MigrateState:
    """`app.extensions["migrate"]`: what Flask-Migrate's functions and migrations/env.py read."""

    def __init__(self, db: SQLAlchemy, directory: str, **configure_args: Any) -> None:
        self.db = db
        self.directory = directory
        self.configure_args = configure_args

    @cached_property
    def migrate(self) -> Migrate:
        """The Flask-Migrate object, built (and Alembic imported) on first use."""
        from flask_migrate import Migrate

        return Migrate(db=self.db, directory=self.directory, **self.configure_args)

    @property
    def metadata(self) -> Any:
        """The models' metadata (older env.py files read it here)."""
        return self.db.metadata


class MigrateCommands(click.Group):
    """`flask db`: Flask-Migrate's command group, imported when the command line reaches it."""

    def _group(self) -> click.Group:
        from flask_migrate.cli import db as group

        return group

    def make_context(self, info_name: str | None, args: list[str], parent: click.Context | None = None,
                     **extra: Any) -> click.Context:
        """Parse and run with the real group (its options, subcommands and help)."""
        return self._group().make_context(info_name, args, parent=parent, **extra)

    def list_commands(self, ctx: click.Context) -> list[str]:
        """The real group's subcommands."""
        return self._group().list_commands(ctx)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """One of the real group's subcommands."""
        return self._group().get_command(ctx, cmd_name)


def init_migrate(app: Flask, db: SQLAlchemy, directory: str) -> None:
    """Register the migrations of `directory` for `db` (batch mode for SQLite, type changes compared)."""
    app.extensions["migrate"] = MigrateState(db, directory, compare_type=True, render_as_batch=True)
    app.cli.add_command(MigrateCommands("db", help="Perform database migrations."))
