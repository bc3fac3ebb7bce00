"""A build whose agent was unavailable keeps its uploaded context for the Retry; stale ones are swept."""

from __future__ import annotations

import os
import time
from datetime import timedelta

from app.extensions import db
from app.images.uploads import context_dir, remove_stale_contexts
from app.services import task_queue
from tests.builders import make_server, make_user
from tests.support import run_tasks

CONTEXT = "0123456789abcdef0123456789abcdef.tar"


def test_unavailable_agent_keeps_the_context_for_a_retry(app):
    with app.app_context():
        make_user("builder", role="qvp")
        server = make_server("host-1", "http://127.0.0.1:9")  # nothing listens on port 9
        path = context_dir() / CONTEXT
        path.write_bytes(b"context")
        task_queue.enqueue("build", target=f"server:{server.id}", requested_by="builder",
                           payload={"server_id": server.id, "tag": "team/app:1", "dockerfile": "FROM x\n",
                                    "context_file": CONTEXT})
        db.session.commit()
    [build] = run_tasks(app)
    assert build.state == "failed"
    assert build.message == "agent 'host-1' (127.0.0.1:9) unreachable: connection refused"
    assert path.read_bytes() == b"context"  # the Retry sends it again


def test_stale_contexts_are_swept(app):
    with app.app_context():
        old, fresh = context_dir() / CONTEXT, context_dir() / ("f" * 32 + ".tar")
        old.write_bytes(b"old")
        fresh.write_bytes(b"fresh")
        month_ago = time.time() - 30 * 86400
        os.utime(old, (month_ago, month_ago))
        assert remove_stale_contexts(timedelta(days=7)) == 1
        assert not old.exists() and fresh.exists()
