"""The owner check in the edge: a signed edge cookie passes without the web app; bad ones never do."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from app.routing.edge_server import start_edge, stop_edge
from app.routing.nginx import WorkspaceRoutes, route_lines
from app.routing.push import push
from app.routing.signing import edge_cookie_value, ensure_key_file, load_keys
from tests.agent.helpers import free_port
from tests.edgekit import NGINX_BIN, edge_dir, get, nginx_available, stub_server, text_server

pytestmark = pytest.mark.integration

HOST = "alice-vscode.ws.localhost"


class Web:
    """A web app that refuses every owner check (only the edge cookie lets in) unless told to renew."""

    def __init__(self) -> None:
        self.calls = 0
        self.renewal: str | None = None

    def __call__(self, handler: Any) -> tuple[int, dict[str, str], bytes]:
        if handler.path.startswith("/workspaces/_auth"):
            self.calls += 1
            if self.renewal:
                return 200, {"X-Slipway-Edge-Cookie": self.renewal}, b""
            return 401, {}, b""
        if handler.path.startswith("/workspaces/edge/login"):
            return 302, {"Location": "http://127.0.0.1:8000/login"}, b""
        return 404, {}, b""


@pytest.fixture
def edge() -> Iterator[dict[str, Any]]:
    """An edge serving alice's workspace, its web app the stub above."""
    require_nginx()
    web = Web()
    with edge_dir() as folder, stub_server(web) as web_port, text_server("alice's page") as up:
        key_file = folder / "edge.key"
        ensure_key_file(key_file)
        settings = {
            "EDGE_DIR": folder / "edge", "EDGE_BIND": "127.0.0.1", "EDGE_PORT": free_port(),
            "EDGE_ADMIN_PORT": free_port(), "EDGE_KEY_FILE": key_file, "EDGE_SYNC_SECONDS": 3600,
            "EDGE_COOKIE_MINUTES": 10, "NGINX_BIN": NGINX_BIN, "LISTEN_HOST": "127.0.0.1",
            "LISTEN_PORT": web_port, "WORKSPACE_DOMAIN": "ws.localhost:8080",
        }
        process = start_edge(settings, workers=2)
        try:
            admin = [f"http://127.0.0.1:{settings['EDGE_ADMIN_PORT']}"]
            lines = ["replace", *route_lines([WorkspaceRoutes("alice", "127.0.0.1", up, up)])]
            result = push(lines, admin, key_file)
            assert result.changed == 1
            yield {**settings, "web": web, "keys": load_keys(key_file), "admin": admin}
        finally:
            stop_edge(process)


def require_nginx() -> None:
    from tests.support import require_service

    require_service("nginx", nginx_available())


def _get(edge: dict[str, Any], cookie: str, host: str = HOST) -> tuple[int, dict[str, str], str]:
    return get(edge["EDGE_PORT"], host, "/", {"Cookie": cookie})


def test_a_valid_edge_cookie_passes_without_calling_the_web_app(edge: dict[str, Any]) -> None:
    cookie = "slipway_edge=" + edge_cookie_value(edge["keys"], HOST, "alice", 7, 600)
    for _ in range(20):
        status, headers, body = _get(edge, f"other=1; {cookie}")
        assert (status, body) == (200, "alice's page")
    assert edge["web"].calls == 0
    assert headers["content-security-policy"] == "frame-ancestors 'self'"
    assert headers["x-content-type-options"] == "nosniff"


def test_forged_expired_other_host_other_user_and_huge_cookies_are_refused(edge: dict[str, Any]) -> None:
    keys = edge["keys"]
    good = edge_cookie_value(keys, HOST, "alice", 7, 600)
    bad = [
        good[:-1] + ("0" if good[-1] != "0" else "1"),  # forged signature
        edge_cookie_value(["d" * 64], HOST, "alice", 7, 600),  # another key
        edge_cookie_value(keys, HOST, "alice", 7, -5),  # expired
        edge_cookie_value(keys, "alice-jupyter.ws.localhost", "alice", 7, 600),  # another host
        edge_cookie_value(keys, HOST, "bob", 7, 600),  # another user
        good.replace("v1.alice.7.", "v1.alice.8.", 1),  # another session, same signature
        good + "0" * 5000,  # huge
    ]
    for value in bad:
        status, headers, body = _get(edge, f"slipway_edge={value}")
        assert status == 302 and headers["location"] == "http://127.0.0.1:8000/login", value
        assert "alice's page" not in body
    assert edge["web"].calls == len(bad)  # each fell back to the web app's check, which refused it


def test_a_valid_edge_cookie_behind_stale_copies_passes_without_the_web_app(edge: dict[str, Any]) -> None:
    keys = edge["keys"]
    good = "slipway_edge=" + edge_cookie_value(keys, HOST, "alice", 7, 600)
    other_host = "slipway_edge=" + edge_cookie_value(keys, "alice-jupyter.ws.localhost", "alice", 7, 600)
    expired = "slipway_edge=" + edge_cookie_value(keys, HOST, "alice", 7, -5)
    for header in (f"{other_host}; {expired}; {good}", f"{expired};{good}", f"x{good}; {good}"):
        status, _headers, body = _get(edge, header)
        assert (status, body) == (200, "alice's page"), header
    assert edge["web"].calls == 0
    status, _headers, _body = _get(edge, f"x{good}")  # not a cookie of that name: the web app decides
    assert status == 302 and edge["web"].calls == 1


WARM = 12  # requests with one cookie before a change: both edge workers have remembered its decision


def _statuses(edge: dict[str, Any], cookie: str, count: int = WARM) -> set[int]:
    return {_get(edge, cookie)[0] for _ in range(count)}


def test_a_revoked_session_is_refused_within_a_second(edge: dict[str, Any]) -> None:
    cookie = "slipway_edge=" + edge_cookie_value(edge["keys"], HOST, "alice", 7, 600)
    other = "slipway_edge=" + edge_cookie_value(edge["keys"], HOST, "alice", 8, 600)
    assert _statuses(edge, cookie) == {200} and _statuses(edge, other) == {200}
    started = time.monotonic()
    result = push(["revoke alice 7"], edge["admin"], edge["EDGE_KEY_FILE"])
    assert result.changed == 1
    while _get(edge, cookie)[0] == 200:
        assert time.monotonic() - started < 1
    assert time.monotonic() - started < 1
    assert _statuses(edge, cookie) == {302}  # every worker forgot what it had remembered
    assert _statuses(edge, other) == {200}  # the user's other session is untouched
    push(["revoke alice *"], edge["admin"], edge["EDGE_KEY_FILE"])
    assert _statuses(edge, other) == {302}


def test_a_route_change_reaches_a_cookie_that_already_passed(edge: dict[str, Any]) -> None:
    cookie = "slipway_edge=" + edge_cookie_value(edge["keys"], HOST, "alice", 7, 600)
    assert {_get(edge, cookie)[2] for _ in range(WARM)} == {"alice's page"}
    with text_server("alice's page, moved") as moved:
        push(route_lines([WorkspaceRoutes("alice", "127.0.0.1", moved, moved)]), edge["admin"],
             edge["EDGE_KEY_FILE"])
        assert {_get(edge, cookie)[2] for _ in range(WARM)} == {"alice's page, moved"}
    push(route_lines([WorkspaceRoutes("alice")]), edge["admin"], edge["EDGE_KEY_FILE"])  # stopped
    stopped = [_get(edge, cookie) for _ in range(WARM)]
    assert {status for status, _headers, _body in stopped} == {404}  # the stub web app's stopped page
    assert not any("alice's page" in body for _status, _headers, body in stopped)


def test_near_expiry_the_edge_renews_with_one_call(edge: dict[str, Any]) -> None:
    old = "slipway_edge=" + edge_cookie_value(edge["keys"], HOST, "alice", 7, 60)  # in its last third
    fresh = edge_cookie_value(edge["keys"], HOST, "alice", 7, 600)
    edge["web"].renewal = f"slipway_edge={fresh}; Max-Age=600; Path=/; HttpOnly; SameSite=Lax"
    status, headers, body = _get(edge, old)
    assert (status, body) == (200, "alice's page") and edge["web"].calls == 1
    assert headers["set-cookie"].startswith(f"slipway_edge={fresh};")
    edge["web"].renewal = None
    assert _get(edge, f"slipway_edge={fresh}")[0] == 200 and edge["web"].calls == 1
