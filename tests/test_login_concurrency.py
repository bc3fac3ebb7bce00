"""Parallel logins to one account on MariaDB: none of them may fail.

Each login inserts a login_attempts and a user_sessions row (both with a foreign key to
users, so InnoDB takes a shared lock on the user row) and updates users.last_login: two
such transactions deadlock unless the user row is locked first. Rounds of parallel
logins through the real form, every one must end in the redirect of a successful login.
"""

from __future__ import annotations

import threading
import time
from collections import Counter

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import AuditLog, LoginAttempt, UserSession
from tests.builders import PASSWORD, make_user
from tests.support import csrf_token, require_service

pytestmark = pytest.mark.integration
ROUNDS, PARALLEL = 8, 6


def _login_round(app, username: str) -> list[int | str]:
    """Log `PARALLEL` fresh clients in at the same moment; returns each status (or the error raised)."""
    clients = [app.test_client() for _ in range(PARALLEL)]
    tokens = [csrf_token(client, "/login") for client in clients]
    barrier = threading.Barrier(PARALLEL, timeout=30)
    results: list[int | str] = [0] * PARALLEL

    def login(index: int) -> None:
        barrier.wait()
        try:
            response = clients[index].post("/login", data={
                "username": username, "password": PASSWORD, "csrf_token": tokens[index]})
            results[index] = response.status_code
        except Exception as exc:  # noqa: BLE001 - an escaped error is a failed login, reported below
            results[index] = f"{type(exc).__name__}: {exc}"

    threads = [threading.Thread(target=login, args=(n,)) for n in range(PARALLEL)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not any(thread.is_alive() for thread in threads), "a login hung"
    return results


def test_parallel_logins_to_one_account_all_succeed(app, database_url):
    require_service("MariaDB", database_url.startswith("mysql"))
    with app.app_context():
        user = make_user(role="regular")
        username, user_id = user.username, user.id
    started = time.monotonic()
    outcomes = [status for _ in range(ROUNDS) for status in _login_round(app, username)]
    assert time.monotonic() - started < 120
    assert Counter(outcomes) == {302: ROUNDS * PARALLEL}, Counter(outcomes)
    with app.app_context():
        logins = ROUNDS * PARALLEL
        assert db.session.scalar(select(func.count()).select_from(UserSession)
                                 .where(UserSession.user_id == user_id)) == logins
        assert db.session.scalar(select(func.count()).select_from(LoginAttempt)
                                 .where(LoginAttempt.user_id == user_id, LoginAttempt.success)) == logins
        assert db.session.scalar(select(func.count()).select_from(AuditLog)
                                 .where(AuditLog.action_type == "user_logged_in")) == logins
