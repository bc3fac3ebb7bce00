"""The real edge nginx: routes in memory pushed at run time, auth_request fail-closed, bad pushes refused."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app.routing.edge_server import start_edge, stop_edge
from app.routing.nginx import HANDOFF_READ_TIMEOUT_SECONDS, EdgePaths, WorkspaceRoutes, route_lines
from app.routing.push import push
from tests.agent.helpers import free_port
from tests.edgekit import (
    NGINX_BIN,
    edge_dir,
    frozen_server,
    gate_binary,
    get,
    nginx_available,
    running_gate,
    stub_server,
    text_server,
    upgrade_echo_server,
)
from tests.support import require_service

pytestmark = pytest.mark.integration


AUTH_CALLS = [0]


def _auth_answer(handler: Any) -> tuple[int, dict[str, str], bytes]:
    """A stand-in web app: the cookie `who=owner` passes, `who=other` is refused, none is 401."""
    path = handler.path
    if path.startswith("/workspaces/_auth"):
        AUTH_CALLS[0] += 1
        cookie = handler.headers.get("Cookie", "")
        status = 200 if "who=owner" in cookie else 403 if "who=other" in cookie else 401
        return status, {}, b""
    if path.startswith("/workspaces/edge/login"):
        return 302, {"Location": "http://127.0.0.1:8000/login"}, b""
    if path.startswith("/workspaces/edge/forbidden"):
        return 403, {"Content-Type": "text/plain"}, b"forbidden page"
    if path.startswith("/workspaces/edge/stopped"):
        return 200, {"Content-Type": "text/plain"}, b"workspace is stopped"
    return 404, {}, b""


@pytest.fixture
def edge() -> Iterator[dict[str, Any]]:
    """A running edge nginx whose web app is the stub above."""
    require_service("nginx", nginx_available())
    with stub_server(_auth_answer) as web_port, edge_dir() as tmp_path:
        settings = _settings(tmp_path, web_port)
        process = start_edge(settings, workers=1)
        try:
            yield {**settings, "paths": EdgePaths((tmp_path / "edge").resolve()), "process": process}
        finally:
            stop_edge(process)


def _settings(tmp_path: Path, web_port: int) -> dict[str, Any]:
    return {
        "EDGE_DIR": tmp_path / "edge", "EDGE_BIND": "127.0.0.1", "EDGE_PORT": free_port(),
        "EDGE_ADMIN_PORT": free_port(), "EDGE_KEY_FILE": tmp_path / "edge.key",
        "NGINX_BIN": NGINX_BIN, "LISTEN_HOST": "127.0.0.1", "LISTEN_PORT": web_port,
        "WORKSPACE_DOMAIN": "ws.localhost:8080",
    }


def _push(settings: dict[str, Any], lines: list[str]) -> Any:
    return push(lines, [f"http://127.0.0.1:{settings['EDGE_ADMIN_PORT']}"], settings["EDGE_KEY_FILE"])


def _apply(edge: dict[str, Any], routes: list[WorkspaceRoutes]) -> None:
    result = _push(edge, ["replace", *route_lines(routes)])
    assert not result.refused and not result.unreachable, result


def _body(edge: dict[str, Any], host: str) -> str:
    return get(edge["EDGE_PORT"], host, "/", {"Cookie": "who=owner"})[2]


def _wait_for(edge: dict[str, Any], host: str, expect: int, cookie: str = "who=owner") -> tuple[int, str]:
    """Poll until `expect` comes back 5 times in a row (old workers finish during a reload)."""
    deadline = time.monotonic() + 5
    streak = 0
    while True:
        status, _, body = get(edge["EDGE_PORT"], host, "/", {"Cookie": cookie})
        streak = streak + 1 if status == expect else 0
        if streak >= 5 or time.monotonic() > deadline:
            return status, body
        time.sleep(0.02)


def test_routes_serve_only_through_the_auth_check(edge: dict[str, Any]) -> None:
    with text_server("alice's vscode") as a, text_server("bob's jupyter") as b:
        _apply(edge, [WorkspaceRoutes("alice", "127.0.0.1", a, a), WorkspaceRoutes("bob", "127.0.0.1", b, b)])
        assert _wait_for(edge, "alice-vscode.ws.localhost", 200) == (200, "alice's vscode")
        port = edge["EDGE_PORT"]
        assert get(port, "bob-jupyter.ws.localhost:8080", "/x", {"Cookie": "who=owner"})[2] == "bob's jupyter"
        status, headers, _ = get(port, "alice-vscode.ws.localhost", "/")
        assert status == 302 and headers["location"] == "http://127.0.0.1:8000/login"
        status, headers, body = get(port, "alice-vscode.ws.localhost", "/", {"Cookie": "who=other"})
        assert status == 403 and body == "forbidden page"
        assert "nginx/" not in headers.get("server", "")
        assert get(port, "carol-vscode.ws.localhost", "/", {"Cookie": "who=owner"})[0] == 404


def test_stopped_workspace_shows_the_stopped_page(edge: dict[str, Any]) -> None:
    _apply(edge, [WorkspaceRoutes("alice")])
    assert _wait_for(edge, "alice-vscode.ws.localhost", 200) == (200, "workspace is stopped")


def test_web_app_down_fails_closed() -> None:
    require_service("nginx", nginx_available())
    with edge_dir() as tmp_path:
        _check_fails_closed(tmp_path)


def _check_fails_closed(tmp_path: Path) -> None:
    settings = _settings(tmp_path, free_port())
    process = start_edge(settings, workers=1)
    try:
        with text_server("secret") as a:
            _apply(settings, [WorkspaceRoutes("alice", "127.0.0.1", a, a)])
            status, _, body = get(settings["EDGE_PORT"], "alice-vscode.ws.localhost", "/",
                                  {"Cookie": "who=owner"})
            assert status >= 500 and "secret" not in body
    finally:
        stop_edge(process)


def test_a_refused_push_keeps_the_previous_routes_serving(edge: dict[str, Any]) -> None:
    with text_server("old route") as a:
        _apply(edge, [WorkspaceRoutes("alice", "127.0.0.1", a, a)])
        assert _wait_for(edge, "alice-vscode.ws.localhost", 200) == (200, "old route")
        moved = f"put alice 127.0.0.1 {a + 1} {a + 1} -"
        result = _push(edge, ["replace", moved, "put bob 127.0.0.1;} 1 2 -"])
        assert result.refused and "bad line 3" in result.refused[0]
        assert _body(edge, "alice-vscode.ws.localhost") == "old route"


def test_route_change_is_served_without_reload(edge: dict[str, Any]) -> None:
    with text_server("first") as a, text_server("second") as b:
        _apply(edge, [WorkspaceRoutes("alice", "127.0.0.1", a, a)])
        assert _wait_for(edge, "alice-vscode.ws.localhost", 200)[1] == "first"
        _apply(edge, [WorkspaceRoutes("alice", "127.0.0.1", b, b)])
        deadline = time.monotonic() + 5
        while _body(edge, "alice-vscode.ws.localhost") != "second":
            assert time.monotonic() < deadline
            time.sleep(0.02)


def test_websocket_upgrade_passes_through(edge: dict[str, Any]) -> None:
    with upgrade_echo_server() as ws_port:
        _apply(edge, [WorkspaceRoutes("alice", "127.0.0.1", ws_port, ws_port)])
        time.sleep(0.3)
        with socket.create_connection(("127.0.0.1", edge["EDGE_PORT"]), timeout=5) as sock:
            sock.sendall(b"GET /socket HTTP/1.1\r\nHost: alice-vscode.ws.localhost\r\nCookie: who=owner\r\n"
                         b"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                         b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
            head = b""
            while b"\r\n\r\n" not in head:
                head += sock.recv(4096)
            assert head.startswith(b"HTTP/1.1 101"), head
            sock.sendall(b"ping through nginx")
            assert sock.recv(4096) == b"ping through nginx"


def test_auth_answers_are_cached_briefly_per_cookie(edge: dict[str, Any]) -> None:
    with text_server("ok") as a:
        _apply(edge, [WorkspaceRoutes("alice", "127.0.0.1", a, a)])
        assert _wait_for(edge, "alice-vscode.ws.localhost", 200)[0] == 200
        log = edge["paths"].run_dir / "logs"
        assert log.exists()
        before = AUTH_CALLS[0]
        for _ in range(20):
            assert get(edge["EDGE_PORT"], "alice-vscode.ws.localhost", "/", {"Cookie": "who=owner"})[0] == 200
        assert AUTH_CALLS[0] - before <= 1  # one subrequest at most, then cached
        assert get(edge["EDGE_PORT"], "alice-vscode.ws.localhost", "/", {"Cookie": "who=other"})[0] == 403


SECRET = "edge-secret-0123456789abcdefABCDEF"


def _gate_headers_seen(handler: Any) -> tuple[int, dict[str, str], bytes]:
    """An upstream that answers with every X-Slipway-Gate value it received, one per line."""
    values = handler.headers.get_all("X-Slipway-Gate") or []
    return 200, {"Content-Type": "text/plain"}, ("seen:" + "\n".join(values)).encode()


def test_the_edge_sends_the_secret_and_drops_any_client_copy(edge: dict[str, Any]) -> None:
    with stub_server(_gate_headers_seen) as up:
        _apply(edge, [WorkspaceRoutes("alice", "127.0.0.1", up, up, SECRET),
                      WorkspaceRoutes("bob", "127.0.0.1", up, up)])
        assert _wait_for(edge, "alice-vscode.ws.localhost", 200)[0] == 200
        port = edge["EDGE_PORT"]
        for forged in ({}, {"X-Slipway-Gate": "forged"}, {"x-slipway-gate": SECRET[:-1]}):
            status, headers, body = get(port, "alice-jupyter.ws.localhost", "/",
                                        {"Cookie": "who=owner", **forged})
            assert (status, body) == (200, f"seen:{SECRET}")
            assert SECRET not in str(headers)  # never sent back to the browser
        # A route without a secret (a container older than the gate) passes no copy along either.
        forged = {"Cookie": "who=owner", "X-Slipway-Gate": "forged"}
        assert get(port, "bob-vscode.ws.localhost", "/", forged)[2] == "seen:"


def test_workspace_answers_may_be_framed_only_by_their_own_host(edge: dict[str, Any]) -> None:
    with text_server("page") as up:
        _apply(edge, [WorkspaceRoutes("alice", "127.0.0.1", up, up, SECRET)])
        assert _wait_for(edge, "alice-vscode.ws.localhost", 200)[0] == 200
        status, headers, _ = get(edge["EDGE_PORT"], "alice-vscode.ws.localhost", "/", {"Cookie": "who=owner"})
        assert status == 200
        assert headers["content-security-policy"] == "frame-ancestors 'self'"
        assert headers["x-content-type-options"] == "nosniff"


def _ask_with_a_frozen_web_app(path: str, headers: dict[str, str]) -> tuple[float, int, dict[str, str], str]:
    """Seconds taken, status, headers and body of alice's vscode `path` while the web app never answers."""
    require_service("nginx", nginx_available())
    with frozen_server() as web_port, edge_dir() as tmp_path, text_server("private page") as up:
        settings = _settings(tmp_path, web_port)
        process = start_edge(settings, workers=1)
        try:
            _apply(settings, [WorkspaceRoutes("alice", "127.0.0.1", up, up, SECRET)])
            started = time.monotonic()
            status, answer_headers, body = get(settings["EDGE_PORT"], "alice-vscode.ws.localhost", path,
                                               headers, timeout=30)
            elapsed = time.monotonic() - started
        finally:
            stop_edge(process)
    return elapsed, status, answer_headers, body


def test_a_frozen_web_app_fails_closed_within_seconds_with_the_edge_page() -> None:
    elapsed, status, headers, body = _ask_with_a_frozen_web_app("/", {"Cookie": "who=owner"})
    assert elapsed < 8, f"the owner check waited {elapsed:.1f} s"
    assert status == 503 and "Workspace unavailable" in body and "private page" not in body
    assert headers["content-type"].startswith("text/html")


def test_a_frozen_web_app_answers_the_hand_off_with_the_edge_page_not_a_bare_504() -> None:
    elapsed, status, headers, body = _ask_with_a_frozen_web_app("/_slipway/exchange?token=x", {})
    assert HANDOFF_READ_TIMEOUT_SECONDS - 1 < elapsed < HANDOFF_READ_TIMEOUT_SECONDS + 5, elapsed
    assert status == 503 and "Workspace unavailable" in body, (status, body[:200])
    assert headers["cache-control"] == "no-store"


@pytest.fixture
def gate(tmp_path: Path) -> Path:
    """The workspace gate, compiled from the image's source."""
    binary = gate_binary(tmp_path)
    require_service("gcc", binary is not None)
    assert binary is not None
    return binary


def _upgrade(port: int, host: str, extra: bytes = b"") -> tuple[bytes, socket.socket]:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(b"GET /socket HTTP/1.1\r\nHost: " + host.encode() + b"\r\n" + extra
                 + b"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                 b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(4096)
        if not chunk:
            break
        head += chunk
    return head, sock


def test_through_the_edge_the_gate_admits_requests_and_websockets(edge: dict[str, Any], gate: Path) -> None:
    with text_server("alice's vscode") as app_port, running_gate(gate, app_port, SECRET) as door, \
            upgrade_echo_server() as ws_app, running_gate(gate, ws_app, SECRET) as ws_door:
        # Straight to the gate: nothing without the secret, or with a wrong one.
        for headers in ({}, {"X-Slipway-Gate": "forged"}, {"X-Slipway-Gate": SECRET + "x"}):
            status, _, body = get(door, "alice-vscode.ws.localhost", "/", headers)
            assert status == 403 and "alice's vscode" not in body
        head, sock = _upgrade(ws_door, "alice-jupyter.ws.localhost")
        sock.close()
        assert head.startswith(b"HTTP/1.1 403")
        # Through the edge: the page and a WebSocket pass, even with a forged copy from the client.
        _apply(edge, [WorkspaceRoutes("alice", "127.0.0.1", door, ws_door, SECRET)])
        assert _wait_for(edge, "alice-vscode.ws.localhost", 200) == (200, "alice's vscode")
        head, sock = _upgrade(edge["EDGE_PORT"], "alice-jupyter.ws.localhost",
                              b"Cookie: who=owner\r\nX-Slipway-Gate: forged\r\n")
        with sock:
            assert head.startswith(b"HTTP/1.1 101"), head
            for message in (b"ping through nginx and the gate", b"x" * 100_000):
                sock.sendall(message)
                echoed = b""
                while len(echoed) < len(message):
                    echoed += sock.recv(65536)
                assert echoed == message


def test_the_gate_removes_its_header_before_the_app(gate: Path) -> None:
    with stub_server(_gate_headers_seen) as app_port, running_gate(gate, app_port, SECRET) as door:
        status, _, body = get(door, "alice-vscode.ws.localhost", "/", {"X-Slipway-Gate": SECRET})
        assert (status, body) == (200, "seen:")
        twice = {"X-Slipway-Gate": SECRET, "x-slipway-gate": SECRET}
        status, _, _ = get(door, "alice-vscode.ws.localhost", "/", twice)
        assert status == 403  # two copies are never the edge's


def test_the_gate_bounds_its_connections_and_recovers(gate: Path) -> None:
    with text_server("page") as app_port, running_gate(gate, app_port, SECRET) as door:
        idle = [socket.create_connection(("127.0.0.1", door), timeout=5) for _ in range(128)]
        try:
            deadline = time.monotonic() + 5
            while (status := get(door, "x", "/", {"X-Slipway-Gate": SECRET})[0]) != 503:
                assert time.monotonic() < deadline, status  # the last idle ones may still be forking
                time.sleep(0.05)
        finally:
            for sock in idle:
                sock.close()
        deadline = time.monotonic() + 5
        while get(door, "x", "/", {"X-Slipway-Gate": SECRET})[0] != 200:
            assert time.monotonic() < deadline
            time.sleep(0.05)
