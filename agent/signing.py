"""HMAC request signing shared by the agent and its callers (stdlib only).

Signature = hex HMAC-SHA256(key=AGENT_TOKEN) over
``METHOD\\nPATH\\nTIMESTAMP\\nNONCE\\nSHA256_HEX_OF_BODY`` where PATH carries ``?query`` only when
there is a query string. The secret itself never travels; a nonce is accepted once per window.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Mapping

TIMESTAMP_HEADER = "X-Slipway-Timestamp"
NONCE_HEADER = "X-Slipway-Nonce"
SIGNATURE_HEADER = "X-Slipway-Signature"
WINDOW_SECONDS = 60
MIN_NONCE_LENGTH = 16
MAX_NONCE_LENGTH = 128
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


def body_digest(body: bytes | None) -> str:
    """Hex SHA-256 of a request body (None counts as empty)."""
    return hashlib.sha256(body or b"").hexdigest()


def string_to_sign(method: str, path: str, timestamp: str, nonce: str, body_sha256: str) -> str:
    """The exact text that is signed, lines joined by a newline."""
    return "\n".join([method.upper(), path, timestamp, nonce, body_sha256.lower()])


def compute_signature(
    token: str, method: str, path: str, timestamp: str, nonce: str, body_sha256: str
) -> str:
    """Hex HMAC-SHA256 of the string to sign, keyed with the UTF-8 token."""
    message = string_to_sign(method, path, timestamp, nonce, body_sha256).encode("utf-8")
    return hmac.new(token.encode("utf-8"), message, hashlib.sha256).hexdigest()


def signed_headers(
    token: str,
    method: str,
    path: str,
    body: bytes | None = b"",
    *,
    body_sha256: str | None = None,
    now: float | None = None,
    nonce: str | None = None,
) -> dict[str, str]:
    """Headers that sign one request; pass `body_sha256` for a streamed body hashed beforehand."""
    timestamp = str(int(time.time() if now is None else now))
    nonce = nonce or secrets.token_hex(16)
    digest = body_sha256 if body_sha256 is not None else body_digest(body)
    return {
        TIMESTAMP_HEADER: timestamp,
        NONCE_HEADER: nonce,
        SIGNATURE_HEADER: compute_signature(token, method, path, timestamp, nonce, digest),
    }


class NonceCache:
    """Thread-safe memory of nonces seen within the last `window_seconds` (replay protection)."""

    def __init__(self, window_seconds: int = WINDOW_SECONDS) -> None:
        self.window_seconds = window_seconds
        self._seen: dict[str, float] = {}
        self._lock = threading.Lock()
        self._next_purge = 0.0

    def check_and_add(self, nonce: str, now: float | None = None) -> bool:
        """Record `nonce`; False when it was already seen within the window."""
        now = time.time() if now is None else now
        with self._lock:
            if now >= self._next_purge:
                cutoff = now - 2 * self.window_seconds
                self._seen = {n: t for n, t in self._seen.items() if t > cutoff}
                self._next_purge = now + self.window_seconds / 4
            seen_at = self._seen.get(nonce)
            if seen_at is not None and now - seen_at <= 2 * self.window_seconds:
                return False
            self._seen[nonce] = now
            return True

    def __len__(self) -> int:
        with self._lock:
            return len(self._seen)


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None:
        lowered = name.lower()
        for key, item in headers.items():
            if key.lower() == lowered:
                return item
    return value


def verify(
    token: str,
    method: str,
    path: str,
    headers: Mapping[str, str],
    body_sha256_hex: str,
    *,
    now: float | None = None,
    nonce_cache: NonceCache,
) -> bool:
    """True when the headers sign this request with `token`, are fresh, and the nonce is new."""
    timestamp = _header(headers, TIMESTAMP_HEADER)
    nonce = _header(headers, NONCE_HEADER)
    signature = _header(headers, SIGNATURE_HEADER)
    if not token or not timestamp or not nonce or not signature:
        return False
    if not timestamp.isascii() or not timestamp.isdigit() or len(timestamp) > 12:
        return False
    if not (MIN_NONCE_LENGTH <= len(nonce) <= MAX_NONCE_LENGTH) or not nonce.isascii() or "\n" in nonce:
        return False
    now = time.time() if now is None else now
    if abs(now - int(timestamp)) > nonce_cache.window_seconds:
        return False
    expected = compute_signature(token, method, path, timestamp, nonce, body_sha256_hex)
    given = signature.strip().lower().encode("ascii", "replace")
    if not hmac.compare_digest(expected.encode("ascii"), given):
        return False
    # Only a valid signature may consume a nonce, so forged requests cannot burn real ones.
    return nonce_cache.check_and_add(nonce, now)
