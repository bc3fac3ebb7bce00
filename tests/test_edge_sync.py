"""The edge's in-memory table: loaded from the web app at start, healed by its pull, pushes signed."""

from __future__ import annotations

import http.client
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import pytest

from app.routing.edge_server import start_edge, stop_edge
from app.routing.nginx import WorkspaceRoutes, table_text
from app.routing.push import push
from app.routing.signing import SIGNATURE_HEADER, SignatureError, ensure_key_file, load_keys, sign, verify
from tests.agent.helpers import free_port
from tests.edgekit import NGINX_BIN, edge_dir, get, nginx_available, stub_server, text_server
from tests.support import require_service

pytestmark = pytest.mark.integration


class WebApp:
    """A stand-in web app: the owner check passes `who=owner`, the table is served to signed requests only."""

    def __init__(self, key_file: Path) -> None:
        self.key_file = key_file
        self.routes: list[WorkspaceRoutes] = []
        self.table_requests = 0
        self.refused = 0

    def __call__(self, handler: Any) -> tuple[int, dict[str, str], bytes]:
        path = handler.path
        if path == "/workspaces/_edge/routes":
            try:
                verify(load_keys(self.key_file), handler.headers.get(SIGNATURE_HEADER), "GET", path)
            except SignatureError:
                self.refused += 1
                return 401, {}, b""
            self.table_requests += 1
            return 200, {"Content-Type": "text/plain"}, table_text(self.routes).encode()
        if path.startswith("/workspaces/_auth"):
            return (200 if "who=owner" in handler.headers.get("Cookie", "") else 401), {}, b""
        if path.startswith("/workspaces/edge/stopped"):
            return 200, {"Content-Type": "text/plain"}, b"workspace is stopped"
        return 404, {}, b""


@contextmanager
def running_edge(folder: Path, web_port: int, key_file: Path,
                 sync_seconds: int = 1) -> Iterator[dict[str, Any]]:
    """One edge nginx with its own run folder and admin port, sharing `key_file`."""
    settings = {
        "EDGE_DIR": folder, "EDGE_BIND": "127.0.0.1", "EDGE_PORT": free_port(),
        "EDGE_ADMIN_PORT": free_port(),
        "EDGE_KEY_FILE": key_file, "EDGE_SYNC_SECONDS": sync_seconds, "NGINX_BIN": NGINX_BIN,
        "LISTEN_HOST": "127.0.0.1", "LISTEN_PORT": web_port, "WORKSPACE_DOMAIN": "ws.localhost:8080",
    }
    process = start_edge(settings, workers=2)
    try:
        yield {**settings, "admin_url": f"http://127.0.0.1:{settings['EDGE_ADMIN_PORT']}"}
    finally:
        stop_edge(process)


@pytest.fixture
def world() -> Iterator[dict[str, Any]]:
    """A key file, a stand-in web app and a folder for edges."""
    require_service("nginx", nginx_available())
    with edge_dir() as folder:
        key_file = folder / "edge.key"
        ensure_key_file(key_file)
        web = WebApp(key_file)
        with stub_server(web) as web_port:
            yield {"folder": folder, "key_file": key_file, "web": web, "web_port": web_port}


def _body(edge: dict[str, Any], host: str) -> tuple[int, str]:
    status, _, body = get(edge["EDGE_PORT"], host, "/", {"Cookie": "who=owner"})
    return status, body


def _until(edge: dict[str, Any], host: str, expect: tuple[int, str], seconds: float = 5) -> float:
    """Seconds until `host` answers `expect` (fails after `seconds`)."""
    started = time.monotonic()
    while (seen := _body(edge, host)) != expect:
        assert time.monotonic() - started < seconds, seen
        time.sleep(0.01)
    return time.monotonic() - started


def test_a_restarted_edge_recovers_every_route_from_the_web_app(world: dict[str, Any]) -> None:
    with text_server("alice's vscode") as a, text_server("bob's jupyter") as b:
        world["web"].routes = [WorkspaceRoutes("alice", "127.0.0.1", a, b),
                               WorkspaceRoutes("bob", "127.0.0.1", a, b), WorkspaceRoutes("carol")]
        for run in range(2):  # a fresh nginx each time: nothing survives in memory
            with running_edge(world["folder"] / f"edge{run}", world["web_port"], world["key_file"]) as edge:
                _until(edge, "alice-vscode.ws.localhost", (200, "alice's vscode"))
                assert _body(edge, "bob-jupyter.ws.localhost") == (200, "bob's jupyter")
                assert _body(edge, "carol-vscode.ws.localhost") == (200, "workspace is stopped")
                assert _body(edge, "dave-vscode.ws.localhost")[0] == 404
    assert world["web"].table_requests >= 2 and world["web"].refused == 0


def test_two_edges_converge_and_a_lost_push_heals_by_the_pull(world: dict[str, Any]) -> None:
    with text_server("first") as first, text_server("second") as second, ExitStack() as stack:
        world["web"].routes = [WorkspaceRoutes("alice", "127.0.0.1", first, first)]
        edges = [stack.enter_context(running_edge(world["folder"] / f"edge{i}", world["web_port"],
                                                  world["key_file"], sync_seconds=2)) for i in range(2)]
        for edge in edges:
            _until(edge, "alice-vscode.ws.localhost", (200, "first"))
        # The change is pushed to both: both serve it at once.
        world["web"].routes = [WorkspaceRoutes("alice", "127.0.0.1", second, second)]
        result = push([f"put alice 127.0.0.1 {second} {second} -"], [e["admin_url"] for e in edges],
                      world["key_file"])
        assert (result.changed, result.refused, result.unreachable) == (2, [], [])
        for edge in edges:
            assert _body(edge, "alice-vscode.ws.localhost") == (200, "second")
        # A change whose push is lost (only the web app knows it) reaches both within a sync period.
        world["web"].routes = [WorkspaceRoutes("alice")]
        for edge in edges:
            assert _until(edge, "alice-vscode.ws.localhost", (200, "workspace is stopped"), seconds=6) < 6


def _post(edge: dict[str, Any], body: bytes, signature: str | None) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", edge["EDGE_ADMIN_PORT"], timeout=5)
    try:
        conn.request("POST", "/routes", body=body, headers={SIGNATURE_HEADER: signature} if signature else {})
        response = conn.getresponse()
        return response.status, response.read().decode()
    finally:
        conn.close()


HOSTILE_LINES = [
    "put alice 127.0.0.1;} 4001 4002 -",
    "put alice 127.0.0.1 4001 4002 -\nput bob evil.example 1 2 -",
    "put alice 10.0.0.1 0 4002 -",
    "put alice 10.0.0.1 70000 4002 -",
    "put alice 999.0.0.1 4001 4002 -",
    "put alice [::1%eth0] 4001 4002 -",
    "put $host 127.0.0.1 4001 4002 -",
    "put ALICE 127.0.0.1 4001 4002 -",
    "put al--ice 127.0.0.1 4001 4002 -",
    "put alice 127.0.0.1 4001 4002 short",
    "put alice 127.0.0.1 4001 4002 " + "a" * 20 + '";',
    "put alice 127.0.0.1 4001 4002 - extra",
    "stop",
    "drop alice",
]


def test_the_admin_listener_refuses_unsigned_forged_replayed_and_hostile_pushes(world: dict) -> None:
    with text_server("kept") as up:
        world["web"].routes = [WorkspaceRoutes("alice", "127.0.0.1", up, up)]
        with running_edge(world["folder"] / "edge", world["web_port"], world["key_file"], 60) as edge:
            _until(edge, "alice-vscode.ws.localhost", (200, "kept"))
            keys = load_keys(world["key_file"])
            stop = b"stop alice\n"
            assert _post(edge, stop, None)[0] == 401
            assert _post(edge, stop, sign(["f" * 64], "POST", "/routes", stop))[0] == 401
            assert _post(edge, stop, sign(keys, "POST", "/routes", b"del alice\n"))[0] == 401  # another body
            assert _post(edge, stop, sign(keys, "GET", "/routes", stop))[0] == 401
            stale = sign(keys, "POST", "/routes", stop)
            stamp, nonce, _ = stale.split(".")
            assert _post(edge, stop, f"{int(stamp) - 600}.{nonce}.{'0' * 64}")[0] == 401
            for line in HOSTILE_LINES:
                body = ("replace\n" + line + "\n").encode()
                status, text = _post(edge, body, sign(keys, "POST", "/routes", body))
                assert status == 400, (line, status, text)
            # The public listener has no way to the admin endpoint.
            conn = http.client.HTTPConnection("127.0.0.1", edge["EDGE_PORT"], timeout=5)
            conn.request("POST", "/routes", body=stop, headers={
                "Host": "alice-vscode.ws.localhost", SIGNATURE_HEADER: sign(keys, "POST", "/routes", stop)})
            answer = conn.getresponse()
            assert answer.status != 200 or answer.read() == b"kept"
            conn.close()
            assert _body(edge, "alice-vscode.ws.localhost") == (200, "kept")
            # A valid push works once; the very same request again is a replay.
            signature = sign(keys, "POST", "/routes", stop)
            status, text = _post(edge, stop, signature)
            assert status == 200 and text.startswith("ok 1 ")
            assert _post(edge, stop, signature)[0] == 401
            assert _body(edge, "alice-vscode.ws.localhost") == (200, "workspace is stopped")


def test_a_rotated_key_is_accepted_with_the_previous_one_during_the_overlap(world: dict[str, Any]) -> None:
    old = load_keys(world["key_file"])
    new = "b" * 64
    world["key_file"].write_text(f"{new}\n{old[0]}\n")  # new key on top, the previous kept
    with text_server("up") as up:
        world["web"].routes = [WorkspaceRoutes("alice", "127.0.0.1", up, up)]
        with running_edge(world["folder"] / "edge", world["web_port"], world["key_file"], 60) as edge:
            _until(edge, "alice-vscode.ws.localhost", (200, "up"))
            stop = b"stop alice\n"
            assert _post(edge, stop, sign(old, "POST", "/routes", stop))[0] == 200
            assert _post(edge, stop, sign([new], "POST", "/routes", stop))[0] == 200
            assert _post(edge, stop, sign(["c" * 64], "POST", "/routes", stop))[0] == 401


def test_a_reload_of_the_edge_itself_keeps_the_table(world: dict[str, Any]) -> None:
    from app.routing.edge_server import reload_edge

    with text_server("still here") as up:
        with running_edge(world["folder"] / "edge", world["web_port"], world["key_file"], 60) as edge:
            # Only the push knows this route (after the edge's first pull): the table must survive the reload.
            deadline = time.monotonic() + 5
            while world["web"].table_requests == 0:
                assert time.monotonic() < deadline
                time.sleep(0.02)
            time.sleep(0.3)  # the pull's answer applied
            result = push([f"put alice 127.0.0.1 {up} {up} -"], [edge["admin_url"]], world["key_file"])
            assert result.changed == 1
            _until(edge, "alice-vscode.ws.localhost", (200, "still here"))
            assert reload_edge({**edge, "NGINX_BIN": NGINX_BIN}) is True
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:  # old and new workers both answer from the same zone
                assert _body(edge, "alice-vscode.ws.localhost") == (200, "still here")
                time.sleep(0.05)
