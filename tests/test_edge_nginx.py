"""The real edge nginx: routes from one map, auth_request fail-closed, safe swaps."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app.routing.edge_server import start_edge, stop_edge
from app.routing.nginx import EdgePaths, NginxError, WorkspaceRoutes, install, render_routes
from tests.agent.helpers import free_port
from tests.edgekit import (
    NGINX_BIN,
    edge_dir,
    get,
    nginx_available,
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
        settings = {
            "EDGE_DIR": tmp_path / "edge",
            "EDGE_BIND": "127.0.0.1",
            "EDGE_PORT": free_port(),
            "NGINX_BIN": NGINX_BIN,
            "LISTEN_HOST": "127.0.0.1",
            "LISTEN_PORT": web_port,
            "WORKSPACE_DOMAIN": "ws.localhost:8080",
        }
        process = start_edge(settings, workers=1)
        try:
            yield {**settings, "paths": EdgePaths((tmp_path / "edge").resolve()), "process": process}
        finally:
            stop_edge(process)


def _apply(edge: dict[str, Any], routes: list[WorkspaceRoutes]) -> None:
    install(render_routes(routes, edge), edge["paths"], NGINX_BIN)


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
    settings = {
        "EDGE_DIR": tmp_path / "edge", "EDGE_BIND": "127.0.0.1", "EDGE_PORT": free_port(),
        "NGINX_BIN": NGINX_BIN, "LISTEN_HOST": "127.0.0.1", "LISTEN_PORT": free_port(),
        "WORKSPACE_DOMAIN": "ws.localhost:8080",
    }
    process = start_edge(settings, workers=1)
    try:
        with text_server("secret") as a:
            install(render_routes([WorkspaceRoutes("alice", "127.0.0.1", a, a)], settings),
                    EdgePaths((tmp_path / "edge").resolve()), NGINX_BIN)
            time.sleep(0.3)
            status, _, body = get(settings["EDGE_PORT"], "alice-vscode.ws.localhost", "/",
                                  {"Cookie": "who=owner"})
            assert status >= 500 and "secret" not in body
    finally:
        stop_edge(process)


def test_failed_check_keeps_the_previous_routes_serving(edge: dict[str, Any]) -> None:
    paths: EdgePaths = edge["paths"]
    with text_server("old route") as a:
        _apply(edge, [WorkspaceRoutes("alice", "127.0.0.1", a, a)])
        assert _wait_for(edge, "alice-vscode.ws.localhost", 200) == (200, "old route")
        good = paths.routes.read_text()
        broken = good.replace("server {", "server {\n    no_such_directive on;", 1)
        with pytest.raises(NginxError) as failure:
            install(broken, paths, NGINX_BIN)
        assert "no_such_directive" in str(failure.value)
        assert paths.routes.read_text() == good
        assert not paths.candidate.exists()
        time.sleep(0.2)
        assert _body(edge, "alice-vscode.ws.localhost") == "old route"


def test_route_change_is_served_after_reload(edge: dict[str, Any]) -> None:
    with text_server("first") as a, text_server("second") as b:
        _apply(edge, [WorkspaceRoutes("alice", "127.0.0.1", a, a)])
        assert _wait_for(edge, "alice-vscode.ws.localhost", 200)[1] == "first"
        _apply(edge, [WorkspaceRoutes("alice", "127.0.0.1", b, b)])
        deadline = time.monotonic() + 5
        while _body(edge, "alice-vscode.ws.localhost") != "second":
            assert time.monotonic() < deadline
            time.sleep(0.02)


def test_websocket_upgrade_passes_through(edge: dict[str, Any]) -> None:
    import socket

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
