"""The edge's route lines: hostile values never reach an edge; hosts parse back."""

from __future__ import annotations

import pytest

from app.routing.edge_server import edge_settings
from app.routing.nginx import (
    RouteError,
    WorkspaceRoutes,
    parse_workspace_host,
    route_lines,
    table_text,
    workspace_host,
)

SETTINGS = {"WORKSPACE_DOMAIN": "ws.localhost:8080", "EDGE_BIND": "127.0.0.1", "EDGE_PORT": 8080,
            "LISTEN_HOST": "127.0.0.1", "LISTEN_PORT": 8000, "EDGE_DIR": "/tmp/edge"}


def render_routes(routes: list[WorkspaceRoutes], settings: dict) -> str:
    """The full table for `routes` after the edge settings it would run with are checked."""
    edge_settings(settings)
    return table_text(routes)


SECRET = "s3cret-Token_0123456789abcdef"


def test_renders_one_full_table_line_per_workspace() -> None:
    text = render_routes(
        [WorkspaceRoutes("alice", "127.0.0.1", 4001, 4002, SECRET),
         WorkspaceRoutes("bob", None, 4003, 4004, SECRET), WorkspaceRoutes("carol", "127.0.0.1", 4005, 4006)],
        SETTINGS,
    )
    assert text.splitlines() == [
        "replace",
        f"put alice 127.0.0.1 4001 4002 {SECRET}",
        "stop bob",  # a stopped workspace's secret is not sent at all
        "put carol 127.0.0.1 4005 4006 -",  # made before the gate existed
    ]
    assert edge_settings(SETTINGS)["listen"] == "127.0.0.1:8080"
    assert edge_settings(SETTINGS)["admin_listen"].startswith("127.0.0.1:")  # loopback, whatever the bind


@pytest.mark.parametrize("secret", ["short", "a" * 20 + '";}', "a" * 20 + "\n", "a" * 20 + "|b",
                                    "a" * 20 + " ", "a" * 129, "ä" * 20, "a" * 20 + "$host"])
def test_hostile_gate_secrets_are_refused(secret: str) -> None:
    with pytest.raises(RouteError):
        render_routes([WorkspaceRoutes("alice", "127.0.0.1", 4001, 4002, secret)], SETTINGS)


HOSTILE_NAMES = [
    "a;}",
    "bob\n}",
    "bob\nserver {",
    "$host",
    "bob$host",
    "аlice",  # Cyrillic a
    "alice\u200b",
    "ALICE",
    "al ice",
    "bob;",
    "b",
    "-bob",
    "bob-",
    "bo--b",
    "x" * 40,
    "bob\n",
]


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_hostile_usernames_are_refused(name: str) -> None:
    with pytest.raises(RouteError):
        render_routes([WorkspaceRoutes(name, "127.0.0.1", 4001, 4002)], SETTINGS)


@pytest.mark.parametrize(
    "host, port",
    [
        ("127.0.0.1;}", 4001),
        ("evil.example\n", 4001),
        ("$host", 4001),
        ("exаmple.com", 4001),
        ("::1%;}", 4001),
        ("fe80::1%eth0", 4001),
        ("127.0.0.1", 0),
        ("127.0.0.1", 70000),
        ("127.0.0.1", "4001;"),
        ("127.0.0.1", True),
        ("127.0.0.1", None),
    ],
)
def test_hostile_upstreams_are_refused(host: object, port: object) -> None:
    with pytest.raises(RouteError):
        render_routes([WorkspaceRoutes("alice", host, port, 4002)], SETTINGS)  # type: ignore[arg-type]
    with pytest.raises(RouteError):
        render_routes([WorkspaceRoutes("alice", host, 4001, port)], SETTINGS)  # type: ignore[arg-type]


def test_bad_domain_and_duplicates_are_refused() -> None:
    alice = WorkspaceRoutes("alice", "127.0.0.1", 4001, 4002)
    with pytest.raises(RouteError):
        render_routes([alice], {**SETTINGS, "WORKSPACE_DOMAIN": "a;b"})
    with pytest.raises(RouteError):
        render_routes([alice, WorkspaceRoutes("alice")], SETTINGS)


def test_ipv6_and_dns_upstreams() -> None:
    text = render_routes(
        [WorkspaceRoutes("alice", "::1", 4001, 4002), WorkspaceRoutes("bob", "localhost", 4003, 4004)],
        SETTINGS,
    )
    # The edge's balancer connects to addresses: a name is resolved when the table is made.
    assert "put alice [::1] 4001 4002 -" in text
    assert "put bob 127.0.0.1 4003 4004 -" in text or "put bob [::1] 4003 4004 -" in text
    with pytest.raises(RouteError):
        route_lines([WorkspaceRoutes("bob", "no-such-host.invalid", 4003, 4004)])


def test_workspace_host_round_trip() -> None:
    host = workspace_host("alice-b", "jupyter", "ws.localhost:8080")
    assert host == "alice-b-jupyter.ws.localhost"
    assert parse_workspace_host(host + ":8080", "ws.localhost:8080") == ("alice-b", "jupyter")
    assert parse_workspace_host("ALICE-B-JUPYTER.ws.localhost", "ws.localhost:8080") == ("alice-b", "jupyter")
    assert parse_workspace_host("alice-shell.ws.localhost", "ws.localhost:8080") is None
    assert parse_workspace_host("alice-vscode.evil.localhost", "ws.localhost:8080") is None
    assert parse_workspace_host("alice-vscode.xws.localhost", "ws.localhost:8080") is None
