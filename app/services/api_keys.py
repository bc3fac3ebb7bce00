"""Creating API keys, the one road for the account page and the `create-api-key` command.

`create` checks the scope against the owner's role, the expiry and the per-user cap (with the
owner's row locked so two creations cannot both slip under it), adds the key and its audit row
and commits; or raises `ApiKeyError` having changed nothing.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime

from flask import current_app
from sqlalchemy import select

from app.extensions import db
from app.models import API_SCOPES, ApiKey, User
from app.models.security import sha256_hex
from app.permissions import can
from app.security import clock
from app.services import accounts, audit

KEY_PREFIX = "slw_"
LOGS_SCOPE = "logs:write"


class ApiKeyError(ValueError):
    """A key that may not be created; the message says why, `field` names the form field at fault."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class NewKey:
    """The stored row and the key's value (shown once, never stored)."""

    key: ApiKey
    value: str


def new_key_value() -> str:
    """A fresh random API key; its first 12 characters are the listed prefix."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def scopes_for(user: User) -> tuple[str, ...]:
    """The scopes `user` may give a key: logs:write only to those who may ship org-wide logs."""
    return tuple(s for s in API_SCOPES if s != LOGS_SCOPE or can(user, "ship_logs"))


def create(
    user: User, name: str, scope: str, expires_at: datetime | None, *, source: str = "web"
) -> NewKey:
    """Create, audit and commit a key for `user`; raises `ApiKeyError` having changed nothing."""
    name = name.strip()
    if not name or len(name) > 64:
        raise ApiKeyError("The key needs a name of 1-64 characters.")
    if scope not in API_SCOPES:
        raise ApiKeyError(f"Unknown scope {scope!r}; choose one of {', '.join(API_SCOPES)}.")
    if scope not in scopes_for(user):
        raise ApiKeyError(f"Only admins may create {scope} keys (shipped logs are organisation-wide).")
    now = clock.now()
    if expires_at is not None and expires_at <= now:
        raise ApiKeyError("The expiry date must be in the future.", "expires_on")
    # Lock the user's row so two simultaneous creations cannot both slip under the cap.
    db.session.execute(select(User.id).where(User.id == user.id).with_for_update())
    cap = current_app.config["API_KEYS_MAX"]
    if accounts.live_api_key_count(user) >= cap:
        db.session.rollback()
        raise ApiKeyError(
            f"You already have {cap} active API keys, the most allowed. Revoke one you no longer use first."
        )
    value = new_key_value()
    key = ApiKey(
        user_id=user.id,
        name=name,
        prefix=value[:12],
        key_hash=sha256_hex(value),
        scope=scope,
        created_at=now,
        expires_at=expires_at.replace(microsecond=0) if expires_at else None,
    )
    db.session.add(key)
    audit.record(
        "api_key_created", user.username, {"name": key.name, "prefix": key.prefix, "scope": key.scope},
        source=source,
    )
    db.session.commit()
    return NewKey(key, value)
