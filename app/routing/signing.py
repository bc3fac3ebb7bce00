"""The key the web app, the worker and every edge share, and the request signatures made with it.

The key file (mode 0600) holds one hex key per line: the current key first, then, during a
rotation, the previous one. Requests are signed with the first and accepted with either, so
a rotation is: add the new key on top, copy the file to every edge host, drop the old line
once every edge has it. A signature covers the method, the path, a timestamp, a nonce and
the body (`timestamp.nonce.hexmac`, HMAC-SHA256); the edge (docker/nginx/slipway_edge.lua)
checks it the same way and refuses a replayed nonce.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time
from pathlib import Path

SIGNATURE_HEADER = "X-Slipway-Signature"
SIGNATURE_WINDOW_SECONDS = 60
KEY_MODE = 0o600
_MIN_KEY_CHARS = 32


class SignatureError(ValueError):
    """A request without a valid, fresh signature."""


def ensure_key_file(path: Path) -> None:
    """Create the key file with one fresh key, readable by its owner only, when it is missing."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, KEY_MODE)
    except FileExistsError:
        return
    with os.fdopen(fd, "w") as handle:
        handle.write(secrets.token_hex(32) + "\n")


def load_keys(path: Path) -> list[str]:
    """The keys in the file, current first; [] when it is missing."""
    try:
        lines = path.read_text().split()
    except FileNotFoundError:
        return []
    return [line for line in lines if len(line) >= _MIN_KEY_CHARS]


def _mac(key: str, method: str, path: str, stamp: str, nonce: str, body: bytes) -> str:
    message = f"{method}\n{path}\n{stamp}\n{nonce}\n".encode() + body
    return hmac.new(key.encode(), message, hashlib.sha256).hexdigest()


def sign(keys: list[str], method: str, path: str, body: bytes = b"") -> str:
    """The signature header value for this request, made with the current key."""
    if not keys:
        raise SignatureError("no signing key")
    stamp, nonce = str(int(time.time())), secrets.token_hex(16)
    return f"{stamp}.{nonce}.{_mac(keys[0], method, path, stamp, nonce, body)}"


def edge_cookie_value(keys: list[str], host: str, username: str, session_id: int, lifetime: int) -> str:
    """The edge cookie: `v1.user.session.issued.expires.hexmac` over the host too, checked in the edge."""
    if not keys:
        raise SignatureError("no signing key")
    issued = int(time.time())
    expires = issued + lifetime
    message = f"v1|{host}|{username}|{session_id}|{issued}|{expires}".encode()
    mac = hmac.new(keys[0].encode(), message, hashlib.sha256).hexdigest()
    return f"v1.{username}.{session_id}.{issued}.{expires}.{mac}"


def verify(keys: list[str], header: str | None, method: str, path: str, body: bytes = b"") -> None:
    """Raise SignatureError unless `header` signs this request with one of `keys`, within the window."""
    parts = (header or "").split(".")
    if len(parts) != 3 or not parts[0].isdigit() or len(header or "") > 200:
        raise SignatureError("no signature")
    stamp, nonce, mac = parts
    if abs(time.time() - int(stamp)) > SIGNATURE_WINDOW_SECONDS:
        raise SignatureError("stale signature")
    if not any(hmac.compare_digest(_mac(key, method, path, stamp, nonce, body), mac) for key in keys):
        raise SignatureError("bad signature")
