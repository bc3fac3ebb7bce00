"""Users and their server-side login sessions."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import Any

from flask_login import UserMixin
from sqlalchemy import JSON, BigInteger, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db
from app.timeutil import utcnow

ROLES = ("admin", "qvp", "regular")
# "suspended": an approved account an admin has stopped; it may be reinstated.
STATUSES = ("pending", "approved", "rejected", "suspended")


class User(UserMixin, db.Model):
    """A person with an account; `role` selects permissions, `status` the approval state."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(32), unique=True)
    email: Mapped[str] = mapped_column(String(255), unique=True)
    password_hash: Mapped[str] = mapped_column(String(128))
    role: Mapped[str] = mapped_column(String(16), default="regular", index=True)
    status: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSON, default=dict)
    redirect_url: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_login: Mapped[datetime | None]
    # Account security: TOTP secret sealed with app.security.crypto, the last accepted
    # time step (replay refusal), a forced change after an admin reset, and the failure counter.
    mfa_secret: Mapped[str | None] = mapped_column(String(255))
    mfa_enabled: Mapped[bool] = mapped_column(default=False)
    mfa_last_timestep: Mapped[int | None] = mapped_column(BigInteger)
    must_change_password: Mapped[bool] = mapped_column(default=False)
    failed_logins: Mapped[int] = mapped_column(default=0)
    locked_until: Mapped[datetime | None]
    lock_cleared_at: Mapped[datetime | None]  # an admin unlock: earlier failures stop counting
    # "local": the password hash above is checked; "ldap": the directory checks the password
    # (bind as `directory_dn`), and the hash is of a random secret nobody knows.
    auth_source: Mapped[str] = mapped_column(String(16), default="local", server_default="local")
    directory_dn: Mapped[str | None] = mapped_column(String(512))

    sessions: Mapped[list[UserSession]] = relationship(back_populates="user", cascade="all, delete-orphan")

    # Set by the session loader: the raw token of the session this request runs under.
    session_token = None  # str | None; not a column
    current_session = None  # UserSession | None; not a column

    def get_id(self) -> str | None:
        """Flask-Login stores the session token, not the user id, so a session can be ended."""
        return self.session_token

    @property
    def is_approved(self) -> bool:
        """True once an admin approved the account."""
        return self.status == "approved"

    def __repr__(self) -> str:
        return f"<User {self.username} {self.role}/{self.status}>"


class UserSession(db.Model):
    """One login: the browser cookie points here, and every request checks it is still live."""

    __tablename__ = "user_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    session_token: Mapped[str] = mapped_column(String(64), unique=True)
    ip_address: Mapped[str | None] = mapped_column(String(45))
    user_agent: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    is_active: Mapped[bool] = mapped_column(default=True)

    user: Mapped[User] = relationship(back_populates="sessions")

    def is_live(self, now: datetime, idle_limit: timedelta | None = None) -> bool:
        """True while not revoked, not expired and, with `idle_limit`, not idle for that long."""
        if not self.is_active or self.expires_at <= now:
            return False
        return idle_limit is None or self.last_seen + idle_limit > now

    @staticmethod
    def hash_token(token: str) -> str:
        """Tokens are stored hashed so a database leak does not hand out live sessions."""
        return hashlib.sha256(token.encode()).hexdigest()
