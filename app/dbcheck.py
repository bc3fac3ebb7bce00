"""A database ping with a deadline, for the health checks: a hung database answers "no" in time.

The ping runs in a small thread pool with its own app context, so a connection attempt or a
query that hangs (a database restarting, a half-open TCP connection) cannot hold the health
request longer than the timeout; the pool bounds how many pings can be pending at once.
"""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout

from flask import Flask, current_app
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from app.extensions import db

_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="db-ping")
_QUOTED = re.compile(r"'[^'\s]*'")


def _ping(app: Flask) -> None:
    with app.app_context():
        try:
            db.session.execute(text("SELECT 1"))
        finally:
            db.session.rollback()


def describe(exc: SQLAlchemyError) -> str:
    """A short reason from a driver error: its class and code, quoted names (hosts, users) left out."""
    orig = getattr(exc, "orig", None) or exc
    args = getattr(orig, "args", ())
    code = f" {args[0]}" if args and isinstance(args[0], int) else ""
    if code:
        message = str(args[1]) if len(args) > 1 else ""
    else:
        message = str(orig)
    message = _QUOTED.sub("'…'", message)[:160]
    return f"{type(orig).__name__}{code}" + (f": {message}" if message else "")


def database_problem() -> str | None:
    """None when the database answers `SELECT 1` within HEALTH_TIMEOUT_SECONDS, else why it did not."""
    timeout = current_app.config["HEALTH_TIMEOUT_SECONDS"]
    future = _pool.submit(_ping, current_app._get_current_object())  # type: ignore[attr-defined]
    try:
        future.result(timeout=timeout)
    except FutureTimeout:
        return f"database did not answer within {timeout:g} s"
    except SQLAlchemyError as exc:
        return f"database unreachable ({describe(exc)})"
    return None
