"""The Docker client the agent shares between its request threads, and Docker errors as AgentErrors."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

import requests
from docker.errors import APIError, DockerException, ImageNotFound, NotFound

import docker
from agent.errors import AgentError

MANAGED_LABEL = "slipway.managed"
DAEMON_DOWN = "Docker daemon is unreachable"


class DockerHolder:
    """Creates the client lazily (the agent starts even when the daemon is down) and caches its version."""

    def __init__(self, timeout: int, pool_size: int) -> None:
        self.timeout = timeout
        self.pool_size = pool_size
        self._client: docker.DockerClient | None = None
        self._lock = threading.Lock()
        self.version: str | None = None

    @property
    def client(self) -> docker.DockerClient:
        """The shared client (requests' pool is sized for the request threads)."""
        if self._client is None:
            with self._lock, translate():
                if self._client is None:
                    client = docker.from_env(timeout=self.timeout, max_pool_size=self.pool_size)
                    self.version = str(client.version().get("Version", ""))
                    self._client = client
        return self._client

    @property
    def api(self) -> docker.APIClient:
        """The low-level API client (cheaper list calls, raw build/push streams)."""
        return self.client.api


def _api_message(exc: APIError) -> str:
    explanation = exc.explanation
    if isinstance(explanation, bytes):
        explanation = explanation.decode("utf-8", "replace")
    return str(explanation or exc)[:500]


@contextlib.contextmanager
def translate(not_found: str = "not found") -> Iterator[None]:
    """Map Docker SDK errors: unreachable 503, missing 404, conflict 409, refused input 400."""
    try:
        yield
    except (ImageNotFound, NotFound) as exc:
        raise AgentError(404, f"{not_found}: {_api_message(exc)}") from exc
    except APIError as exc:
        status = exc.status_code or 500
        if status == 409:
            raise AgentError(409, f"conflict: {_api_message(exc)}") from exc
        if status == 400:
            raise AgentError(400, f"refused by Docker: {_api_message(exc)}") from exc
        raise AgentError(500, f"Docker error: {_api_message(exc)}") from exc
    except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
        raise AgentError(503, DAEMON_DOWN) from exc
    except DockerException as exc:
        # from_env() wraps connection failures in a bare DockerException.
        raise AgentError(503, f"{DAEMON_DOWN}: {str(exc)[:200]}") from exc


class NetworkKeeper:
    """Creates the workspace network once, with inter-container traffic off; refuses one that allows it."""

    ICC_OPTION = "com.docker.network.bridge.enable_icc"

    def __init__(self, name: str) -> None:
        self.name = name
        self._ready = False
        self._lock = threading.Lock()

    def ensure(self, api: docker.APIClient) -> None:
        """Make sure the network exists with ICC off (cached after the first success)."""
        if self._ready:
            return
        with self._lock, translate():
            if self._ready:
                return
            found = [n for n in api.networks(names=[self.name]) if n.get("Name") == self.name]
            if not found:
                try:
                    api.create_network(
                        self.name, driver="bridge", options={self.ICC_OPTION: "false"},
                        labels={MANAGED_LABEL: "true"}, check_duplicate=True,
                    )
                except APIError as exc:
                    if exc.status_code != 409:
                        raise
                found = [n for n in api.networks(names=[self.name]) if n.get("Name") == self.name]
            options = (found[0].get("Options") or {}) if found else {}
            if options.get(self.ICC_OPTION) != "false":
                raise AgentError(500, f"network {self.name} allows inter-container traffic; refusing it")
            self._ready = True
