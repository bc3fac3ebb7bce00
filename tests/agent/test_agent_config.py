"""Agent configuration: every problem reported at once; the factory refuses an unsafe setup."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.app import create_app
from agent.config import AgentConfig


def test_defaults_from_a_good_environment() -> None:
    cfg = AgentConfig.from_env({"AGENT_TOKEN": "x" * 32, "WORKDIR_DEPLOY": "/srv/ws"})
    assert cfg.problems() == []
    assert (cfg.bind, cfg.port, cfg.host_ip) == ("127.0.0.1", 9100, "127.0.0.1")
    assert cfg.network == "slipway-workspaces"
    assert cfg.workdir_deploy == Path("/srv/ws")


def test_every_problem_is_listed() -> None:
    cfg = AgentConfig.from_env({
        "AGENT_TOKEN": "short", "AGENT_PORT": "abc", "AGENT_BIND": "not-an-ip", "AGENT_HOST_IP": "300.1.1.1",
        "WORKDIR_DEPLOY": "relative/dir", "AGENT_ALLOWED_IPS": "10.0.0.1, nonsense",
    })
    text = "\n".join(cfg.problems())
    for expected in ("AGENT_PORT must be an integer", "AGENT_TOKEN must be at least 32", "AGENT_BIND",
                     "AGENT_HOST_IP", "WORKDIR_DEPLOY must be an absolute path", "'nonsense'"):
        assert expected in text
    assert AgentConfig.from_env({"AGENT_TOKEN": "short", "AGENT_DEV": "true"}).problems() == []
    wildcard = AgentConfig.from_env({"AGENT_TOKEN": "x" * 32, "AGENT_HOST_IP": "0.0.0.0"}).problems()
    assert wildcard and "AGENT_HOST_IP must be one address" in wildcard[0]


def test_factory_refuses_a_short_token_and_builds_without_touching_docker() -> None:
    with pytest.raises(ValueError, match="AGENT_TOKEN"):
        create_app(AgentConfig(token="short"))
    app = create_app(AgentConfig(token="x" * 40))
    response = app.test_client().get("/get_system_stats")
    assert response.status_code == 401
    assert app.test_client().get("/health").get_json() == {"success": True, "message": "ok", "data": {}}
    assert app.test_client().get("/nope").status_code in (401, 404)
