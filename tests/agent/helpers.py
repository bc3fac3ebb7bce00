"""Helpers that run the real agent (`python -m agent`) on a free loopback port, for any test module.

tests/agent/conftest.py builds its fixtures on these; test modules import them from here.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import requests

from agent.signing import signed_headers

ROOT = Path(__file__).resolve().parents[2]
# Another tag lets a checkout test its own image without replacing the one other checkouts use.
TEST_IMAGE = os.environ.get("SLIPWAY_TEST_IMAGE", "slipway/test-workspace:latest")
RUN_ID = secrets.token_hex(4)
TEST_LABEL = "slipway.test"
GATE_SECRET = f"gate-{secrets.token_hex(16)}"  # what the edge would send; every `spec` container gets it
GATE = {"X-Slipway-Gate": GATE_SECRET}


def free_port() -> int:
    """A port that was free on 127.0.0.1 a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def docker_available() -> bool:
    """True when a Docker daemon answers."""
    try:
        import docker

        docker.from_env(timeout=5).ping()
        return True
    except Exception:
        return False


class AgentProcess:
    """A running agent and a signed-request helper."""

    def __init__(self, proc: subprocess.Popen, port: int, token: str, workdir: Path, network: str) -> None:
        self.proc = proc
        self.port = port
        self.token = token
        self.workdir = workdir
        self.network = network
        self.base_url = f"http://127.0.0.1:{port}"

    def call(
        self, method: str, path: str, *, json_body: object = None, body: bytes = b"",
        headers: dict | None = None, sign: bool = True, stream: bool = False, timeout: float = 60,
    ) -> requests.Response:
        """Send a request signed with the agent's token (or unsigned with sign=False)."""
        send_headers = dict(headers or {})
        if json_body is not None:
            body = json.dumps(json_body).encode()
            send_headers["Content-Type"] = "application/json"
        if sign:
            send_headers.update(signed_headers(self.token, method, path, body))
        return requests.request(
            method, self.base_url + path, data=body, headers=send_headers, stream=stream, timeout=timeout
        )

    def ndjson(self, path: str, json_body: object, timeout: float = 300) -> list[dict]:
        """POST and read a streamed NDJSON answer to the end."""
        response = self.call("POST", path, json_body=json_body, stream=True, timeout=timeout)
        assert response.status_code == 200, response.text
        assert response.headers["Content-Type"].startswith("application/x-ndjson")
        return [json.loads(line) for line in response.iter_lines() if line]


def _wait_healthy(proc: subprocess.Popen, url: str, log: Path) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"agent exited with {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            if requests.get(url + "/health", timeout=1).status_code in (200, 403):
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.1)
    proc.terminate()
    raise RuntimeError(f"agent did not answer within 20 s: {log.read_text()[-2000:]}")


def stop_process(proc: subprocess.Popen, timeout: float = 15) -> None:
    """Terminate `proc`, killing it when it does not exit within `timeout` seconds."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextlib.contextmanager
def run_agent(
    workdir: Path, *, port: int | None = None, token: str | None = None, log: Path | None = None,
    **env_overrides: str,
) -> Iterator[AgentProcess]:
    """Start `python -m agent` (by default with a fresh token on a free port); stop it afterwards."""
    port = port or free_port()
    token = token or secrets.token_urlsafe(36)
    network = env_overrides.pop("AGENT_NETWORK", f"slipway-test-{RUN_ID}")
    env = {
        **os.environ, "AGENT_TOKEN": token, "AGENT_PORT": str(port), "AGENT_BIND": "127.0.0.1",
        "WORKDIR_DEPLOY": str(workdir), "AGENT_HOST_IP": "127.0.0.1", "AGENT_NETWORK": network,
        "AGENT_STOP_TIMEOUT": "3", **env_overrides,
    }
    log = log or workdir.parent / f"agent-{port}.log"
    with open(log, "ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "agent"], cwd=ROOT, env=env, stdout=out, stderr=out)
    try:
        _wait_healthy(proc, f"http://127.0.0.1:{port}", log)
        yield AgentProcess(proc, port, token, workdir, network)
    finally:
        stop_process(proc)


def unique(prefix: str = "ws") -> str:
    """A unique container name for this run."""
    return f"slipway-t{RUN_ID}-{prefix}-{secrets.token_hex(3)}"


def wait_http(url: str, seconds: float = 10, headers: dict[str, str] | None = None) -> requests.Response:
    """GET `url` until it answers (a freshly started app needs a moment)."""
    deadline = time.monotonic() + seconds
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            return requests.get(url, timeout=2, headers=headers)
        except requests.ConnectionError as exc:
            last = exc
            time.sleep(0.1)
    raise AssertionError(f"{url} did not answer: {last}")
