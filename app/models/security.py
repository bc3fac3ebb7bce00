"""Account-security rows: login attempts, IP bans, MFA backup codes, API keys, password history, policy."""

from __future__ import annotations

import hashlib
from datetime import datetime

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db
from app.models.user import User
from app.timeutil import utcnow

API_SCOPES = ("read", "write", "logs:write")


def sha256_hex(value: str) -> str:
    """Hex SHA-256 of `value`; used for high-entropy secrets (keys, backup codes) only."""
    return hashlib.sha256(value.encode()).hexdigest()


class LoginAttempt(db.Model):
    """One password check at the login form: who was named, from where, and whether it passed."""

    __tablename__ = "login_attempts"
    __table_args__ = (
        Index("ix_login_attempts_ip_created", "ip_address", "created_at"),
        Index("ix_login_attempts_user_created", "user_id", "created_at"),
        Index("ix_login_attempts_login_created", "login", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    login: Mapped[str] = mapped_column(String(255))
    ip_address: Mapped[str] = mapped_column(String(45))
    success: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class BannedIP(db.Model):
    """A client address refused before any password check until `expires_at`."""

    __tablename__ = "banned_ips"

    id: Mapped[int] = mapped_column(primary_key=True)
    ip_address: Mapped[str] = mapped_column(String(45), unique=True)
    reason: Mapped[str] = mapped_column(String(255))
    created_by: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(index=True)


class MfaBackupCode(db.Model):
    """A single-use MFA backup code, stored as a hash."""

    __tablename__ = "mfa_backup_codes"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    code_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    used_at: Mapped[datetime | None]


class ApiKey(db.Model):
    """A bearer key for the JSON API: shown once, stored hashed, listed by its prefix."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    prefix: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    scope: Mapped[str] = mapped_column(String(16), default="read")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]

    user: Mapped[User] = relationship()

    def is_live(self, now: datetime) -> bool:
        """True when the key is neither revoked nor expired at `now`."""
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)


class PasswordHistory(db.Model):
    """A past password hash, so the last few cannot be chosen again."""

    __tablename__ = "password_history"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    password_hash: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class RolePolicy(db.Model):
    """Per-role security policy set by admins; a role without a row uses the configured default."""

    __tablename__ = "role_policies"

    role: Mapped[str] = mapped_column(String(16), primary_key=True)
    mfa_required: Mapped[bool] = mapped_column(default=False)
    updated_by: Mapped[str | None] = mapped_column(String(255))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
