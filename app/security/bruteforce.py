"""Brute-force defence: login attempts, growing account locks and IP bans kept in the database."""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import distinct, func, select

from app.extensions import db
from app.models import BannedIP, LoginAttempt, User
from app.security import clock
from app.services import audit


def active_ban(ip: str | None) -> BannedIP | None:
    """The live ban on `ip`, if any: one lookup on the unique ip_address index, no bcrypt."""
    if not ip:
        return None
    ban = db.session.scalar(select(BannedIP).where(BannedIP.ip_address == ip))
    if ban is None or ban.expires_at <= clock.now():
        return None
    return ban


# Usernames are DNS labels, so no account's name can contain the colon of this prefix.
UNKNOWN_PREFIX = "unknown:"


def login_key(user: User | None, typed: str) -> str:
    """The name attempts are counted under: the username when it exists, else a keyed hash of the typed text.

    What was typed for a name that matches no account is often a password typed in the wrong
    field; only a short HMAC of it is stored, so repeats still count and lock but nobody can read it.
    """
    if user is not None:
        return user.username
    secret = str(current_app.config["SECRET_KEY"]).encode()
    digest = hmac.new(secret, b"login-name\0" + typed.strip().lower().encode(), hashlib.sha256)
    return UNKNOWN_PREFIX + digest.hexdigest()[:16]


def locked_until(key: str, user: User | None, ip: str | None) -> datetime | None:
    """When the lock on login `key` from `ip` ends, or None when it may be tried now.

    Two locks: per login name and address (consecutive failures from `ip`, so an attacker cannot
    lock the owner out from elsewhere; unknown names lock the same way, so the lock message does
    not reveal which accounts exist), and account-wide after many failures from anywhere.
    """
    now = clock.now()
    until = user.locked_until if user and user.locked_until and user.locked_until > now else None
    ip_until = _ip_lock(key, ip or "", now, user.lock_cleared_at if user else None)
    if ip_until is not None and ip_until > now and (until is None or ip_until > until):
        until = ip_until
    return until


def _ip_lock(key: str, ip: str, now: datetime, cleared: datetime | None = None) -> datetime | None:
    threshold = current_app.config["LOGIN_LOCK_THRESHOLD"]
    since = now - timedelta(seconds=current_app.config["LOGIN_LOCK_MAX_SECONDS"])
    if cleared is not None and cleared > since:
        since = cleared
    recent = db.session.execute(
        select(LoginAttempt.success, LoginAttempt.created_at)
        .where(LoginAttempt.login == key, LoginAttempt.created_at > since)
        .where(LoginAttempt.ip_address == ip)
        .order_by(LoginAttempt.created_at.desc(), LoginAttempt.id.desc())
        .limit(threshold + 20)
    ).all()
    failures = 0
    for success, _ in recent:
        if success:
            break
        failures += 1
    if failures < threshold:
        return None
    return recent[0].created_at + timedelta(seconds=lock_seconds(failures, threshold))


def lock_seconds(failures: int, threshold: int) -> int:
    """Lock length after `failures` consecutive failures: doubles past the threshold, capped."""
    config = current_app.config
    over = max(failures - threshold, 0)
    return min(config["LOGIN_LOCK_SECONDS"] << min(over, 20), config["LOGIN_LOCK_MAX_SECONDS"])


def record_failure(user: User | None, login: str, ip: str, *, counted: bool = True) -> None:
    """Store a failed attempt, lock the account past the threshold, ban the IP past its limits.

    `counted=False` stores the attempt (it still counts against the IP) without growing the
    account's lock, used while the account is already locked. The caller commits.
    """
    now = clock.now()
    db.session.add(LoginAttempt(user_id=user.id if user else None, login=login[:255], ip_address=ip,
                                success=False, created_at=now))
    if user is not None and counted:
        user.failed_logins = (user.failed_logins or 0) + 1
        threshold = current_app.config["LOGIN_ACCOUNT_LOCK_THRESHOLD"]
        if user.failed_logins >= threshold:
            user.locked_until = now + timedelta(seconds=lock_seconds(user.failed_logins, threshold))
            audit.record(
                "account_locked",
                user.username,
                {"until": user.locked_until.isoformat(timespec="seconds"), "failures": user.failed_logins},
                level="warning",
            )
    db.session.flush()
    if counted:
        ip_until = _ip_lock(login[:255], ip, now, user.lock_cleared_at if user else None)
        if ip_until is not None and ip_until > now:
            audit.record(
                "account_locked",
                user.username if user else None,
                {"login": login[:255], "until": ip_until.isoformat(timespec="seconds"), "for_ip": ip},
                level="warning",
            )
    _maybe_ban(ip, now)


def _maybe_ban(ip: str, now: datetime) -> None:
    config = current_app.config
    since = now - timedelta(seconds=config["IP_BAN_WINDOW_SECONDS"])
    failures, accounts = db.session.execute(
        select(func.count(LoginAttempt.id), func.count(distinct(LoginAttempt.login))).where(
            LoginAttempt.ip_address == ip, LoginAttempt.created_at >= since, LoginAttempt.success.is_(False)
        )
    ).one()
    if failures < config["IP_BAN_FAILURES"] or accounts < config["IP_BAN_ACCOUNTS"]:
        return
    reason = f"{failures} failed logins for {accounts} accounts within {config['IP_BAN_WINDOW_SECONDS']} s"
    ban(ip, reason, config["IP_BAN_SECONDS"], actor=None)


def ban(ip: str, reason: str, seconds: int, *, actor: str | None) -> BannedIP:
    """Ban `ip` for `seconds` (renewing an existing row) and audit it. The caller commits."""
    now = clock.now()
    row = db.session.scalar(select(BannedIP).where(BannedIP.ip_address == ip))
    if row is None:
        row = BannedIP(ip_address=ip)
        db.session.add(row)
    row.reason = reason[:255]
    row.created_by = actor
    row.created_at = now
    row.expires_at = now + timedelta(seconds=seconds)
    audit.record(
        "ip_banned",
        actor,
        {"ip": ip, "reason": row.reason, "until": row.expires_at.isoformat(timespec="seconds")},
        level="warning",
    )
    return row


def record_success(user: User, ip: str) -> None:
    """Store a successful password check and clear the account's failure count. The caller commits."""
    db.session.add(LoginAttempt(user_id=user.id, login=user.username, ip_address=ip, success=True,
                                created_at=clock.now()))
    user.failed_logins = 0
    user.locked_until = None
