"""Password rules and bcrypt hashing. Passwords over 72 bytes are refused, never pre-hashed."""

from __future__ import annotations

from collections.abc import Iterable

import bcrypt
from flask import current_app
from sqlalchemy import select

from app import validators
from app.extensions import db
from app.models import PasswordHistory, User
from app.security import clock

# zxcvbn's scale: 0-2 fall to an online or a fast offline attack on common passwords and patterns.
MIN_STRENGTH = 3

# A hash per cost, checked when the user does not exist so both paths cost one bcrypt check.
_dummy_hashes: dict[int, bytes] = {}


def password_problem(password: str, user_inputs: Iterable[str | None] = ()) -> str | None:
    """Why `password` is refused (length, bytes, or easy to guess, with the estimator's advice), or None.

    `user_inputs` (username, email) count as known words, so a password built from them is weak.
    """
    problem = validators.password_problem(password)
    if problem:
        return problem
    # Imported here: its word lists take about 12 MB, which only processes that check passwords
    # need (gunicorn's master preloads it for the web workers, see app/preload.py).
    from zxcvbn import zxcvbn

    words = [word.lower() for word in user_inputs if word]
    words += [part for word in words for part in word.replace("@", " ").replace(".", " ").split()]
    result = zxcvbn(password, user_inputs=words)
    if result["score"] >= MIN_STRENGTH:
        return None
    feedback = result["feedback"]
    reasons = [feedback.get("warning") or "It follows a pattern that is quick to guess."]
    reasons += feedback.get("suggestions") or []
    return "This password is too easy to guess. " + " ".join(reason.strip() for reason in reasons if reason)


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
