"""Request analytics: a middleware records every request into a buffer that a flusher writes in batches.

`init_analytics(app)` is the one call the factory makes. Per-minute rollups (`rollup.py`) are
computed by the worker; the traffic page (`routes.py`) and the account trail read them.
"""

from __future__ import annotations

from flask import Flask


def init_analytics(app: Flask) -> None:
    """Register the recording hooks when `ANALYTICS_ENABLED`; starts nothing (the flusher starts on use)."""
    if not app.config["ANALYTICS_ENABLED"]:
        return
    from app.analytics.middleware import register

    register(app)
