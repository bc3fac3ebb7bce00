"""Two edges' access logs, tailed by two workers into one database: each log keeps its own cursor.

With one shared position the tailers took turns moving it to their own file, and each took the
other's position for a rotated file: every round re-read its whole log from the start.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

from flask import Flask
from sqlalchemy import select

from app.connections.ingest import ingest_available
from app.connections.tailer import Tailer
from app.extensions import db
from app.models import ConnectionSession, ConnectionTail
from tests.builders import make_server, make_user, make_workspace

DOMAIN = "ws.localhost:8080"
GAP = timedelta(minutes=30)
T0 = 1_800_000_000.0


def _line(ts: float) -> str:
    return json.dumps({"ts": ts, "host": "alice-vscode.ws.localhost", "status": "200", "bytes": 100,
                       "received": 50, "request_time": 0.01, "client": "192.0.2.5", "user": "alice",
                       "uri": "/"})


def test_two_edge_logs_are_each_read_once(app: Flask, tmp_path: Path) -> None:
    with app.app_context():
        make_workspace(make_user("alice"), make_server())
    logs = {"edge-a": tmp_path / "a.json", "edge-b": tmp_path / "b.json"}
    logs["edge-a"].write_text(_line(T0) + "\n" + _line(T0 + 1) + "\n")
    logs["edge-b"].write_text(_line(T0 + 2) + "\n")
    tailers = {name: Tailer(path) for name, path in logs.items()}  # one per worker, each on its edge's host
    read = []
    with app.app_context():
        for _ in range(3):  # the workers' rounds interleave
            for name, tailer in tailers.items():
                read.append(ingest_available(tailer, DOMAIN, GAP, cursor_name=name))
        requests = db.session.scalar(select(db.func.sum(ConnectionSession.requests)))
        cursors = {row.name: row.lines for row in db.session.scalars(select(ConnectionTail))}
    assert read == [2, 1, 0, 0, 0, 0]
    assert requests == 3
    assert cursors == {"edge-a": 2, "edge-b": 1}


def test_a_tail_name_that_is_not_a_plain_name_is_refused_at_start() -> None:
    from app.settings_checks import validate
    from config import TestingConfig

    for name, refused in (("edge-b.host_2", False), ("edge b", True), ("x" * 65, True)):
        settings, _ = TestingConfig.load({"SLIPWAY_CONNECTION_TAIL_NAME": name})
        problems = [p for p in validate(settings) if "SLIPWAY_CONNECTION_TAIL_NAME" in p]
        assert bool(problems) == refused, (name, problems)
