"""A Docker SDK client for a Swarm manager (socket or TLS), its errors in the agent hierarchy, nodes.

A Swarm server row keeps the manager's Engine API URL in `agent_url` (`unix:///path`, or
`tcp://host:port` / `https://host:port` with TLS) and, for TLS, a PEM bundle (client certificate,
its key and optionally the CA) sealed like agent tokens (purpose "server.tls"). The SDK wants
files: the bundle is written to a private temporary folder for the client's life and removed
when it is closed.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import requests
from docker.errors import APIError, DockerException, NotFound

import docker
from app.agent_client import AgentConflict, AgentError, AgentNotFound, AgentUnavailable

if TYPE_CHECKING:
    from app.models.server import Server

TLS_PURPOSE = "server.tls"
PEM_BLOCK = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----\s.*?-----END \1-----", re.S)
MAX_BUNDLE_CHARS = 20_000
API_VERSION = "1.41"  # fixed, so making a client asks nothing; newer engines serve older API versions


class BundleError(ValueError):
    """The PEM bundle lacks a certificate or key, or has something else in it."""


def split_bundle(text: str) -> dict[str, str]:
    """The client `cert`, its `key` and the optional `ca` of a PEM bundle; raises BundleError."""
    if len(text) > MAX_BUNDLE_CHARS:
        raise BundleError(f"the bundle is longer than {MAX_BUNDLE_CHARS} characters")
    certs, keys = [], []
    for match in PEM_BLOCK.finditer(text):
        kind = match.group(1)
        if kind == "CERTIFICATE":
            certs.append(match.group(0))
        elif kind.endswith("PRIVATE KEY"):
            keys.append(match.group(0))
        else:
            raise BundleError(f"unexpected PEM block {kind!r}")
    if not certs or len(keys) != 1:
        raise BundleError("paste the client certificate, its private key and optionally the CA certificate")
    # Convention of `docker --tlsverify`: the client certificate first, then the CA.
    return {"cert": certs[0], "key": keys[0], **({"ca": "\n".join(certs[1:])} if certs[1:] else {})}


def is_socket_url(url: str) -> bool:
    """True for a `unix://` Engine API address."""
    return url.startswith("unix://")


class SwarmConnection:
    """One Docker client for one manager; `close()` removes the temporary TLS files."""

    def __init__(self, url: str, bundle: str | None, *, timeout: float) -> None:
        self._folder: str | None = None
        tls: docker.tls.TLSConfig | bool = False
        base_url = url
        if not is_socket_url(url):
            base_url = "https://" + url.split("://", 1)[-1]
            if bundle:
                parts = split_bundle(bundle)
                self._folder = tempfile.mkdtemp(prefix="slipway-swarm-")
                paths = {}
                for name, pem in parts.items():
                    paths[name] = os.path.join(self._folder, f"{name}.pem")
                    with os.fdopen(os.open(paths[name], os.O_WRONLY | os.O_CREAT, 0o600), "w") as handle:
                        handle.write(pem + "\n")
                tls = docker.tls.TLSConfig(client_cert=(paths["cert"], paths["key"]),
                                           ca_cert=paths.get("ca"), verify=paths.get("ca") or True)
            else:
                tls = docker.tls.TLSConfig(verify=True)
        try:
            self.client = docker.DockerClient(base_url=base_url, tls=tls, timeout=timeout,
                                              version=API_VERSION)
        except DockerException as exc:
            self.close()
            raise AgentUnavailable(f"cannot reach the Swarm manager at {url}: {_reason(exc)}") from exc
        except Exception:
            self.close()
            raise

    @property
    def api(self) -> docker.APIClient:
        """The low-level API client."""
        return self.client.api

    def close(self) -> None:
        """Close the client and remove the TLS files."""
        client = getattr(self, "client", None)
        if client is not None:
            client.close()
        if self._folder:
            shutil.rmtree(self._folder, ignore_errors=True)
            self._folder = None


def connect(server: Server, timeout: float | None = None) -> SwarmConnection:
    """A connection to `server`'s manager, its TLS bundle decrypted (raises SecretDecryptError)."""
    from flask import current_app

    from app.security.crypto import decrypt_secret

    bundle = decrypt_secret(server.tls_encrypted, TLS_PURPOSE) if server.tls_encrypted else None
    seconds = current_app.config["AGENT_READ_TIMEOUT"] if timeout is None else timeout
    return SwarmConnection(server.agent_url, bundle, timeout=seconds)


def _reason(exc: Exception) -> str:
    if isinstance(exc, APIError):
        return str(exc.explanation or exc)[:500]
    return str(exc)[:500]


@contextlib.contextmanager
def translated(not_found: str = "service not found") -> Iterator[None]:
    """Turn SDK errors into the agent error hierarchy (the backend contract)."""
    try:
        yield
    except NotFound as exc:
        raise AgentNotFound(not_found if not_found else _reason(exc), 404) from exc
    except APIError as exc:
        status = exc.status_code or 500
        if status == 409:
            raise AgentConflict(_reason(exc), 409) from exc
        if status == 503 and "not a swarm manager" in _reason(exc).lower():
            raise AgentError(f"this engine is not a Swarm manager: {_reason(exc)}", 503) from exc
        if status >= 500:
            raise AgentUnavailable(_reason(exc), status) from exc
        raise AgentError(_reason(exc), status) from exc
    except requests.Timeout as exc:
        raise AgentUnavailable(f"the Swarm manager did not answer in time: {exc}", timed_out=True) from exc
    except (requests.ConnectionError, DockerException) as exc:
        raise AgentUnavailable(f"cannot reach the Swarm manager: {_reason(exc)}") from exc


def node_summary(node: dict[str, Any]) -> dict[str, Any]:
    """The figures a page shows of one node: name, role, state, availability, CPUs, memory, labels."""
    desc = node.get("Description") or {}
    res = desc.get("Resources") or {}
    spec = node.get("Spec") or {}
    status = node.get("Status") or {}
    return {
        "id": node.get("ID", ""),
        "hostname": desc.get("Hostname", ""),
        "role": spec.get("Role", ""),
        "availability": spec.get("Availability", ""),
        "state": status.get("State", ""),
        "address": status.get("Addr", ""),
        "cpus": (res.get("NanoCPUs") or 0) / 1e9,
        "memory": int(res.get("MemoryBytes") or 0),
        "labels": dict(spec.get("Labels") or {}),
        "engine": (desc.get("Engine") or {}).get("EngineVersion", ""),
    }


def swarm_stats(conn: SwarmConnection, services: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Stats in the shape the poller stores for agents, plus `nodes` and `backend: swarm`."""
    started = time.monotonic()
    with translated("not a swarm manager"):
        version = conn.api.version()
        nodes = [node_summary(node) for node in conn.api.nodes()]
    ready = [n for n in nodes if n["state"] == "ready" and n["availability"] == "active"]
    cores = sum(n["cpus"] for n in ready)
    memory = sum(n["memory"] for n in ready)
    stats: dict[str, Any] = {
        "backend": "swarm",
        "docker_version": version.get("Version", "?"),
        "api_version": version.get("ApiVersion", "?"),
        "nodes": nodes,
        "cpu_count": cores,
        "memory": {"total": memory},
        "seconds": round(time.monotonic() - started, 3),
    }
    if services is not None:
        running = sum(1 for s in services if s.get("status") == "running")
        stats["containers"] = {"running": running, "total": len(services)}
    return stats


def probe_swarm(conn: SwarmConnection, instance: str, max_services: int = 200) -> Any:
    """Poll a Swarm like an agent: an `Outcome` with its nodes and workspace services; closes `conn`."""
    from app.backends.swarm_status import service_state
    from app.services.servers import Outcome

    started = time.monotonic()
    try:
        with translated():
            info = conn.api.info()
        if (info.get("Swarm") or {}).get("ControlAvailable") is not True:
            return Outcome("degraded", error="this engine is not a Swarm manager (docker swarm init / join "
                                             "as a manager)", seconds=time.monotonic() - started)
        with translated():
            services = conn.api.services(filters={"label": ["slipway.managed=true",
                                                            f"slipway.app.instance={instance}"]})
            tasks = conn.api.tasks() if services else []
        by_service: dict[str, list[dict[str, Any]]] = {}
        for task in tasks:
            by_service.setdefault(task.get("ServiceID", ""), []).append(task)
        managed = []
        for service in services[:max_services]:
            status, detail = service_state(service, by_service.get(service["ID"], []))
            spec = service["Spec"]
            image = ((spec.get("TaskTemplate") or {}).get("ContainerSpec") or {}).get("Image")
            managed.append({"id": service["ID"], "name": spec["Name"], "status": status, "detail": detail,
                            "image": image,
                            "created": service.get("CreatedAt"), "ports": {}})
        stats = swarm_stats(conn, managed)
        stats["managed_containers"] = managed
    except AgentUnavailable as exc:
        kind = "timeout" if exc.timed_out else "unreachable"
        return Outcome(kind, error=exc.message, seconds=time.monotonic() - started)
    except AgentError as exc:
        return Outcome("degraded", error=exc.message, seconds=time.monotonic() - started)
    finally:
        conn.close()
    return Outcome("ok", stats=stats, seconds=time.monotonic() - started)
