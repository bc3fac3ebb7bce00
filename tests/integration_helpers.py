"""Helpers for images integration tests: a real agent registered as a server, a runner thread.

- `agent_server(app, workdir)`: starts `python -m agent` (tests/agent/conftest.run_agent) on a free
  loopback port and inserts a `Server` row pointing at it; yields (server_id, AgentProcess).
- `RunnerThread(app)`: runs queued tasks in the background until stopped (a context manager).
- `registry_up()`: True when the test registry answers on 127.0.0.1:5000 (scripts/services.sh).
- `remove_images(refs)`: best-effort removal of the images a test created.
- `ensure_test_image()`: Docker must answer (skip, or fail under CI); builds the test image when missing.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import requests
from flask import Flask

from app.extensions import db
from app.models import Server
from app.security.crypto import encrypt_secret
from app.worker.runner import Runner
from tests.agent.helpers import ROOT, AgentProcess, docker_available, run_agent
from tests.support import require_service

REGISTRY = "127.0.0.1:5000"
REGISTRY_USER = "slipway"
REGISTRY_PASSWORD = "registry-test-password"  # noqa: S105 - the test registry's fixed password
TEST_IMAGE = "slipway/test-workspace:latest"


def ensure_test_image(image: str = TEST_IMAGE) -> None:
    """Require Docker (skip, or fail under CI) and build the busybox test `image` when missing or stale."""
    require_service("Docker", docker_available())
    subprocess.run(["bash", str(ROOT / "docker/images/build-test-image.sh")], check=True, capture_output=True,
                   env={**os.environ, "TEST_IMAGE": image})


def registry_up() -> bool:
    """True when the htpasswd-protected test registry answers (401 without credentials)."""
    try:
        return requests.get(f"http://{REGISTRY}/v2/", timeout=2).status_code == 401
    except requests.RequestException:
        return False


@contextlib.contextmanager
def agent_server(app: Flask, workdir: Path, name: str = "local") -> Iterator[tuple[int, AgentProcess]]:
    """A real agent plus the Server row the web app reaches it through."""
    workdir.mkdir(parents=True, exist_ok=True)
    with run_agent(workdir) as agent:
        with app.app_context():
            server = Server(name=name, agent_url=agent.base_url, publish_host="127.0.0.1", status="online",
                            token_encrypted=encrypt_secret(agent.token, "server.token"))
            db.session.add(server)
            db.session.commit()
            server_id = server.id
        yield server_id, agent


class RunnerThread:
    """The task runner polling in a background thread (as `flask worker` does)."""

    def __init__(self, app: Flask) -> None:
        self.runner = Runner(app, worker_id="images-test-runner", concurrency=2)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self.stop.is_set():
            self.runner.run_once()
            time.sleep(0.05)

    def __enter__(self) -> RunnerThread:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(30)
        self.runner._pool.shutdown(wait=True)


def wait_task(app: Flask, task_id: int, timeout: float = 120) -> object:
    """Wait until task `task_id` finishes; returns the detached row."""
    from app.models import Task

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with app.app_context():
            task = db.session.get(Task, task_id)
            if task.is_finished:
                events = list(task.events)
                db.session.expunge_all()
                task.loaded_events = [e.message for e in events]  # type: ignore[attr-defined]
                return task
        time.sleep(0.1)
    raise AssertionError(f"task {task_id} did not finish within {timeout} s")


def remove_images(*refs: str) -> None:
    """Remove images created by a test (ignore those already gone)."""
    import docker

    client = docker.from_env(timeout=60)
    for ref in refs:
        with contextlib.suppress(Exception):
            client.images.remove(ref, force=True)


__all__ = ["REGISTRY", "REGISTRY_PASSWORD", "REGISTRY_USER", "TEST_IMAGE", "docker_available"]


WEB_SCRIPT = """
import sys
from pathlib import Path
from werkzeug.serving import run_simple
from tests.support import build_app
app = build_app(sys.argv[1], Path(sys.argv[2]), UPLOAD_MAX_BYTES=int(sys.argv[4]))
run_simple("127.0.0.1", int(sys.argv[3]), app, threaded=True)
"""


@contextlib.contextmanager
def web_process(database_url: str, data_dir: Path, *, upload_max_bytes: int) -> Iterator[tuple[str, int]]:
    """The web app in its own process (so its memory can be measured); yields (base_url, pid)."""
    import subprocess
    import sys

    from tests.agent.helpers import free_port, stop_process

    port = free_port()
    root = Path(__file__).resolve().parents[1]
    log = data_dir / "web.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-c", WEB_SCRIPT, database_url, str(data_dir), str(port),
                                 str(upload_max_bytes)], cwd=root, stdout=out, stderr=out)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                requests.get(base + "/health", timeout=1)
                break
            except requests.ConnectionError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"web process did not start: {log.read_text()[-2000:]}") from None
                time.sleep(0.1)
        yield base, proc.pid
    finally:
        stop_process(proc, timeout=10)


def rss_bytes(pid: int) -> int:
    """The resident set size of process `pid`."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


class RssSampler:
    """Samples a process's RSS every 20 ms in a thread; `.peak` is the highest seen."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_bytes(self.pid))
            time.sleep(0.02)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)


class MultipartTarStream:
    """A multipart/form-data body (csrf_token, then a tar file of `size` zero bytes) made on the fly.

    File-like with a length, so `requests` streams it with a Content-Length and never holds it.
    """

    BOUNDARY = "slipwaybenchboundary7d93"
    _ZEROS = bytes(1024 * 1024)

    def __init__(self, csrf_token: str, size: int, filename: str = "guest.tar") -> None:
        import tarfile

        info = tarfile.TarInfo("disk.img")
        info.size = size
        pad = (-size) % 512
        b = self.BOUNDARY
        head = (f"--{b}\r\nContent-Disposition: form-data; name=\"csrf_token\"\r\n\r\n{csrf_token}\r\n"
                f"--{b}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\n"
                "Content-Type: application/x-tar\r\n\r\n").encode()
        self.tar_header = info.tobuf(format=tarfile.USTAR_FORMAT)
        head += self.tar_header
        self._head = head
        self._zero_count = size + pad + 1024  # file data, padding, two end-of-archive blocks
        self._tail = f"\r\n--{b}--\r\n".encode()
        self.file_bytes = len(self.tar_header) + self._zero_count
        self.length = len(head) + self._zero_count + len(self._tail)
        self._pos = 0

    @property
    def content_type(self) -> str:
        """The Content-Type header for this body."""
        return f"multipart/form-data; boundary={self.BOUNDARY}"

    def file_sha256(self) -> str:
        """The sha256 the server should record for the file part."""
        digest = hashlib.sha256(self.tar_header)
        left = self._zero_count
        while left:
            step = min(left, len(self._ZEROS))
            digest.update(self._ZEROS[:step])
            left -= step
        return digest.hexdigest()

    def __len__(self) -> int:
        return self.length

    def read(self, n: int = -1) -> bytes:
        """The next at most `n` bytes."""
        if n is None or n < 0:
            n = self.length - self._pos
        out = bytearray()
        zero_end = len(self._head) + self._zero_count
        while n > 0 and self._pos < self.length:
            if self._pos < len(self._head):
                piece = self._head[self._pos:self._pos + n]
            elif self._pos < zero_end:
                piece = self._ZEROS[:min(n, zero_end - self._pos, len(self._ZEROS))]
            else:
                start = self._pos - zero_end
                piece = self._tail[start:start + n]
            out += piece
            self._pos += len(piece)
            n -= len(piece)
        return bytes(out)


class BrowserSocket:
    """Opens a task's WebSocket stream as a browser on the app's own origin would."""

    @staticmethod
    def open(base_url: str, session: requests.Session, task_id: int) -> object:
        """A connected simple_websocket client for `/tasks/<id>/stream`, with the session's cookies."""
        from simple_websocket import Client

        class _Client(Client):
            def handshake(self) -> None:
                self.host = f"{self.host}:{self.port}"  # browsers send Host with the port
                super().handshake()

        cookies = "; ".join(f"{c.name}={c.value}" for c in session.cookies)
        url = base_url.replace("http", "ws", 1) + f"/tasks/{task_id}/stream"
        return _Client.connect(url, headers={"Cookie": cookies, "Origin": base_url})
