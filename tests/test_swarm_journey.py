"""Provision through the Swarm backend with the real worker and edge: owner in, others out, lifecycle."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app.backends import backend_for
from app.extensions import db
from app.models import Workspace
from app.services import workspaces as service
from tests.builders import make_server, make_user
from tests.edgekit import get
from tests.support import require_service
from tests.swarmkit import SOCKET_URL, remove_instance, swarm_available, wait_tasks, workspace_cookie
from tests.wsstack import journey_stack, stack_available

pytestmark = pytest.mark.integration
MARKER = "test workspace: vscode"


def _edge(stack, host: str, cookie: str) -> tuple[int, str]:
    status, _, body = get(stack.edge_port, host, "/", {"Cookie": cookie}, timeout=5)
    return status, body


def _serving(stack, host: str, cookie: str, seconds: float = 20) -> bool:
    import time

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        status, body = _edge(stack, host, cookie)
        if status == 200 and MARKER in body:
            return True
        time.sleep(0.1)
    return False


def test_swarm_workspace_through_the_edge(database_url, tmp_path):
    require_service("docker swarm", swarm_available())
    require_service("docker and nginx", stack_available())
    with journey_stack(database_url, tmp_path, SWARM_START_TIMEOUT=60) as stack:
        try:
            with stack.app.app_context():
                swarm = make_server("swarm1", agent_url=SOCKET_URL, backend="swarm")
                admin = make_user("boss", role="admin")
                ann, bob = make_user("ann", status="pending"), make_user("bob")
                task = service.provision(ann, admin, service.Plan(server_id=swarm.id, cpu=0.1, memory_mb=64),
                                         approve=True)
                [done] = wait_tasks([task.id])
                assert done.state == "succeeded", done.message
                ws = db.session.scalar(select(Workspace).where(Workspace.username == "ann"))
                assert ws.status == "running" and ws.server_id == swarm.id
                info = backend_for(swarm).status(ws.container_name)
                assert info is not None and info.running and info.id == ws.container_id
                assert ws.ports == info.ports

                host = "ann-vscode.ws.localhost"
                owner, other = workspace_cookie(stack.app, ann, host), workspace_cookie(stack.app, bob, host)
                assert _serving(stack, host, owner)
                status, body = _edge(stack, host, other)
                assert status != 200 and MARKER not in body

                [stopped] = wait_tasks([service.request(ws, "stop", admin).id])
                assert stopped.state == "succeeded", stopped.message
                status, body = _edge(stack, host, owner)
                assert MARKER not in body
                assert backend_for(swarm).status(ws.container_name).status == "exited"

                [started] = wait_tasks([service.request(ws, "start", admin).id])
                assert started.state == "succeeded", started.message
                assert _serving(stack, host, owner)

                [deleted] = wait_tasks([service.request(ws, "delete", admin, remove_folder=True).id])
                assert deleted.state == "succeeded", deleted.message
                assert backend_for(swarm).status("slipway-ws-ann") is None
        finally:
            remove_instance(stack.instance)
