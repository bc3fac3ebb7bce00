"""The migrations build exactly the schema the models describe, on SQLite and MariaDB."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import downgrade, upgrade
from sqlalchemy import create_engine, text

from app import create_app
from app.extensions import db
from app.timeutil import utcnow
from config import TestingConfig


def test_migrated_schema_matches_models(app):
    with app.app_context(), db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        diff = compare_metadata(context, db.metadata)
    assert diff == []


@pytest.fixture
def scratch_url(database_url: str, tmp_path: Path) -> Iterator[str]:
    """An empty database of the test's kind: a file for SQLite, `<test db>_mig` on MariaDB."""
    if database_url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path / 'migration.db'}"
        return
    server, _, name = database_url.rpartition("/")
    engine = create_engine(database_url)
    with engine.begin() as connection:
        connection.execute(text(f"DROP DATABASE IF EXISTS {name}_mig"))
        connection.execute(text(f"CREATE DATABASE {name}_mig CHARACTER SET utf8mb4"))
    try:
        yield f"{server}/{name}_mig"
    finally:
        with engine.begin() as connection:
            connection.execute(text(f"DROP DATABASE IF EXISTS {name}_mig"))
        engine.dispose()


def test_port_columns_migration_keeps_the_ports(scratch_url: str, tmp_path: Path) -> None:
    app = create_app(TestingConfig, {"SQLALCHEMY_DATABASE_URI": scratch_url, "DATA_DIR": tmp_path})
    insert_rows = (
        "INSERT INTO servers (id, name, agent_url, token_encrypted, publish_host, status, "
        "consecutive_failures, consecutive_successes, last_outcome, last_error, created_at) "
        "VALUES (1, 's1', 'http://127.0.0.1:1', 'x', '127.0.0.1', 'online', 0, 0, 'ok', '', :now)",
        "INSERT INTO workspaces (username, server_id, container_name, image, cpu, memory_mb, ports, status, "
        "error, created_at, updated_at) VALUES "
        "('alice', 1, 'ws-alice', 'img', 1, 256, '{\"vscode\": 4001, \"jupyter\": 4002}', 'running', '', "
        ":now, :now),"
        "('bob', 1, 'ws-bob', 'img', 1, 256, '{}', 'provisioning', '', :now, :now)",
    )
    read = "SELECT username, vscode_port, jupyter_port FROM workspaces ORDER BY username"
    with app.app_context():
        upgrade(revision="0006")
        with db.engine.begin() as connection:
            for statement in insert_rows:
                connection.execute(text(statement), {"now": utcnow()})
        upgrade(revision="0007")
        with db.engine.connect() as connection:
            assert connection.execute(text(read)).all() == [("alice", 4001, 4002), ("bob", None, None)]
        downgrade(revision="0006")
        with db.engine.connect() as connection:
            rows = connection.execute(text("SELECT username, ports FROM workspaces ORDER BY username")).all()
        assert [(name, json.loads(ports)) for name, ports in rows] == [
            ("alice", {"vscode": 4001, "jupyter": 4002}),
            ("bob", {}),
        ]
        db.engine.dispose()
