"""The real workspace image, started through the agent: code-server and JupyterLab answer over 127.0.0.1."""

from __future__ import annotations

import os
import subprocess
import time

import pytest
import requests

from tests.agent.helpers import GATE, ROOT
from tests.support import IN_CI

pytestmark = [pytest.mark.integration, pytest.mark.slow]

WORKSPACE_IMAGE = os.environ.get("SLIPWAY_WORKSPACE_IMAGE", "slipway/workspace:latest")


@pytest.fixture(scope="module")
def workspace_image(docker_client) -> str:
    """The real image; built (minutes) by its script when absent, which `make images` normally did."""
    try:
        docker_client.images.get(WORKSPACE_IMAGE)
    except Exception:
        if not IN_CI:
            pytest.skip(f"{WORKSPACE_IMAGE} is not built (make images)")
        script = ROOT / "docker/images/build-workspace-image.sh"
        subprocess.run(["bash", str(script)], check=True, timeout=1500,
                   env={**os.environ, "WORKSPACE_IMAGE": WORKSPACE_IMAGE})
    return WORKSPACE_IMAGE


def _page(url: str, seconds: float = 90) -> requests.Response:
    """GET with the gate secret until the app answers 200 (the apps need some seconds to start)."""
    deadline = time.monotonic() + seconds
    last: object = None
    while time.monotonic() < deadline:
        try:
            response = requests.get(url, timeout=5, headers=GATE)
            if response.status_code == 200:
                return response
            last = response.status_code
        except requests.RequestException as exc:
            last = exc
        time.sleep(0.5)
    raise AssertionError(f"{url} did not answer 200 within {seconds}s: {last}")


def test_real_workspace_serves_both_apps(agent, spec, docker_client, workspace_image) -> None:
    body = spec(image=workspace_image, cpu=1.0, memory_mb=1024)
    response = agent.call("POST", "/api/containers", json_body=body)
    assert response.status_code == 201, response.text
    data = response.json()["data"]
    try:
        vscode = _page(f"http://127.0.0.1:{data['ports']['vscode']}/")
        assert "vs/workbench" in vscode.text  # the VS Code workbench page, after code-server's redirect
        jupyter = _page(f"http://127.0.0.1:{data['ports']['jupyter']}/lab")
        assert "JupyterLab" in jupyter.text
        for port in data["ports"].values():  # the apps are up; without the edge's secret: nothing
            for path in ("/", "/lab", "/api/status"):
                refused = requests.get(f"http://127.0.0.1:{port}{path}", timeout=5, allow_redirects=False)
                assert refused.status_code == 403 and "JupyterLab" not in refused.text, (port, path)
        top = docker_client.api.top(data["id"], ps_args="-o pid,args")
        commands = [row[1] for row in top["Processes"]]
        assert any(c.startswith("slipway-gate 8080 18080") for c in commands), commands
        attrs = docker_client.api.inspect_container(data["id"])
        assert attrs["Config"]["User"] == "1000:1000"
        top = docker_client.api.top(data["id"], ps_args="-o pid,uid,comm")
        uids = {row[1] for row in top["Processes"]}
        assert uids == {"1000"}, top
        files = subprocess.run(["ls", "-ld", str(agent.workdir / body["workspace"] / ".local")],
                               capture_output=True, text=True)
        assert files.returncode == 0, "the apps write their state under the workspace folder (home)"
    finally:
        agent.call("POST", f"/api/containers/{data['id']}/delete")
