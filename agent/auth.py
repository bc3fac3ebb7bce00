"""Signed-request check for every route but /health, plus the optional caller IP allow-list."""

from __future__ import annotations

import hashlib
import ipaddress
import time
from collections.abc import Iterable
from typing import IO

from flask import Flask, current_app, g, request

from agent.errors import AgentError
from agent.signing import NONCE_HEADER, TIMESTAMP_HEADER, NonceCache, body_digest, verify

OPEN_PATHS = {"/health"}
# Endpoints whose body is streamed to disk by the view, which then calls `verify_streamed`.
STREAMED_ENDPOINTS = {"images.import_image"}


def _unauthorized() -> AgentError:
    return AgentError(401, "unauthorized")


def _signed_paths() -> list[str]:
    """The request target as sent (raw URI) and as decoded, so either spelling verifies."""
    query = request.query_string.decode("latin-1")
    decoded = request.path + (f"?{query}" if query else "")
    raw = request.environ.get("RAW_URI") or request.environ.get("REQUEST_URI") or decoded
    return [raw] if raw == decoded else [raw, decoded]


def _check(body_sha256: str) -> None:
    token: str = current_app.config["AGENT_TOKEN"]
    cache: NonceCache = current_app.extensions["agent_nonces"]
    for path in _signed_paths():
        if verify(token, request.method, path, request.headers, body_sha256, nonce_cache=cache):
            return
    raise _unauthorized()


def _client_allowed(allowed: Iterable[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> bool:
    try:
        addr = ipaddress.ip_address(request.remote_addr or "")
    except ValueError:
        return False
    return any(addr in net for net in allowed)


def precheck_headers() -> None:
    """Cheap refusal (before any upload is read) of requests with absent or stale signing headers."""
    stamp = request.headers.get(TIMESTAMP_HEADER, "")
    nonce = request.headers.get(NONCE_HEADER, "")
    if not (stamp.isascii() and stamp.isdigit()) or len(nonce) < 16 or abs(time.time() - int(stamp)) > 60:
        raise _unauthorized()


def verify_streamed(stream: IO[bytes], sink: IO[bytes], limit: int) -> int:
    """Copy the request body to `sink` while hashing it, then check the signature; returns the size."""
    digest = hashlib.sha256()
    size = 0
    while chunk := stream.read(1 << 20):
        size += len(chunk)
        if size > limit:
            raise AgentError(413, "body: upload too large")
        digest.update(chunk)
        sink.write(chunk)
    _check(digest.hexdigest())
    return size


def init_auth(app: Flask) -> None:
    """Install the before-request check on `app`."""
    allowed = [ipaddress.ip_network(ip, strict=False) for ip in app.config["AGENT_ALLOWED_IPS"]]

    @app.before_request
    def authenticate() -> None:
        """Refuse callers outside the allow-list (403) and unsigned or badly signed requests (401)."""
        if allowed and not _client_allowed(allowed):
            raise AgentError(403, "forbidden")
        if request.path in OPEN_PATHS:
            return
        precheck_headers()
        if request.endpoint in STREAMED_ENDPOINTS:
            g.body_verified = False
            return
        _check(body_digest(request.get_data(cache=True)))
        g.body_verified = True
