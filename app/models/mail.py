"""E-mail rows: per-user opt-outs by notification kind, and password-reset tokens (stored hashed)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.timeutil import utcnow

# Kinds a user may switch off; security mail (password, MFA, new login) is not among them.
MAIL_KINDS = ("registrations", "account", "builds", "alerts")


class MailOptOut(db.Model):
    """A user does not want mail of `kind`; no row means they do."""

    __tablename__ = "mail_opt_outs"
    __table_args__ = (UniqueConstraint("user_id", "kind", name="uq_mail_opt_outs_user_kind"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(32))


class PasswordResetToken(db.Model):
    """One reset link: only its SHA-256 is kept, with a fingerprint of the password it may replace."""

    __tablename__ = "password_reset_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # SHA-256 of the password hash when issued: a changed password kills the token.
    password_fingerprint: Mapped[str] = mapped_column(String(64))
    task_id: Mapped[int | None] = mapped_column(index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
