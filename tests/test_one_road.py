"""One road to the agents: one way to get a client, no task importing a view, one error hierarchy."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from app.agent_client import AgentClient
from tests.builders import make_server

APP = Path(__file__).resolve().parents[1] / "app"


def _modules() -> list[Path]:
    return sorted(APP.rglob("*.py"))


def _imported(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _is_view_module(name: str) -> bool:
    last = name.rsplit(".", 1)[-1]
    return name.startswith("app.") and (last == "routes" or last.endswith("_routes"))


TASK_MODULES = [p for p in _modules() if p.name == "handlers.py" or p.parent.name == "worker"]


@pytest.mark.parametrize("path", TASK_MODULES, ids=lambda p: str(p.relative_to(APP)))
def test_no_task_module_imports_a_view_module(path):
    views = sorted(name for name in _imported(path) if _is_view_module(name))
    assert views == [], f"{path} imports view modules {views}"


def test_clients_are_built_only_by_for_server():
    direct = []
    for path in _modules():
        if path.parts[-2] == "agent_client":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "AgentClient":
                direct.append(f"{path.relative_to(APP)}:{node.lineno}")
    assert direct == []


def test_agent_errors_are_not_mirrored_by_a_second_hierarchy():
    suffixes = ("Error", "Unavailable", "NotFound", "Conflict")
    mirrors = [
        f"{path.relative_to(APP)}:{node.name}"
        for path in _modules() if path.parts[-2] != "agent_client"
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.ClassDef) and node.name.startswith(("Agent", "Backend"))
        and node.name.endswith(suffixes)
    ]
    assert mirrors == []


def test_for_server_takes_timeouts_as_arguments_and_defaults_to_config(app):
    with app.app_context():
        server = make_server("road")
        config = app.config
        default = AgentClient.for_server(server)
        assert default.timeout == (config["AGENT_CONNECT_TIMEOUT"], config["AGENT_READ_TIMEOUT"])
        assert default.retries == config["AGENT_RETRIES"]
        streaming = AgentClient.for_server(server, connect_timeout=1.5, read_timeout=600, retries=0)
        assert streaming.timeout == (1.5, 600) and streaming.retries == 0
        assert streaming.base_url == server.agent_url.rstrip("/")
