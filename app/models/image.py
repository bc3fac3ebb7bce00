"""Registries, uploaded guest OS tarballs, workspace images, the build policy and Dockerfile templates."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Float, String, Text, select
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.security.crypto import decrypt_secret, encrypt_secret
from app.timeutil import utcnow

REGISTRY_PASSWORD_PURPOSE = "registry.password"  # noqa: S105 - an AES-GCM label, not a secret


class Registry(db.Model):
    """A Docker registry images are pushed to; the password is stored encrypted only."""

    __tablename__ = "registries"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    host: Mapped[str] = mapped_column(String(255))
    username: Mapped[str | None] = mapped_column(String(255))
    password_encrypted: Mapped[str | None] = mapped_column(String(1024))
    created_by: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    def set_password(self, password: str | None) -> None:
        """Encrypt and store `password` (None or empty clears it)."""
        self.password_encrypted = encrypt_secret(password, REGISTRY_PASSWORD_PURPOSE) if password else None

    def decrypted_password(self) -> str | None:
        """The decrypted password, for the one agent request that needs it."""
        if not self.password_encrypted:
            return None
        return decrypt_secret(self.password_encrypted, REGISTRY_PASSWORD_PURPOSE)

    @property
    def has_password(self) -> bool:
        """True when a password is stored (it is never shown)."""
        return bool(self.password_encrypted)


class Upload(db.Model):
    """A root-filesystem tarball stored under a server-chosen name in the upload directory."""

    __tablename__ = "uploads"

    id: Mapped[int] = mapped_column(primary_key=True)
    stored_name: Mapped[str] = mapped_column(String(64), unique=True)
    original_name: Mapped[str] = mapped_column(String(255))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    compression: Mapped[str] = mapped_column(String(16))
    uploaded_by: Mapped[str | None] = mapped_column(String(255), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class WorkspaceImage(db.Model):
    """An image users may get on approval, with the CPU and memory it starts with."""

    __tablename__ = "workspace_images"

    id: Mapped[int] = mapped_column(primary_key=True)
    ref: Mapped[str] = mapped_column(String(255), unique=True)
    description: Mapped[str] = mapped_column(String(255), default="")
    default_cpu: Mapped[float] = mapped_column(Float, default=1.0)
    default_memory_mb: Mapped[int] = mapped_column(default=1024)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class BuildPolicy(db.Model):
    """The admin-set build policy: one settings row (id 1) with the allow-lists."""

    __tablename__ = "build_policy"

    id: Mapped[int] = mapped_column(primary_key=True)
    allowed_bases: Mapped[list[Any]] = mapped_column(JSON, default=list)
    allowed_registries: Mapped[list[Any]] = mapped_column(JSON, default=list)
    updated_by: Mapped[str | None] = mapped_column(String(255))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    @classmethod
    def current(cls) -> BuildPolicy:
        """The policy row, or an unsaved default one when no admin has saved a policy yet.

        The default allows the workspace images the install already uses (the configured
        default image and every image offered on approval), so a first build from them works.
        """
        return db.session.get(cls, 1) or cls(id=1, allowed_bases=cls.default_bases(), allowed_registries=[])

    @staticmethod
    def default_bases() -> list[str]:
        """The configured default workspace image and the workspace-image list, without repeats."""
        from flask import current_app

        refs = [current_app.config["DEFAULT_IMAGE"], *db.session.scalars(select(WorkspaceImage.ref))]
        return list(dict.fromkeys(ref for ref in refs if ref))

    @property
    def is_default(self) -> bool:
        """True while no admin has saved a policy (the row does not exist)."""
        return db.session.get(BuildPolicy, 1) is None


class BuildTemplate(db.Model):
    """A named Dockerfile admins keep for builds; checked by the build policy when saved."""

    __tablename__ = "build_templates"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    description: Mapped[str] = mapped_column(String(255), default="")
    dockerfile: Mapped[str] = mapped_column(Text)
    updated_by: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
