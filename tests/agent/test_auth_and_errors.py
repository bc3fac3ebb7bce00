"""Signed requests over real HTTP (401 unless properly signed), start-up refusal, 503 when Docker is down."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
import requests

from agent.signing import signed_headers
from tests.agent.helpers import ROOT, free_port

pytestmark = pytest.mark.integration


def _get(agent, path: str, headers: dict) -> requests.Response:
    return requests.get(agent.base_url + path, headers=headers, timeout=10)


def test_health_needs_no_signature_and_says_nothing(agent) -> None:
    response = requests.get(agent.base_url + "/health", timeout=5)
    assert response.status_code == 200
    assert response.json() == {"success": True, "message": "ok", "data": {}}


def test_signed_stats_answer(agent) -> None:
    response = agent.call("GET", "/get_system_stats")
    assert response.status_code == 200
    data = response.json()["data"]
    assert set(data) == {"cpu_percent", "load", "memory", "disk", "containers", "images", "docker_version"}
    assert len(data["load"]) == 3 and data["memory"]["total"] > data["memory"]["used"] > 0
    assert data["disk"]["path"] == str(agent.workdir) and data["disk"]["total"] > 0
    assert data["containers"]["total"] >= data["containers"]["running"] >= 0
    assert data["images"] >= 1 and data["docker_version"]


def test_unsigned_wrongly_signed_stale_and_replayed_requests_get_401(agent) -> None:
    path = "/get_system_stats"
    cases = {
        "unsigned": {},
        "wrong token": signed_headers("w" * 40, "GET", path),
        "stale": signed_headers(agent.token, "GET", path, now=time.time() - 120),
        "future": signed_headers(agent.token, "GET", path, now=time.time() + 120),
        "other path": signed_headers(agent.token, "GET", "/api/images"),
        "other method": signed_headers(agent.token, "POST", path),
    }
    for name, headers in cases.items():
        response = _get(agent, path, headers)
        assert response.status_code == 401, name
        assert response.json() == {"success": False, "message": "unauthorized", "data": {}}, name
    headers = signed_headers(agent.token, "GET", path)
    assert _get(agent, path, headers).status_code == 200
    assert _get(agent, path, headers).status_code == 401


def test_tampered_body_gets_401_and_changes_nothing(agent, spec, docker_client) -> None:
    body = spec()
    signed = signed_headers(agent.token, "POST", "/api/containers", b"{}")
    response = requests.post(agent.base_url + "/api/containers", json=body, headers=signed, timeout=10)
    assert response.status_code == 401
    assert not docker_client.containers.list(all=True, filters={"name": body["name"]})


def test_short_token_refuses_to_start_unless_dev(tmp_path) -> None:
    env = {**os.environ, "AGENT_TOKEN": "too-short", "AGENT_PORT": str(free_port()),
           "WORKDIR_DEPLOY": str(tmp_path)}
    env.pop("AGENT_DEV", None)
    refused = subprocess.run([sys.executable, "-m", "agent"], cwd=ROOT, env=env, capture_output=True,
                             text=True, timeout=30)
    assert refused.returncode == 2 and "AGENT_TOKEN must be at least 32 characters" in refused.stderr
    missing = subprocess.run([sys.executable, "-m", "agent"], cwd=ROOT, env={**env, "AGENT_TOKEN": ""},
                             capture_output=True, text=True, timeout=30)
    assert missing.returncode == 2 and "AGENT_TOKEN is not set" in missing.stderr


def test_dev_mode_accepts_a_short_token(start_agent) -> None:
    with start_agent(AGENT_TOKEN="short-dev-token", AGENT_DEV="true") as dev:
        assert requests.get(dev.base_url + "/health", timeout=5).status_code == 200


def test_allow_list_refuses_other_callers(start_agent) -> None:
    with start_agent(AGENT_ALLOWED_IPS="10.20.30.40/32") as closed:
        response = closed.call("GET", "/get_system_stats")
        assert response.status_code == 403
    with start_agent(AGENT_ALLOWED_IPS="10.20.30.40,127.0.0.1") as open_agent:
        assert requests.get(open_agent.base_url + "/health", timeout=5).status_code == 200


def test_docker_unreachable_gives_503(start_agent, spec, tmp_path) -> None:
    socket_path = tmp_path / "no-such-docker.sock"
    with start_agent(DOCKER_HOST=f"unix://{socket_path}") as down:
        stats = down.call("GET", "/get_system_stats")
        assert stats.status_code == 503
        assert stats.json()["success"] is False and "Docker daemon is unreachable" in stats.json()["message"]
        created = down.call("POST", "/api/containers", json_body=spec())
        assert created.status_code == 503
        listed = down.call("GET", "/api/images")
        assert listed.status_code == 503 and "Traceback" not in listed.text
