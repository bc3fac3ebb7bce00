"""One-time workspace hand-off tokens and the host-only workspace cookie.

Opening a workspace goes through the web app, which signs a token bound to
(owner, session, app host) valid for at most 60 s; the workspace host redeems it once
(its id is stored in `used_handoff_tokens`) for a cookie scoped to that host alone.
The cookie names the user, the host and the user's login session, so logging out or
revoking that session ends workspace access too (the check reads the session row).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta

from flask import current_app
from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError

from app.extensions import db
from app.models.workspace import UsedHandoffToken
from app.timeutil import utcnow

HANDOFF_SECONDS = 60
_HANDOFF_SALT = "slipway.workspace-handoff"
_COOKIE_SALT = "slipway.workspace-cookie"


class TokenError(ValueError):
    """A hand-off token that is forged, expired, for another host or already used."""


@dataclass(frozen=True)
class Grant:
    """What a hand-off token or a workspace cookie vouches for."""

    user_id: int
    username: str
    host: str
    session_id: int


def _serializer(salt: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=salt)


def issue_handoff(grant: Grant) -> str:
    """A signed one-time token for `grant`, valid for HANDOFF_SECONDS."""
    return _serializer(_HANDOFF_SALT).dumps(
        {"u": grant.user_id, "n": grant.username, "h": grant.host, "s": grant.session_id,
         "j": secrets.token_urlsafe(16)}
    )


def redeem_handoff(token: str, host: str) -> Grant:
    """Check `token` for `host` and mark it used (in the caller's transaction); raises TokenError."""
    try:
        data = _serializer(_HANDOFF_SALT).loads(token, max_age=HANDOFF_SECONDS)
    except BadSignature as exc:  # SignatureExpired is a BadSignature
        raise TokenError("The link has expired or is not valid; open the workspace again.") from exc
    if not isinstance(data, dict) or data.get("h") != host:
        raise TokenError("This link was issued for another workspace.")
    now = utcnow()
    db.session.execute(delete(UsedHandoffToken).where(UsedHandoffToken.expires_at < now))
    expires = now + timedelta(seconds=HANDOFF_SECONDS)
    db.session.add(UsedHandoffToken(jti=str(data["j"])[:64], expires_at=expires))
    try:
        db.session.flush()
    except IntegrityError as exc:
        db.session.rollback()
        raise TokenError("This link was already used; open the workspace again.") from exc
    return Grant(int(data["u"]), str(data["n"]), host, int(data["s"]))


def cookie_name() -> str:
    """The workspace cookie's name (`__Host-` prefixed when served over HTTPS)."""
    return "__Host-slipway_ws" if current_app.config["HTTPS"] else "slipway_ws"


def cookie_value(grant: Grant) -> str:
    """The signed cookie value for `grant`."""
    return _serializer(_COOKIE_SALT).dumps(
        {"u": grant.user_id, "n": grant.username, "h": grant.host, "s": grant.session_id}
    )


def read_cookie(value: str | None, host: str) -> Grant | None:
    """The grant a workspace cookie carries when its signature is good and it names `host`."""
    if not value:
        return None
    max_age = current_app.config["SESSION_LIFETIME_HOURS"] * 3600
    try:
        data = _serializer(_COOKIE_SALT).loads(value, max_age=max_age)
    except BadSignature:
        return None
    if not isinstance(data, dict) or data.get("h") != host:
        return None
    return Grant(int(data["u"]), str(data["n"]), host, int(data["s"]))
