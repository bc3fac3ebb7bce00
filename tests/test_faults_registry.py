"""The registry down during a push: the task fails with a clear message, credentials never in it.

"Down" is a registry address where nothing listens (a free loopback port): the real agent's
Docker push meets a refused connection.
"""

from __future__ import annotations

import secrets

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import AuditLog, Registry, TaskEvent
from tests.agent.helpers import free_port
from tests.integration_helpers import (
    TEST_IMAGE,
    RunnerThread,
    agent_server,
    ensure_test_image,
    remove_images,
    wait_task,
)
from tests.support import form_post

pytestmark = pytest.mark.integration
RUN = secrets.token_hex(3)


def test_push_to_a_registry_that_is_down_fails_clearly_without_credentials(app, client, auth, tmp_path):
    ensure_test_image()
    import docker

    repository = f"slipway/fault-push-{RUN}"
    docker.from_env(timeout=60).images.get(TEST_IMAGE).tag(repository, "1")
    password = "registry-secret-" + secrets.token_hex(8)
    host = f"127.0.0.1:{free_port()}"
    try:
        with agent_server(app, tmp_path / "agent-ws") as (server_id, _agent):
            auth.as_role("admin")
            form_post(client, "/images/registries", {"name": "down", "host": host, "username": "pusher",
                                                     "password": password}, page="/images/registries")
            with app.app_context():
                registry_id = db.session.scalar(select(Registry.id))
            assert registry_id is not None
            response = form_post(client, "/images/push", {"server_id": server_id, "registry_id": registry_id,
                                                          "repository": repository, "tag": "1"},
                                 page="/images/push")
            assert response.status_code == 302, response.get_data(as_text=True)
            task_id = int(response.headers["Location"].rstrip("/").rsplit("/", 1)[1])
            with RunnerThread(app):
                task = wait_task(app, task_id, timeout=180)
    finally:
        remove_images(f"{repository}:1", f"{host}/{repository}:1")
    print(f"task message: {task.message}")
    assert task.state == "failed"
    assert host in task.message and "refused" in task.message.lower(), task.message
    with app.app_context():
        events = db.session.scalars(select(TaskEvent.message).where(TaskEvent.task_id == task_id)).all()
        audit = [str(row.details) for row in db.session.scalars(select(AuditLog))]
    for text in [task.message, *events, *audit, client.get(f"/tasks/{task_id}").get_data(as_text=True)]:
        assert password not in text
