"""The clock security code reads: tests replace it (`app.config["SECURITY_CLOCK"]`) instead of sleeping."""

from __future__ import annotations

import calendar
from collections.abc import Callable
from datetime import datetime

from flask import current_app, has_app_context

from app.timeutil import utcnow


def now() -> datetime:
    """Naive UTC now, from the app's injected clock when one is configured."""
    if has_app_context():
        clock: Callable[[], datetime] | None = current_app.config.get("SECURITY_CLOCK")
        if clock is not None:
            return clock()
    return utcnow()


def timestamp() -> int:
    """Unix seconds at `now()`."""
    return calendar.timegm(now().timetuple())

