"""Request signing: the string to sign, tampering, freshness, replay and the constant-time compare."""

from __future__ import annotations

import hashlib
import hmac
import sys
import threading
from unittest import mock

import pytest

from agent import signing
from agent.signing import NonceCache, body_digest, signed_headers, verify

TOKEN = "t" * 40
NOW = 1_800_000_000.0


def _check(headers: dict, *, method: str = "POST", path: str = "/api/containers", body: bytes = b"{}",
           now: float = NOW, cache: NonceCache | None = None, token: str = TOKEN) -> bool:
    cache = cache if cache is not None else NonceCache()
    return verify(token, method, path, headers, body_digest(body), now=now, nonce_cache=cache)


def _sign(**kw) -> dict:
    args = {"token": TOKEN, "method": "POST", "path": "/api/containers", "body": b"{}", "now": NOW}
    args.update(kw)
    return signed_headers(args.pop("token"), args.pop("method"), args.pop("path"), args.pop("body"), **args)


def test_signature_is_hmac_over_the_documented_string() -> None:
    headers = signed_headers(TOKEN, "get", "/api/containers?label=a=b", b"", now=NOW, nonce="n" * 16)
    empty = hashlib.sha256(b"").hexdigest()
    text = "\n".join(["GET", "/api/containers?label=a=b", str(int(NOW)), "n" * 16, empty])
    expected = hmac.new(TOKEN.encode(), text.encode(), hashlib.sha256).hexdigest()
    assert headers == {
        "X-Slipway-Timestamp": str(int(NOW)),
        "X-Slipway-Nonce": "n" * 16,
        "X-Slipway-Signature": expected,
    }


def test_valid_request_verifies_and_headers_are_case_insensitive() -> None:
    headers = _sign()
    assert _check(headers)
    assert _check({k.lower(): v for k, v in headers.items()})


def test_nonce_is_random_and_long_enough() -> None:
    a, b = _sign()["X-Slipway-Nonce"], _sign()["X-Slipway-Nonce"]
    assert a != b and len(a) >= 16


def test_body_sha256_can_be_given_instead_of_the_body() -> None:
    body = b"x" * 1000
    headers = signed_headers(TOKEN, "POST", "/api/images/import", body_sha256=body_digest(body), now=NOW)
    assert _check(headers, path="/api/images/import", body=body)
    assert signed_headers(TOKEN, "GET", "/x", None, now=NOW, nonce="a" * 16) == signed_headers(
        TOKEN, "GET", "/x", b"", now=NOW, nonce="a" * 16
    )


@pytest.mark.parametrize(
    "change",
    [
        {"path": "/api/containers/other"},
        {"path": "/api/containers?label=x=y"},
        {"method": "GET"},
        {"body": b'{"name": "evil"}'},
        {"token": "u" * 40},
    ],
)
def test_tampered_request_is_refused(change: dict) -> None:
    assert not _check(_sign(), **change)


def test_tampered_timestamp_or_signature_is_refused() -> None:
    headers = _sign()
    assert not _check({**headers, "X-Slipway-Timestamp": str(int(NOW) + 1)})
    sig = headers["X-Slipway-Signature"]
    flipped = sig[:-1] + ("0" if sig[-1] != "0" else "1")
    assert not _check({**headers, "X-Slipway-Signature": flipped})
    assert not _check({**headers, "X-Slipway-Signature": "é" * 64})


@pytest.mark.parametrize("missing", ["X-Slipway-Timestamp", "X-Slipway-Nonce", "X-Slipway-Signature"])
def test_missing_header_is_refused(missing: str) -> None:
    headers = _sign()
    del headers[missing]
    assert not _check(headers)


def test_stale_and_future_timestamps_are_refused() -> None:
    assert _check(_sign(now=NOW - 59))
    assert not _check(_sign(now=NOW - 61))
    assert not _check(_sign(now=NOW + 61))
    assert not _check({**_sign(), "X-Slipway-Timestamp": "abc"})


def test_short_nonce_is_refused() -> None:
    assert not _check(_sign(nonce="short"))


def test_replayed_nonce_is_refused_within_the_window() -> None:
    cache = NonceCache()
    headers = _sign()
    assert _check(headers, cache=cache)
    assert not _check(headers, cache=cache)
    assert not _check(headers, cache=cache, now=NOW + 59)


def test_forged_request_does_not_burn_the_nonce() -> None:
    cache = NonceCache()
    headers = _sign()
    assert not _check({**headers, "X-Slipway-Signature": "0" * 64}, cache=cache)
    assert _check(headers, cache=cache)


def test_nonce_cache_forgets_old_entries_and_is_thread_safe() -> None:
    cache = NonceCache(window_seconds=60)
    assert cache.check_and_add("a" * 16, now=NOW)
    assert not cache.check_and_add("a" * 16, now=NOW + 100)
    assert cache.check_and_add("b" * 16, now=NOW + 500)
    assert len(cache) == 1

    results: list[bool] = []
    lock = threading.Lock()

    def add() -> None:
        ok = cache.check_and_add("c" * 16, now=NOW + 501)
        with lock:
            results.append(ok)

    threads = [threading.Thread(target=add) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count(True) == 1


def test_compare_is_constant_time() -> None:
    with mock.patch.object(signing.hmac, "compare_digest", wraps=hmac.compare_digest) as cmp:
        assert _check(_sign())
        assert not _check({**_sign(), "X-Slipway-Signature": "0" * 64})
    assert cmp.call_count == 2


def test_signing_module_is_import_light() -> None:
    import subprocess

    code = "import sys, agent.signing; print('flask' in sys.modules, 'docker' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
