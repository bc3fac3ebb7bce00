"""Bearer API keys for /api/v1: the only credential the API accepts (cookies are ignored)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from functools import wraps
from typing import Any, TypeVar

from flask import abort, g, request
from flask_login import AnonymousUserMixin
from sqlalchemy import select

from app.extensions import db
from app.models import ApiKey
from app.models.security import sha256_hex
from app.security import clock

F = TypeVar("F", bound=Callable[..., Any])
# Writing last_used_at on every call would make every API read a write.
LAST_USED_RESOLUTION = timedelta(minutes=1)
SCOPE_RANK = {"read": 0, "write": 1}
# A logs:write key ships log batches and does nothing else; read/write keys cannot ship logs.
LOGS_SCOPE = "logs:write"


def authenticate_request() -> None:
    """Resolve `Authorization: Bearer <key>` into `g.api_key` and the request's current_user.

    Runs before every API view. A cookie session never counts here: current_user is set
    from the key or left anonymous, so the API has no CSRF exposure.
    """
    g.api_key = None
    g._login_user = AnonymousUserMixin()  # flask-login reads this instead of the session cookie
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return
    key = db.session.scalar(select(ApiKey).where(ApiKey.key_hash == sha256_hex(value.strip())))
    now = clock.now()
    # A deleted owner (SQLite keeps the orphan row: no ON DELETE CASCADE there) or a suspended one
    # authenticates nobody.
    if key is None or not key.is_live(now) or key.user is None or not key.user.is_approved:
        return
    if key.last_used_at is None or now - key.last_used_at >= LAST_USED_RESOLUTION:
        key.last_used_at = now
        db.session.commit()
    g.api_key = key
    g._login_user = key.user


def api_scope(scope: str) -> Callable[[F], F]:
    """Guard an API view: 401 without a live key, 403 when the key's scope is too small."""
    if scope not in SCOPE_RANK and scope != LOGS_SCOPE:
        raise KeyError(f"unknown API scope {scope!r}")

    def decorator(view: F) -> F:
        @wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            key = g.get("api_key")
            if key is None:
                abort(401, "A valid API key is required: send 'Authorization: Bearer <key>'.")
            if (refusal := scope_refusal(key.scope, scope)) is not None:
                abort(403, refusal)
            return view(*args, **kwargs)

        wrapped.required_scope = scope  # type: ignore[attr-defined]
        return wrapped  # type: ignore[return-value]

    return decorator


def scope_refusal(key_scope: str, needed: str) -> str | None:
    """Why a key of `key_scope` may not call a view that needs `needed`, or None when it may."""
    if needed == LOGS_SCOPE:
        if key_scope != LOGS_SCOPE:
            return (f"Shipping logs needs an API key with the {LOGS_SCOPE} scope; "
                    f"this key's scope is {key_scope}.")
        return None
    if key_scope not in SCOPE_RANK:
        return f"A {key_scope} key may only post log batches to /api/v1/logs."
    if SCOPE_RANK[key_scope] < SCOPE_RANK[needed]:
        return "This API key is read-only."
    return None
