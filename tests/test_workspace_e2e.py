"""End to end in headless Chromium: real agent, real Docker, real nginx, the test image.

Admin approves a pending user with one click; the user logs in, lands on their workspace
page, opens VS Code and Jupyter and gets *their* container's pages; another user gets 403;
a logged-out browser is sent to log in; stop → the link no longer serves; start → it
serves again. Then: the agent dies during a provision → the task fails, the reconciler
leaves no half workspace, a retry succeeds.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import Task, User, Workspace
from app.services import workspaces as service
from app.services.task_queue import in_flight
from tests.agent.helpers import run_agent
from tests.builders import PASSWORD, make_user
from tests.support import require_service
from tests.wsstack import CHROMIUM, CHROMIUM_ARGS, Stack, journey_stack, stack_available, wait_until

pytestmark = pytest.mark.integration


def _playwright_available() -> bool:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return False
    return Path(CHROMIUM).exists()


@pytest.fixture
def stack(database_url: str, tmp_path: Path) -> Iterator[Stack]:
    """The whole journey, running."""
    require_service("Docker and nginx", stack_available())
    with journey_stack(database_url, tmp_path) as running:
        yield running


def _status(stack: Stack, username: str) -> str | None:
    with stack.app.app_context():
        return db.session.scalar(select(Workspace.status).where(Workspace.username == username))


def _login(page, stack: Stack, username: str) -> None:
    page.goto(f"{stack.web}/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("input[type=submit], button[type=submit]")
    page.wait_for_load_state()


def _press(page, label: str) -> None:
    page.click(f"form button:has-text('{label}')")
    page.wait_for_load_state()


def test_browser_journey(stack: Stack) -> None:
    require_service("Chromium + playwright", _playwright_available())
    from playwright.sync_api import sync_playwright

    with stack.app.app_context():
        admin = make_user("boss", role="admin").username
        alice_id = make_user("alice", status="pending").id
        make_user("bob")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            admin_page = browser.new_context().new_page()
            _login(admin_page, stack, admin)
            admin_page.goto(f"{stack.web}/admin/approvals")
            # One click: the row's primary button approves and provisions with the defaults.
            admin_page.click(f"form[action='/admin/users/{alice_id}/approve'] button:text-is('Approve')")
            admin_page.wait_for_load_state()
            assert "Approved alice; their workspace is being set up." in admin_page.content()
            wait_until(lambda: _status(stack, "alice") == "running", 60)

            alice = browser.new_context().new_page()
            _login(alice, stack, "alice")
            assert alice.url == f"{stack.web}/workspaces/"  # the user lands on their workspace
            alice.click("#open-vscode")
            alice.wait_for_load_state()
            assert alice.url == stack.host_url("alice", "vscode")
            assert "Slipway test workspace: vscode" in alice.content()
            alice.goto(f"{stack.web}/workspaces/")
            alice.click("#open-jupyter")
            alice.wait_for_load_state()
            assert "Slipway test workspace: jupyter" in alice.content()

            bob = browser.new_context().new_page()
            _login(bob, stack, "bob")
            response = bob.goto(stack.host_url("alice", "vscode"))
            assert response is not None and response.status == 403
            assert "Slipway test workspace" not in bob.content()

            stranger = browser.new_context().new_page()
            stranger.goto(stack.host_url("alice", "vscode"))
            assert stranger.url.startswith(f"{stack.web}/login")
            assert "Slipway test workspace" not in stranger.content()

            alice.goto(f"{stack.web}/workspaces/")
            _press(alice, "Stop")
            wait_until(lambda: _idle(stack, "alice") and _status(stack, "alice") == "stopped", 30)
            wait_until(lambda: _answers(alice, stack, 503), 5)
            assert "not running" in alice.content() and "Slipway test workspace" not in alice.content()

            alice.goto(f"{stack.web}/workspaces/")
            _press(alice, "Start")
            wait_until(lambda: _idle(stack, "alice") and _status(stack, "alice") == "running", 30)
            wait_until(lambda: _answers(alice, stack, 200), 5)
            assert "Slipway test workspace: vscode" in alice.content()
        finally:
            browser.close()


def _answers(page, stack: Stack, status: int) -> bool:
    response = page.goto(stack.host_url("alice", "vscode"))
    return response is not None and response.status == status


def _idle(stack: Stack, username: str) -> bool:
    with stack.app.app_context():
        return in_flight(f"workspace:{username}") is None


def test_agent_dead_mid_provision_then_reconcile_and_retry(stack: Stack) -> None:
    agent = stack.agent
    with stack.app.app_context():
        admin = make_user("boss", role="admin")
        carol = make_user("carol", status="pending")
        agent.proc.terminate()  # the agent dies before the task reaches it
        agent.proc.wait(15)
        task_id = service.provision(carol, admin, service.Plan(), approve=True).id
    def finished() -> Task | None:
        with stack.app.app_context():
            task = db.session.get(Task, task_id)
            return task if task.is_finished else None
    task = wait_until(finished, 60)
    assert task.state == "failed" and "agent unavailable" in task.message
    assert _status(stack, "carol") == "error"
    # the agent comes back; the reconciler finds no half workspace to leave behind
    with run_agent(agent.workdir, port=agent.port, token=agent.token, AGENT_NETWORK=agent.network):
        with stack.app.app_context():
            reconcile = service.reconcile_now("test").id
        wait_until(lambda: _finished_ok(stack, reconcile), 30)
        with stack.app.app_context():
            from app.backends import backend_for
            from app.models import Server

            backend = backend_for(db.session.scalar(select(Server)))
            assert [c.name for c in backend.list_managed()] == []
            ws = db.session.scalar(select(Workspace).where(Workspace.username == "carol"))
            boss = db.session.scalar(select(User).where(User.username == "boss"))
            retry = service.request(ws, "recreate", boss).id
        wait_until(lambda: _finished_ok(stack, retry), 60)
        assert _status(stack, "carol") == "running"


def _finished_ok(stack: Stack, task_id: int) -> bool:
    with stack.app.app_context():
        task = db.session.get(Task, task_id)
        assert task.state != "failed", task.message
        return task.state == "succeeded"


WORKSPACE_IMAGE = os.environ.get("SLIPWAY_WORKSPACE_IMAGE", "slipway/workspace:latest")


def _real_image_ready() -> None:
    import subprocess

    from tests.support import IN_CI
    from tests.wsstack import ROOT

    have = subprocess.run(["docker", "image", "inspect", WORKSPACE_IMAGE], capture_output=True, check=False)
    if have.returncode == 0:
        return
    if not IN_CI:
        pytest.skip(f"{WORKSPACE_IMAGE} is not built (make images)")
    subprocess.run(["bash", str(ROOT / "docker/images/build-workspace-image.sh")], check=True, timeout=1500,
                   env={**os.environ, "WORKSPACE_IMAGE": WORKSPACE_IMAGE})


@pytest.mark.slow
def test_real_workspace_image_through_nginx(stack: Stack) -> None:
    """code-server and JupyterLab, WebSockets included, in Chromium through nginx, owner check and gate."""
    require_service("Chromium + playwright", _playwright_available())
    _real_image_ready()
    from playwright.sync_api import sync_playwright

    with stack.app.app_context():
        admin = make_user("boss", role="admin")
        dana = make_user("dana", status="pending")
        service.provision(dana, admin, service.Plan(image=WORKSPACE_IMAGE, cpu=1.0, memory_mb=1024),
                          approve=True)
    wait_until(lambda: _status(stack, "dana") == "running", 120)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_context().new_page()
            frames: dict[str, int] = {}  # WebSocket URL -> frames received (through edge and gate)

            def watch(ws) -> None:
                ws.on("framereceived", lambda _payload: frames.__setitem__(ws.url, frames.get(ws.url, 0) + 1))

            page.on("websocket", watch)
            _login(page, stack, "dana")
            page.goto(f"{stack.web}/workspaces/open/vscode")
            wait_until(lambda: "vs/workbench" in _reload(page), 90, every=0.5)
            assert page.url.startswith(stack.host_url("dana", "vscode", ""))
            vscode_ws = stack.host_url("dana", "vscode", "/").replace("http://", "ws://")
            # Playwright delivers events only while it runs: wait_for_timeout lets them in.
            wait_until(lambda: page.wait_for_timeout(250) or any(u.startswith(vscode_ws) for u in frames), 60)
            page.goto(f"{stack.web}/workspaces/open/jupyter")
            page.goto(stack.host_url("dana", "jupyter", "/lab"))
            wait_until(lambda: "JupyterLab" in _reload(page), 90, every=0.5)
            assert page.evaluate(KERNEL_ROUND_TRIP) == "kernel_info_reply"
        finally:
            browser.close()


# Start a kernel over JupyterLab's REST API and ask it for its info over the kernel WebSocket.
KERNEL_ROUND_TRIP = """async () => {
  const xsrf = (document.cookie.match(/_xsrf=([^;]+)/) || [])[1] || "";
  const made = await fetch("/api/kernels", {method: "POST", body: "{}",
    headers: {"Content-Type": "application/json", "X-XSRFToken": decodeURIComponent(xsrf)}});
  const kernel = await made.json();
  return await new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://${location.host}/api/kernels/${kernel.id}/channels`);
    setTimeout(() => reject(new Error("no kernel reply within 60 s")), 60000);
    ws.onerror = () => reject(new Error("the kernel WebSocket failed"));
    ws.onopen = () => ws.send(JSON.stringify({channel: "shell", metadata: {}, content: {}, parent_header: {},
      header: {msg_id: "slipway-1", msg_type: "kernel_info_request", username: "", session: "slipway",
               date: new Date().toISOString(), version: "5.3"}}));
    ws.onmessage = (event) => {
      const message = JSON.parse(event.data);
      if (message.header.msg_type === "kernel_info_reply") { ws.close(); resolve(message.header.msg_type); }
    };
  });
}"""


def _reload(page) -> str:
    """The page's HTML after a reload (the apps take seconds to start)."""
    page.reload()
    page.wait_for_load_state()
    return page.content()
