"""The one client that speaks to agents: signed, pooled, bounded requests.

Every request carries the HMAC headers of `agent.signing` (the token itself never travels),
has a connect and a read timeout, and goes through one process-wide pooled
`requests.Session`. Idempotent calls (GETs, start/stop/delete) are retried on connection
errors and 5xx with exponential backoff and jitter; 4xx answers are never retried. Agent
errors become exceptions carrying the agent's own message:

- `AgentUnavailable`: connection refused, timeout, 502/503/504, or a streamed answer cut off
  (try again later); its message names the agent, e.g. "agent 'host-1' (10.0.0.5:7000)
  unreachable: connection refused", so a failed task says which server to look at
- `AgentNotFound`: 404 (the object is gone; "already done" for a delete)
- `AgentConflict`: 409 (e.g. image in use)
- `AgentError`: anything else (400 names the bad field; 401 means a wrong token)
"""

from __future__ import annotations

import hashlib
import json
import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit

import requests
from requests.adapters import HTTPAdapter

from agent.signing import signed_headers
from app.security import outbound

if TYPE_CHECKING:
    from app.models.server import Server

RETRY_STATUSES = frozenset({500, 502, 503, 504})
UNAVAILABLE_STATUSES = frozenset({502, 503, 504})
_session_lock = threading.Lock()
_session: requests.Session | None = None


class AgentError(Exception):
    """An agent call failed; `message` is the agent's message, `status` the HTTP status or None."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class AgentUnavailable(AgentError):
    """The agent could not be reached, timed out, answered 502/503/504, or cut its stream off.

    `message` names the agent; `reason` is the same without the name, for places that show
    it beside the server already (the servers page, the poller's status).
    """

    def __init__(self, message: str, status: int | None = None, *, timed_out: bool = False,
                 reason: str | None = None) -> None:
        super().__init__(message, status)
        self.timed_out = timed_out
        self.reason = reason or message


class AgentNotFound(AgentError):
    """The agent answered 404: the container or image does not exist (or is not managed)."""


class AgentConflict(AgentError):
    """The agent answered 409."""


def shared_session() -> requests.Session:
    """The process-wide pooled session (environment proxies are ignored: agents are direct)."""
    global _session
    with _session_lock:
        if _session is None:
            session = requests.Session()
            session.trust_env = False
            adapter = HTTPAdapter(pool_connections=256, pool_maxsize=64, max_retries=0)
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            _session = session
        return _session


def _error_for(status: int, message: str) -> AgentError:
    if status == 404:
        return AgentNotFound(message, status)
    if status == 409:
        return AgentConflict(message, status)
    if status in UNAVAILABLE_STATUSES:
        return AgentUnavailable(message, status)
    return AgentError(message, status)


def _message_of(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return f"agent answered HTTP {response.status_code}"
    if isinstance(body, dict) and isinstance(body.get("message"), str) and body["message"]:
        return body["message"][:500]
    return f"agent answered HTTP {response.status_code}"


class AgentClient:
    """Signed HTTP calls to one agent (see the module docstring for errors and retries)."""

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        connect_timeout: float = 3,
        read_timeout: float = 10,
        retries: int = 2,
        backoff: float = 0.3,
        name: str | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.name = name
        self._token = token
        self.timeout = (connect_timeout, read_timeout)
        self.retries = retries
        self.backoff = backoff
        parts = urlsplit(self.base_url)
        self._origin = f"{parts.scheme}://{parts.netloc}"
        self._prefix = parts.path
        # host:port only: a user:password@ in the URL must never reach a message
        address = f"{parts.hostname}:{parts.port}" if parts.port else str(parts.hostname)
        self.label = f"agent {name!r} ({address})" if name else f"agent at {address}"

    def __repr__(self) -> str:  # never show the token
        return f"<AgentClient {self.label}>"

    @classmethod
    def for_server(
        cls,
        server: Server,
        *,
        connect_timeout: float | None = None,
        read_timeout: float | None = None,
        retries: int | None = None,
    ) -> AgentClient:
        """The one way to get a client for `server`: decrypts its stored token.

        Each timeout and the retry count defaults to the install's config; pass one to
        override it (no retries while a page waits, a long read timeout for build streams).
        """
        from flask import current_app

        from app.security.crypto import decrypt_secret

        config = current_app.config
        return cls(
            server.agent_url,
            decrypt_secret(server.token_encrypted, "server.token"),
            connect_timeout=config["AGENT_CONNECT_TIMEOUT"] if connect_timeout is None else connect_timeout,
            read_timeout=config["AGENT_READ_TIMEOUT"] if read_timeout is None else read_timeout,
            retries=config["AGENT_RETRIES"] if retries is None else retries,
            name=server.name,
        )

    # -- plumbing ---------------------------------------------------------------------------

    def _send(
        self,
        method: str,
        path: str,
        *,
        query: list[tuple[str, str]] | None = None,
        json_body: Any = None,
        data: Any = None,
        body_sha256: str | None = None,
        headers: dict[str, str] | None = None,
        idempotent: bool = False,
        stream: bool = False,
    ) -> requests.Response:
        """Send one signed request (retrying idempotent ones); raise the mapped error on failure."""
        full_path = self._prefix + path + (("?" + urlencode(query)) if query else "")
        body = json.dumps(json_body).encode() if json_body is not None else data
        extra = dict(headers or {})
        if json_body is not None:
            extra["Content-Type"] = "application/json"
        attempts = 1 + (self.retries if idempotent else 0)
        if problem := outbound.url_problem(self._origin, "agent"):  # resolved now: DNS may have changed
            raise AgentError(f"agent address refused: {problem}")
        for attempt in range(attempts):
            digest = body_sha256 or hashlib.sha256(body if isinstance(body, bytes) else b"").hexdigest()
            signed = signed_headers(self._token, method, full_path, body_sha256=digest)
            try:
                response = shared_session().request(
                    method, self._origin + full_path, data=body, headers={**extra, **signed},
                    timeout=self.timeout, stream=stream, allow_redirects=False,
                )
            except requests.Timeout:
                error: AgentError = self._unavailable(f"did not answer within {self.timeout[1]:g} s",
                                                      timed_out=True)
            except requests.ConnectionError as exc:
                reason = "connection refused" if "refused" in str(exc).lower() else "connection failed"
                error = self._unavailable(f"unreachable: {reason}")
            except requests.RequestException as exc:
                error = self._unavailable(f"unreachable: {type(exc).__name__}")
            else:
                if response.status_code < 300:  # a redirect is an error: never follow one to an agent
                    return response
                error = _error_for(response.status_code, _message_of(response))
                if isinstance(error, AgentUnavailable):
                    error = AgentUnavailable(f"{self.label}: {error.message}", error.status,
                                             reason=error.message)
                response.close()
                if response.status_code not in RETRY_STATUSES:
                    raise error
            if attempt + 1 < attempts:
                time.sleep(self.backoff * (2 ** attempt) * random.uniform(0.5, 1.5))
        raise error

    def _unavailable(self, what: str, *, timed_out: bool = False) -> AgentUnavailable:
        """`agent 'name' (host:port) <what>`, its reason `agent <what>`."""
        return AgentUnavailable(f"{self.label} {what}", timed_out=timed_out, reason=f"agent {what}")

    def _data(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._send(method, path, **kwargs)
        try:
            body = response.json()
        except ValueError as exc:
            raise AgentError("agent answered with something that is not JSON", response.status_code) from exc
        if not isinstance(body, dict) or body.get("success") is False:
            message = body.get("message") if isinstance(body, dict) else None
            raise AgentError(message or "agent reported a failure", response.status_code)
        return body.get("data")

    def _ndjson(self, response: requests.Response, operation: str) -> Iterator[dict]:
        """The streamed objects; a stream cut off (agent killed, network gone) is `AgentUnavailable`."""
        with response:
            try:
                for line in response.iter_lines(chunk_size=1024):
                    if not line.strip():
                        continue
                    try:
                        item = json.loads(line)
                    except ValueError:
                        yield {"type": "log", "line": line.decode("utf-8", "replace")}
                        continue
                    if isinstance(item, dict):
                        yield item
            except requests.RequestException as exc:  # ChunkedEncodingError or ConnectionError: peer gone
                # requests reports a read timeout mid-stream as a ConnectionError wrapping urllib3's
                timed_out = isinstance(exc, requests.Timeout) or "timed out" in str(exc).lower()
                reason = f"nothing for {self.timeout[1]:g} s" if timed_out else "the connection was cut off"
                raise self._unavailable(f"stopped answering during the {operation}: {reason}",
                                        timed_out=timed_out) from exc

    # -- the agent API ----------------------------------------------------------------------

    def health(self) -> bool:
        """True when the agent answers /health with success (no exception for a dead agent)."""
        try:
            self._data("GET", "/health", idempotent=True)
        except AgentError:
            return False
        return True

    def system_stats(self) -> dict:
        """CPU, load, memory, disk, container and image counts of the agent's host."""
        return self._data("GET", "/get_system_stats", idempotent=True) or {}

    def events(self, after: int = 0, limit: int = 500) -> dict:
        """The agent's events after sequence `after` (at most `limit`, the agent caps it at 1000).

        Returns `{"epoch", "events", "next", "gap", "latest", "more"}`: `gap` is `{"from", "to"}`
        when events after the cursor were dropped from the agent's buffer before being read; a
        new `epoch` means the agent restarted and numbers from 1 again. Raises `AgentError` for
        an answer of any other shape.
        """
        query = [("after", str(int(after))), ("limit", str(int(limit)))]
        data = self._data("GET", "/api/events", query=query, idempotent=True)
        if not isinstance(data, dict) or not isinstance(data.get("events"), list) \
                or not isinstance(data.get("epoch"), str) or not isinstance(data.get("next"), int):
            raise AgentError("agent sent events in an unexpected shape")
        return data

    def list_containers(self, labels: dict[str, str] | None = None) -> list[dict]:
        """Managed containers, optionally filtered by labels."""
        query = [("label", f"{key}={value}") for key, value in sorted((labels or {}).items())]
        return self._data("GET", "/api/containers", query=query or None, idempotent=True) or []

    def create_container(self, spec: dict) -> dict:
        """Create and start a managed container from `spec` (not retried: not idempotent)."""
        return self._data("POST", "/api/containers", json_body=spec)

    def start_container(self, ref: str) -> dict:
        """Start a managed container by id or name."""
        return self._data("POST", f"/api/containers/{_ref(ref)}/start", idempotent=True)

    def stop_container(self, ref: str) -> dict:
        """Stop a managed container by id or name."""
        return self._data("POST", f"/api/containers/{_ref(ref)}/stop", idempotent=True)

    def delete_container(self, ref: str, *, remove_workspace: bool = False) -> dict:
        """Remove a managed container; raises `AgentNotFound` when it is already gone."""
        return self._data("POST", f"/api/containers/{_ref(ref)}/delete",
                          json_body={"remove_workspace": remove_workspace}, idempotent=True)

    def container_ports(self, ref: str) -> dict[str, int]:
        """The host ports of a container's apps, e.g. {"vscode": 49153}."""
        return self._data("GET", f"/api/containers/{_ref(ref)}/ports", idempotent=True) or {}

    def list_images(self) -> list[dict]:
        """Images on the agent's host."""
        return self._data("GET", "/api/images", idempotent=True) or []

    def inspect_image(self, ref: str) -> dict:
        """Details and history of one image."""
        return self._data("GET", "/api/images/inspect", query=[("ref", ref)], idempotent=True)

    def build_image(
        self, *, tag: str, dockerfile: str, context: bytes | None = None, buildargs: dict | None = None
    ) -> Iterator[dict]:
        """Build an image; yields the agent's NDJSON objects (log, step, then result)."""
        import base64

        body: dict[str, Any] = {"tag": tag, "dockerfile": dockerfile, "buildargs": buildargs or {}}
        if context is not None:
            body["context_b64"] = base64.b64encode(context).decode()
        return self._ndjson(self._send("POST", "/api/images/build", json_body=body, stream=True), "build")

    def push_image(
        self, *, repository: str, tag: str, username: str | None, password: str | None
    ) -> Iterator[dict]:
        """Push an image; yields progress objects, then the result (credentials used once)."""
        body = {"repository": repository, "tag": tag, "username": username, "password": password}
        return self._ndjson(self._send("POST", "/api/images/push", json_body=body, stream=True), "push")

    def pull_image(
        self, *, repository: str, tag: str, username: str | None, password: str | None
    ) -> Iterator[dict]:
        """Pull `repository:tag`; yields progress objects, then the result (credentials used once)."""
        body = {"repository": repository, "tag": tag, "username": username, "password": password}
        return self._ndjson(self._send("POST", "/api/images/pull", json_body=body, stream=True), "pull")

    def tag_image(self, source: str, *, repository: str, tag: str) -> dict:
        """Name the local image `source` as `repository:tag` (a registry host first); idempotent."""
        return self._data("POST", "/api/images/tag",
                          json_body={"source": source, "repository": repository, "tag": tag}, idempotent=True)

    def delete_image(self, ref: str, *, force: bool = False) -> None:
        """Remove an image; `AgentNotFound` when missing, `AgentConflict` when in use."""
        self._data("POST", "/api/images/delete", json_body={"ref": ref, "force": force}, idempotent=True)

    def import_image(self, path: Path, *, repository: str, tag: str) -> dict:
        """Stream a rootfs tarball to the agent, which imports it as `repository:tag`."""
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1024 * 1024), b""):
                digest.update(chunk)
        with path.open("rb") as handle:
            return self._data(
                "POST", "/api/images/import", query=[("repository", repository), ("tag", tag)],
                data=handle, body_sha256=digest.hexdigest(),
                headers={"Content-Type": "application/x-tar", "Content-Length": str(path.stat().st_size)},
            )


def _ref(ref: str) -> str:
    """A container reference safe to put in a path (ids and names are [A-Za-z0-9_.-])."""
    if not ref or not all((ch.isascii() and ch.isalnum()) or ch in "_.-" for ch in ref):
        raise AgentError(f"invalid container reference {ref!r}", 400)
    return ref
