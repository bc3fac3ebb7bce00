"""Password-reset tokens: issued by the worker, stored as SHA-256 only, valid 30 minutes, used once.

A token is bound to a fingerprint of the password hash it was issued under, so any password
change (by the user, an admin or another reset) kills every outstanding token.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, func, select, update

from app.extensions import db
from app.mail.message import absolute_url
from app.models import PasswordResetToken, User
from app.security import clock
from app.services import audit

VALID_MINUTES = 30
# Reset mails one account may receive per hour, whatever addresses or clients ask.
PER_ACCOUNT_PER_HOUR = 3


@dataclass(frozen=True)
class Issued:
    """What `issue_for` did: the account and its link, or why nothing was sent."""

    user: User | None
    url: str = ""
    forgot_url: str = ""
    reason: str = ""


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def fingerprint(user: User) -> str:
    """The fingerprint of `user`'s current password hash that a token is bound to."""
    return _digest(user.password_hash)


def issue_for(email: str, task_id: int, ip: str | None) -> Issued:
    """Create a token for the approved account with address `email` (the caller commits)."""
    user = db.session.scalar(select(User).where(func.lower(User.email) == email.strip().lower()))
    if user is None:
        audit.record("password_reset_ignored", None, {"email": email[:255], "ip": ip},
                     source="worker")
        db.session.commit()
        return Issued(None, reason="no account has this address; nothing sent")
    if user.status != "approved":
        audit.record("password_reset_refused", user.username, {"reason": user.status, "ip": ip},
                     source="worker")
        db.session.commit()
        return Issued(None, reason=f"the account is {user.status}; nothing sent")
    if user.auth_source != "local":
        # the directory owns this password; a reset here would give the account a local one
        audit.record("password_reset_refused", user.username, {"reason": "directory account", "ip": ip},
                     source="worker")
        db.session.commit()
        return Issued(None, reason="the password is managed in the directory; nothing sent")
    # a retry of this task replaces the token it made before rather than counting twice
    db.session.execute(delete(PasswordResetToken).where(PasswordResetToken.task_id == task_id,
                                                        PasswordResetToken.used_at.is_(None)))
    now = clock.now()
    recent = db.session.scalar(select(func.count(PasswordResetToken.id)).where(
        PasswordResetToken.user_id == user.id, PasswordResetToken.created_at > now - timedelta(hours=1)))
    if recent >= PER_ACCOUNT_PER_HOUR:
        audit.record("password_reset_throttled", user.username, {"ip": ip}, level="warning", source="worker")
        db.session.commit()
        return Issued(None, reason="this account had enough reset mails this hour; nothing sent")
    token = secrets.token_urlsafe(32)
    db.session.add(PasswordResetToken(
        user_id=user.id, token_hash=_digest(token), password_fingerprint=fingerprint(user), task_id=task_id,
        created_at=now, expires_at=now + timedelta(minutes=VALID_MINUTES)))
    audit.record("password_reset_mailed", user.username, {"ip": ip}, source="worker")
    return Issued(user, url=absolute_url("auth.reset_password", token=token),
                  forgot_url=absolute_url("auth.forgot_password"))


def find_valid(token: str) -> PasswordResetToken | None:
    """The live token row for `token`: unused, unexpired, and its password unchanged since."""
    if not token or len(token) > 128:
        return None
    row = db.session.scalar(select(PasswordResetToken).where(PasswordResetToken.token_hash == _digest(token)))
    if row is None or row.used_at is not None or row.expires_at <= clock.now():
        return None
    user = db.session.get(User, row.user_id)
    if user is None or user.status != "approved" or user.auth_source != "local" or not secrets.compare_digest(
            row.password_fingerprint, fingerprint(user)):
        return None
    return row


def consume(row: PasswordResetToken) -> bool:
    """Mark the token used (once: a second, concurrent use gets False); the caller commits."""
    result = db.session.execute(
        update(PasswordResetToken)
        .where(PasswordResetToken.id == row.id, PasswordResetToken.used_at.is_(None))
        .values(used_at=clock.now())
        .execution_options(synchronize_session=False))
    return result.rowcount == 1
