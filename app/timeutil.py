"""Time helpers: every stored time is naive UTC (MariaDB DATETIME has no zone)."""

from datetime import UTC, datetime


def utcnow() -> datetime:
    """The current time as naive UTC, the form every timestamp column stores."""
    return datetime.now(UTC).replace(tzinfo=None)
