"""Admit only the edge to the ports this agent publishes: rules in Docker's DOCKER-USER chain.

Published ports bypass the host's own firewall (Docker DNATs them before INPUT), so on a host
whose workspaces publish on a private, routable address the agent keeps, at the top of
DOCKER-USER, one RETURN rule per edge address and then a DROP for every other source, both
matching only connections originally addressed to AGENT_HOST_IP (`--ctorigdst`) in their
original direction (answers flow back untouched). The rules name the address, not ports,
so one rule covers every port a workspace publishes. On loopback publishing nothing is needed:
only local processes reach 127.0.0.1, and the workspace gate answers them nothing without its secret.
"""

from __future__ import annotations

import ipaddress
import subprocess
import threading
from collections.abc import Sequence

from agent.errors import AgentError

CHAIN = "DOCKER-USER"


def needed(host_ip: str) -> bool:
    """True when ports published on `host_ip` are reachable from other machines."""
    return not ipaddress.ip_address(host_ip).is_loopback


def edge_rules(host_ip: str, edge_ips: Sequence[str]) -> list[list[str]]:
    """The rule specifications, in chain order: RETURN for each edge, then DROP."""
    address = ipaddress.ip_address(host_ip)
    match = ["-p", "tcp", "-m", "conntrack", "--ctorigdst", address.compressed, "--ctdir", "ORIGINAL",
             "-m", "comment", "--comment", f"slipway: only the edge reaches {address.compressed}"]
    networks = [ipaddress.ip_network(edge, strict=False) for edge in edge_ips]
    sources = [str(network) for network in networks if network.version == address.version]
    return [*([*match, "-s", source, "-j", "RETURN"] for source in sources), [*match, "-j", "DROP"]]


class EdgeFirewall:
    """Keeps the rules in place; checked before every container is created or started."""

    def __init__(self, host_ip: str, edge_ips: Sequence[str], binary: str | None = None) -> None:
        self.host_ip = host_ip
        self.rules = edge_rules(host_ip, edge_ips)
        self.binary = binary or ("ip6tables" if ipaddress.ip_address(host_ip).version == 6 else "iptables")
        self._lock = threading.Lock()

    def _run(self, *args: str) -> subprocess.CompletedProcess:
        try:
            return subprocess.run(  # noqa: S603 - fixed argv, addresses validated by the config
                [self.binary, "-w", "5", *args], capture_output=True, text=True, timeout=15, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise AgentError(500, f"cannot run {self.binary}: {exc}") from exc

    def ensure(self) -> None:
        """Install the rules at the top of DOCKER-USER unless all are there; AgentError when it cannot.

        Fails closed: a container is not published on a routable address without them.
        """
        if not needed(self.host_ip):
            return
        with self._lock:
            if all(self._run("-C", CHAIN, *rule).returncode == 0 for rule in self.rules):
                return
            self.remove()
            for rule in reversed(self.rules):  # inserted at the top: the DROP ends up last
                result = self._run("-I", CHAIN, "1", *rule)
                if result.returncode != 0:
                    raise AgentError(500, f"cannot add the {CHAIN} rule admitting only the edge: "
                                          f"{(result.stderr or result.stdout).strip()[:300]}")

    def remove(self) -> None:
        """Delete every copy of the rules (used before a fresh insert and by tests to clean up)."""
        for rule in self.rules:
            for _ in range(20):  # bounded: duplicates left by an older run
                if self._run("-D", CHAIN, *rule).returncode != 0:
                    break
