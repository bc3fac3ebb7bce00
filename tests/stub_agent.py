"""A tiny threaded stub of the agent's HTTP API for tests and benchmarks (loopback only).

`StubAgent(token, mode=...)` listens on a free 127.0.0.1 port. Modes: "ok" answers at once,
"slow" sleeps `delay` seconds first, "down" answers 503 (Docker down), "dead" is a port with
nothing listening. It checks the HMAC signature like the real agent and counts requests.
`events` is the agent's own event buffer class: tests add events and `GET /api/events` serves them.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from agent.events import EventBuffer
from agent.signing import NonceCache, verify

STATS = {
    "cpu_percent": 12.5,
    "load": [0.5, 0.4, 0.3],
    "memory": {"total": 8 * 1024**3, "used": 2 * 1024**3, "percent": 25.0},
    "disk": {"path": "/", "total": 100 * 1024**3, "used": 40 * 1024**3, "percent": 40.0},
    "containers": {"running": 2, "total": 3},
    "images": 4,
    "docker_version": "stub",
    "cpu_count": 4,
}


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:  # quiet
        pass

    def _answer(self, status: int, success: bool, message: str, data: Any = None) -> None:
        body = json.dumps({"success": success, "message": message, "data": data}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _handle(self, method: str) -> None:
        stub = self.server.stub
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        with stub.lock:
            stub.requests.append((method, self.path))
        if stub.mode == "slow":
            time.sleep(stub.delay)
        if self.path == "/health":
            self._answer(200, True, "ok", {})
            return
        if not verify(stub.token, method, self.path, dict(self.headers.items()),
                      hashlib.sha256(body).hexdigest(), nonce_cache=stub.nonces):
            self._answer(401, False, "unauthorized")
            return
        if stub.mode == "down":
            self._answer(503, False, "Docker is not reachable")
            return
        path = self.path.split("?")[0]
        if path == "/get_system_stats":
            self._answer(200, True, "ok", stub.stats)
        elif path == "/api/events" and method == "GET":
            from urllib.parse import parse_qs

            query = parse_qs(self.path.partition("?")[2])
            after, limit = int(query.get("after", ["0"])[0]), int(query.get("limit", ["500"])[0])
            self._answer(200, True, "ok", stub.events.read(after, min(limit, 1000)))
        elif path == "/api/containers" and method == "GET":
            self._answer(200, True, "ok", stub.containers)
        elif path.startswith("/api/containers/missing"):
            self._answer(404, False, "container missing not found")
        elif path == "/api/containers" and method == "POST":
            self._answer(409, False, "name already in use")
        else:
            self._answer(404, False, "no such endpoint")

    def do_GET(self) -> None:  # noqa: N802
        self._handle("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._handle("POST")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128
    stub: StubAgent

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that gave up (timeout) is expected here

    def get_request(self) -> tuple[socket.socket, Any]:
        conn, addr = super().get_request()
        with self.stub.lock:
            self.stub.connections.append(conn)
        return conn, addr


class StubAgent:
    """One stub agent; `url` is its base URL. Use as a context manager or call `stop()`."""

    def __init__(self, token: str, mode: str = "ok", delay: float = 5.0) -> None:
        self.token = token
        self.mode = mode
        self.delay = delay
        self.stats: dict[str, Any] = json.loads(json.dumps(STATS))
        self.containers: list[dict[str, Any]] = []
        self.events = EventBuffer(10_000)
        self.requests: list[tuple[str, str]] = []
        self.lock = threading.Lock()
        self.nonces = NonceCache()
        self.connections: list[socket.socket] = []
        self._server: _Server | None = None
        if mode == "dead":
            probe = socket.socket()
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
            probe.close()  # nothing listens here any more: connection refused
        else:
            self._server = _Server(("127.0.0.1", 0), _Handler)
            self._server.stub = self
            self.port = self._server.server_address[1]
            threading.Thread(target=self._server.serve_forever, args=(0.2,), daemon=True).start()
        self.url = f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        """Stop listening."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        with self.lock:
            for conn in self.connections:  # end keep-alive connections too, like a dead process
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            self.connections.clear()

    def __enter__(self) -> StubAgent:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main() -> None:
    """`python -m tests.stub_agent COUNT DEAD_FRACTION SLOW_FRACTION DELAY`: run a fleet of stubs.

    Prints one JSON line per stub ({"url", "mode"}), then "ready", and serves until stdin closes.
    """
    import sys

    count, dead, slow, delay = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
    token = sys.argv[5] if len(sys.argv) > 5 else "b" * 40
    n_dead, n_slow = round(count * dead), round(count * slow)
    modes = ["dead"] * n_dead + ["slow"] * n_slow + ["ok"] * (count - n_dead - n_slow)
    # live stubs first, so no "dead" port is handed to a live stub by the OS afterwards
    stubs = [StubAgent(token, mode=mode, delay=delay) for mode in modes if mode != "dead"]
    stubs += [StubAgent(token, mode="dead") for _ in range(n_dead)]
    for stub in stubs:
        print(json.dumps({"url": stub.url, "mode": stub.mode}))
    print("ready", flush=True)
    sys.stdin.read()
    os._exit(0)  # stopping 500 servers one by one is slow; the process ending closes every socket


if __name__ == "__main__":
    main()
