"""Request analytics: raw request rows (kept days) and their per-minute rollups (kept longer)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Float, Index, Integer, SmallInteger, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db

BigId = BigInteger().with_variant(Integer(), "sqlite")

# The route label of a request no URL rule matched (404, 405 before routing): raw paths are never stored.
UNMATCHED_ROUTE = "(unmatched)"
# The method and route of the per-minute row that sums every route (exact whole-site percentiles).
ALL = "*"
ROUTE_LENGTH = 255
METHOD_LENGTH = 10
ADDRESS_LENGTH = 45


class RequestLog(db.Model):
    """One request to the web app as the analytics middleware saw it; `at` is when it finished."""

    __tablename__ = "request_logs"
    __table_args__ = (Index("ix_request_logs_user_at", "user_id", "at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(index=True)
    method: Mapped[str] = mapped_column(String(METHOD_LENGTH))
    route: Mapped[str] = mapped_column(String(ROUTE_LENGTH))
    status: Mapped[int] = mapped_column(SmallInteger)
    duration_ms: Mapped[float] = mapped_column(Float)
    # No foreign key: a batch must not fail because its user was deleted meanwhile.
    user_id: Mapped[int | None] = mapped_column(Integer)
    client_addr: Mapped[str] = mapped_column(String(ADDRESS_LENGTH))
    response_bytes: Mapped[int] = mapped_column(BigInteger)


class RequestRollup(db.Model):
    """One minute (`span_minutes` 1) or hour (60) of one route, or of the whole site (`ALL`, `ALL`).

    Minute rows hold exact percentiles of their requests; an hour row sums its minutes and holds
    their request-weighted mean percentiles (what the page shows for any span longer than a minute).
    """

    __tablename__ = "request_rollups"
    __table_args__ = (
        UniqueConstraint("span_minutes", "minute", "method", "route", name="uq_request_rollups_minute_route"),
        # the whole-site series reads one route across minutes
        Index("ix_request_rollups_route_minute", "span_minutes", "route", "method", "minute"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    span_minutes: Mapped[int] = mapped_column(SmallInteger)
    minute: Mapped[datetime]
    method: Mapped[str] = mapped_column(String(METHOD_LENGTH))
    route: Mapped[str] = mapped_column(String(ROUTE_LENGTH))
    count: Mapped[int] = mapped_column(Integer)
    errors_4xx: Mapped[int] = mapped_column(Integer)
    errors_5xx: Mapped[int] = mapped_column(Integer)
    bytes: Mapped[int] = mapped_column(BigInteger)
    duration_sum_ms: Mapped[float] = mapped_column(Float)
    p50_ms: Mapped[float] = mapped_column(Float)
    p95_ms: Mapped[float] = mapped_column(Float)
    p99_ms: Mapped[float] = mapped_column(Float)
    max_ms: Mapped[float] = mapped_column(Float)


class RequestUserRollup(db.Model):
    """One minute (`span_minutes` 1) or hour (60) of one signed-in user's requests (the busiest users)."""

    __tablename__ = "request_user_rollups"
    __table_args__ = (
        UniqueConstraint("span_minutes", "minute", "user_id", name="uq_request_user_rollups_minute_user"),
        # the busiest users are ranked from this index alone
        Index("ix_request_user_rollups_count", "span_minutes", "minute", "user_id", "count"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    span_minutes: Mapped[int] = mapped_column(SmallInteger)
    minute: Mapped[datetime]
    user_id: Mapped[int] = mapped_column(Integer)
    count: Mapped[int] = mapped_column(Integer)
    errors_4xx: Mapped[int] = mapped_column(Integer)
    errors_5xx: Mapped[int] = mapped_column(Integer)
    bytes: Mapped[int] = mapped_column(BigInteger)
