"""Helpers for tests against the real edge nginx: free ports, stub HTTP servers, Host-header GETs.

Python's resolver does not resolve *.localhost, so requests go to 127.0.0.1 with the
workspace `Host` header, as nginx sees them from a browser.
"""

from __future__ import annotations

import http.client
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

NGINX_BIN = shutil.which("nginx") or "/usr/sbin/nginx"


def nginx_available() -> bool:
    """True when an nginx binary is installed."""
    return Path(NGINX_BIN).exists()


@contextmanager
def edge_dir() -> Iterator[Path]:
    """A run folder for the edge whose ancestors nginx's unprivileged workers can traverse."""
    path = Path(tempfile.mkdtemp(prefix="slipway-edge-", dir="/tmp"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


Answer = tuple[int, dict[str, str], bytes]


@contextmanager
def stub_server(answer: Callable[[BaseHTTPRequestHandler], Answer]) -> Iterator[int]:
    """A threaded HTTP/1.1 server on 127.0.0.1 answering every GET with `answer(handler)`."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            status, headers, body = answer(self)
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def text_server(text: str) -> Any:
    """A stub upstream that answers 200 with `text` to every GET."""
    return stub_server(lambda _h: (200, {"Content-Type": "text/plain"}, text.encode()))


def get(port: int, host: str, path: str = "/", headers: dict[str, str] | None = None,
        timeout: float = 5) -> tuple[int, dict[str, str], str]:
    """GET `path` from 127.0.0.1:`port` with the `Host` header `host`; (status, headers, body)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Host": host, **(headers or {})})
        response = conn.getresponse()
        body = response.read().decode(errors="replace")
        return response.status, {k.lower(): v for k, v in response.getheaders()}, body
    finally:
        conn.close()


@contextmanager
def upgrade_echo_server() -> Iterator[int]:
    """An upstream that accepts an HTTP Upgrade (as a WebSocket server would) and echoes bytes after it."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(0.2)
    stopping = threading.Event()

    def serve(conn: socket.socket) -> None:
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                data += chunk
            head = data.decode(errors="replace").lower()
            if "upgrade: websocket" not in head or "connection: upgrade" not in head:
                conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
                return
            conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\n"
                         b"Upgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
            while chunk := conn.recv(4096):
                conn.sendall(chunk)

    def accept() -> None:
        while not stopping.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stopping.set()
        thread.join(5)
        listener.close()


GATE_SOURCE = Path(__file__).resolve().parents[1] / "docker/images/gate/slipway-gate.c"


def gate_binary(folder: Path) -> Path | None:
    """The workspace image's gate compiled from its source into `folder`, or None without gcc."""
    if shutil.which("gcc") is None:
        return None
    binary = folder / "slipway-gate"
    subprocess.run(["gcc", "-O2", "-static", "-o", str(binary), str(GATE_SOURCE)], check=True, timeout=120)
    return binary


@contextmanager
def running_gate(binary: Path, app_port: int, secret: str) -> Iterator[int]:
    """The gate on a free loopback-reachable port in front of 127.0.0.1:`app_port`; yields its port."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen([str(binary), str(port), str(app_port)], env={"SLIPWAY_GATE_SECRET": secret},
                               stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 5
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise
                time.sleep(0.02)
        yield port
    finally:
        process.terminate()
        process.wait(5)


@contextmanager
def frozen_server() -> Iterator[int]:
    """A listening socket that accepts connections and never answers (a frozen web app)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    held: list[socket.socket] = []
    stopping = threading.Event()
    listener.settimeout(0.2)

    def accept() -> None:
        while not stopping.is_set():
            try:
                held.append(listener.accept()[0])
            except TimeoutError:
                continue
            except OSError:
                return

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stopping.set()
        thread.join(5)
        for conn in held:
            conn.close()
        listener.close()
