"""Server-side sessions: the cookie holds a random token, the row decides if it still counts."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from datetime import timedelta

from flask import current_app, request, session
from flask_login import login_user, logout_user
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from app.extensions import db, login_manager
from app.models import User, UserSession
from app.security import clock

# Writing last_seen on every request would turn every page view into a write.
LAST_SEEN_RESOLUTION = timedelta(minutes=1)
MYSQL_DEADLOCK = 1213  # ER_LOCK_DEADLOCK: InnoDB rolled this transaction back to break a cycle
log = logging.getLogger(__name__)


def lock_user_row(user: User) -> None:
    """Take the write lock on `user`'s row before any insert that references it.

    A login inserts login_attempts and user_sessions rows (their foreign keys take a shared
    lock on the user row) and then updates users.last_login: two logins to one account would
    each hold the shared lock and wait for the other's. Locking the row first queues them instead.
    """
    db.session.execute(select(User.id).where(User.id == user.id).with_for_update())


def commit_login(work: Callable[[], None]) -> None:
    """Run `work` (the login's writes) and commit; a deadlock victim is rolled back and retried once."""
    try:
        work()
        db.session.commit()
    except OperationalError as exc:
        db.session.rollback()
        if not exc.orig or not exc.orig.args or exc.orig.args[0] != MYSQL_DEADLOCK:
            raise
        log.warning("login transaction chosen as a deadlock victim; retrying once")
        work()
        db.session.commit()


def start_session(user: User) -> UserSession:
    """Record a new login for `user`, renew the Flask session and log them in."""
    from app.mail import notify

    notify.new_login(user, request.remote_addr, request.user_agent.string or "")
    token = secrets.token_urlsafe(32)
    now = clock.now()
    row = UserSession(
        user=user,
        session_token=UserSession.hash_token(token),
        ip_address=request.remote_addr,
        user_agent=(request.user_agent.string or "")[:255],
        created_at=now,
        last_seen=now,
        expires_at=now + timedelta(hours=current_app.config["SESSION_LIFETIME_HOURS"]),
    )
    db.session.add(row)
    user.last_login = now
    session.clear()  # no fixation: nothing from before the login survives it
    user.session_token = token
    user.current_session = row
    login_user(user)
    return row


def end_session(user: User) -> None:
    """Mark the current session inactive and clear the cookie."""
    if user.current_session is not None:
        user.current_session.is_active = False
        from app.routing.sync import revoke_sessions  # the edges refuse its workspace cookies at once

        revoke_sessions(user.username, [user.current_session.id])
    logout_user()
    session.clear()


@login_manager.user_loader
def load_user(token: str) -> User | None:
    """Find the live session for `token`; expired, idle or revoked sessions load nobody."""
    row = db.session.scalar(
        select(UserSession).where(UserSession.session_token == UserSession.hash_token(token))
    )
    now = clock.now()
    idle_limit = timedelta(minutes=current_app.config["SESSION_IDLE_MINUTES"])
    if row is None or not row.is_live(now, idle_limit):
        return None
    if now - row.last_seen >= LAST_SEEN_RESOLUTION:
        row.last_seen = now
        db.session.commit()
    user = row.user
    user.session_token = token
    user.current_session = row
    return user
