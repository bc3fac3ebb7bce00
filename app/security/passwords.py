"""bcrypt password hashing. Passwords over 72 bytes are refused upstream, never pre-hashed."""

from __future__ import annotations

import bcrypt
from flask import current_app

# A hash per cost, checked when the user does not exist so both paths cost one bcrypt check.
_dummy_hashes: dict[int, bytes] = {}


def hash_password(password: str) -> str:
    """Hash `password` with the configured bcrypt cost."""
    rounds = current_app.config["BCRYPT_ROUNDS"]
    return bcrypt.hashpw(password.encode("utf-8"), bcrypt.gensalt(rounds=rounds)).decode()


def check_password(password: str, password_hash: str | None) -> bool:
    """True when `password` matches; with no hash, does the same work and returns False."""
    candidate = password.encode("utf-8")
    if len(candidate) > 72:
        return False
    if password_hash is None:
        bcrypt.checkpw(candidate, _dummy_hash())
        return False
    return bcrypt.checkpw(candidate, password_hash.encode())


def _dummy_hash() -> bytes:
    rounds = current_app.config["BCRYPT_ROUNDS"]
    if rounds not in _dummy_hashes:
        _dummy_hashes[rounds] = bcrypt.hashpw(b"slipway-dummy", bcrypt.gensalt(rounds=rounds))
    return _dummy_hashes[rounds]
