"""bcrypt password hashing. Passwords over 72 bytes are refused upstream, never pre-hashed."""

from __future__ import annotations

import bcrypt
from flask import current_app
from sqlalchemy import select

from app.extensions import db
from app.models import PasswordHistory, User
from app.security import clock

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


def recently_used(user: User, password: str) -> bool:
    """True when `password` is the current one or one of the last PASSWORD_HISTORY ones."""
    keep = current_app.config["PASSWORD_HISTORY"]
    older = db.session.scalars(
        select(PasswordHistory.password_hash)
        .where(PasswordHistory.user_id == user.id)
        .order_by(PasswordHistory.created_at.desc(), PasswordHistory.id.desc())
        .limit(keep - 1)
    )
    return any(check_password(password, stored) for stored in [user.password_hash, *older] if stored)


def set_password(user: User, password: str) -> None:
    """Give `user` a new password, keeping the old hash in password_history. The caller commits."""
    db.session.add(PasswordHistory(user_id=user.id, password_hash=user.password_hash, created_at=clock.now()))
    user.password_hash = hash_password(password)
