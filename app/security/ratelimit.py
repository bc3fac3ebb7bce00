"""Rate limits whose rates come from config, keyed on the real client address (after TrustedProxyFix)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import current_app

from app.extensions import limiter

LIMIT_MESSAGE = "Too many attempts. Please wait a moment and try again."


def rate_limit(setting: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Limit a form view's POSTs at the rate in config `setting` (e.g. "RATELIMIT_LOGIN")."""
    return limiter.limit(lambda: current_app.config[setting], methods=["POST"], error_message=LIMIT_MESSAGE)
