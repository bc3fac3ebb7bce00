"""The connection log (sessions of use of a workspace app, from the edge's access log) and its tail cursor."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db

BigId = BigInteger().with_variant(Integer(), "sqlite")
ADDRESS_LENGTH = 45


class ConnectionSession(db.Model):
    """One person's use of one workspace app from one address, until a gap longer than the session gap.

    `owner` is the workspace's username (kept as text so history outlives the workspace);
    `username` is who was let in by the owner check (the owner, or an admin), "" when unknown.
    """

    __tablename__ = "connection_log"
    __table_args__ = (
        Index("ix_connection_log_owner_last", "owner", "last_at"),
        Index("ix_connection_log_username_last", "username", "last_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    owner: Mapped[str] = mapped_column(String(32))
    app: Mapped[str] = mapped_column(String(16))
    username: Mapped[str] = mapped_column(String(32), default="")
    client_addr: Mapped[str] = mapped_column(String(ADDRESS_LENGTH), default="")
    started_at: Mapped[datetime]
    last_at: Mapped[datetime] = mapped_column(index=True)
    requests: Mapped[int] = mapped_column(default=0)
    websockets: Mapped[int] = mapped_column(default=0)
    errors: Mapped[int] = mapped_column(default=0)
    bytes_sent: Mapped[int] = mapped_column(BigInteger, default=0)
    bytes_received: Mapped[int] = mapped_column(BigInteger, default=0)

    @property
    def duration_seconds(self) -> int:
        """Seconds from the first request's start to the last one's end."""
        return int((self.last_at - self.started_at).total_seconds())


class ConnectionTail(db.Model):
    """Where the tailer is in a log file (inode and byte offset) and what it counted; one row per log."""

    __tablename__ = "connection_tail"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    inode: Mapped[int] = mapped_column(BigInteger, default=0)
    offset: Mapped[int] = mapped_column(BigInteger, default=0)
    lines: Mapped[int] = mapped_column(BigInteger, default=0)
    garbled: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[datetime | None]
