"""Only the edge reaches ports published on a routable address: the agent's DOCKER-USER rules.

The "other machines" are network namespaces on this host, each joined to it by a veth pair:
one holds the edge's address, the other is any other client. Both route to the agent's
publish address through the host's FORWARD path, where DOCKER-USER applies.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.config import AgentConfig
from agent.firewall import EdgeFirewall, edge_rules
from tests.agent.helpers import GATE_SECRET, run_agent
from tests.support import require_service


def test_rules_admit_each_edge_then_drop_the_rest() -> None:
    rules = edge_rules("10.0.0.5", ["10.0.0.9", "10.1.0.7/16", "fd00::1"])
    assert [rule[-1] for rule in rules] == ["RETURN", "RETURN", "DROP"]
    assert [rule[rule.index("-s") + 1] for rule in rules[:2]] == ["10.0.0.9/32", "10.1.0.0/16"]
    assert all(rule[rule.index("--ctorigdst") + 1] == "10.0.0.5" for rule in rules)
    assert all("ORIGINAL" in rule for rule in rules)


def test_a_routable_publish_address_needs_the_edge_address() -> None:
    base = {"AGENT_TOKEN": "x" * 32, "WORKDIR_DEPLOY": "/srv/ws", "AGENT_HOST_IP": "10.0.0.5"}
    problems = AgentConfig.from_env(base).problems()
    assert problems and "AGENT_EDGE_IPS must list the edge" in problems[0]
    assert AgentConfig.from_env({**base, "AGENT_EDGE_IPS": "10.0.0.9"}).problems() == []
    assert "invalid address 'x'" in AgentConfig.from_env({**base, "AGENT_EDGE_IPS": "x"}).problems()[0]
    assert AgentConfig.from_env({**base, "AGENT_HOST_IP": "127.0.0.1"}).problems() == []


def _sh(*argv: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, timeout=20, check=check)


@pytest.fixture
def two_clients() -> Iterator[dict[str, str]]:
    """Namespaces `edge` and `other`, each on its own veth link to this host; removed afterwards."""
    tools = shutil.which("ip") is not None and shutil.which("iptables") is not None
    require_service("root, iproute2 and iptables", os.geteuid() == 0 and tools)
    tag = secrets.token_hex(3)
    subnet = 200 + secrets.randbelow(50)
    names = {"edge": f"slwe{tag}", "other": f"slwo{tag}"}
    addresses = {"edge": (f"10.213.{subnet}.1", f"10.213.{subnet}.2"),
                 "other": (f"10.213.{subnet}.5", f"10.213.{subnet}.6")}
    try:
        for role, ns in names.items():
            host_ip, client_ip = addresses[role]
            _sh("ip", "netns", "add", ns)
            _sh("ip", "link", "add", f"{ns}h", "type", "veth", "peer", "name", f"{ns}c")
            _sh("ip", "link", "set", f"{ns}c", "netns", ns)
            _sh("ip", "addr", "add", f"{host_ip}/30", "dev", f"{ns}h")
            _sh("ip", "link", "set", f"{ns}h", "up")
            _sh("ip", "netns", "exec", ns, "ip", "addr", "add", f"{client_ip}/30", "dev", f"{ns}c")
            _sh("ip", "netns", "exec", ns, "ip", "link", "set", f"{ns}c", "up")
            _sh("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")
            _sh("ip", "netns", "exec", ns, "ip", "route", "add", "default", "via", host_ip)
        yield {"publish": addresses["edge"][0], "edge_ip": addresses["edge"][1],
               "edge_ns": names["edge"], "other_ns": names["other"]}
    finally:
        for ns in names.values():
            _sh("ip", "link", "del", f"{ns}h", check=False)
            _sh("ip", "netns", "del", ns, check=False)


def _fetch_from(ns: str, url: str) -> subprocess.CompletedProcess:
    """busybox wget from inside namespace `ns` (with the gate secret), given 3 s."""
    return _sh("ip", "netns", "exec", ns, "timeout", "3", "busybox", "wget", "-q", "-O", "-",
               "--header", f"X-Slipway-Gate: {GATE_SECRET}", url, check=False)


@pytest.mark.integration
def test_only_the_edge_address_reaches_a_published_port(two_clients, spec, docker_client,
                                                        tmp_path: Path) -> None:
    publish, edge_ip = two_clients["publish"], two_clients["edge_ip"]
    workdir = tmp_path / "work"
    workdir.mkdir()
    firewall = EdgeFirewall(publish, [edge_ip])
    with run_agent(workdir, AGENT_HOST_IP=publish, AGENT_EDGE_IPS=edge_ip) as agent:
        created = None
        try:
            response = agent.call("POST", "/api/containers", json_body=spec())
            assert response.status_code == 201, response.text
            created = response.json()["data"]
            url = f"http://{publish}:{created['ports']['vscode']}/"
            edge = None
            for _ in range(20):  # the container needs a moment to listen
                edge = _fetch_from(two_clients["edge_ns"], url)
                if edge.returncode == 0:
                    break
            assert edge is not None and edge.returncode == 0 and "workspace: vscode" in edge.stdout
            other = _fetch_from(two_clients["other_ns"], url)
            assert other.returncode != 0 and "workspace" not in other.stdout
            # Control: without the rules the other client does reach the port (so the rules refused it).
            firewall.remove()
            assert _fetch_from(two_clients["other_ns"], url).returncode == 0
            # Starting the container again puts the rules back.
            assert agent.call("POST", f"/api/containers/{created['id']}/start").status_code == 200
            assert _fetch_from(two_clients["other_ns"], url).returncode != 0
        finally:
            if created is not None:
                agent.call("POST", f"/api/containers/{created['id']}/delete")
            firewall.remove()
    assert all(f"only the edge reaches {publish}" not in line
               for line in _sh("iptables", "-S", "DOCKER-USER").stdout.splitlines())
