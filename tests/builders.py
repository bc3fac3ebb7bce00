"""Plain builders for test rows. Call inside an app context."""

from __future__ import annotations

import itertools

from app.extensions import db
from app.models import User
from app.security.passwords import hash_password

PASSWORD = "correct horse battery"
_counter = itertools.count(1)


def make_user(
    username: str | None = None,
    *,
    role: str = "regular",
    status: str = "approved",
    password: str = PASSWORD,
    email: str | None = None,
) -> User:
    """Insert and commit a user; the defaults give an approved regular account."""
    username = username or f"user{next(_counter)}"
    user = User(
        username=username,
        email=email or f"{username}@example.com",
        password_hash=hash_password(password),
        role=role,
        status=status,
    )
    db.session.add(user)
    db.session.commit()
    return user
