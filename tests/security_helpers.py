"""Helpers for the account-security tests: a fake clock, TOTP codes, MFA enrolment."""

from __future__ import annotations

import calendar
import re

import pyotp
from flask import Flask
from sqlalchemy import select

from app.extensions import db
from app.models import AuditLog, User
from app.security import mfa
from tests.fakes import FakeClock

SECRET_RE = re.compile(r'class="mfa-secret">([A-Z2-7]+)<')
CODE_RE = re.compile(r"<code>([a-z0-9]{5}-[a-z0-9]{5})</code>")


def install_clock(app: Flask) -> FakeClock:
    """Give `app` a settable clock, aligned to the start of a TOTP step."""
    clock = FakeClock()
    clock.current = clock.current.replace(second=0, microsecond=0)
    app.config["SECURITY_CLOCK"] = clock
    return clock


def code_at(secret: str, clock: FakeClock) -> str:
    """The TOTP code for `secret` at the fake clock's time."""
    return pyotp.TOTP(secret).at(calendar.timegm(clock.current.timetuple()))


def enrol(app: Flask, username: str) -> str:
    """Turn MFA on for `username` directly in the database; returns the secret."""
    secret = mfa.new_secret()
    with app.app_context():
        user = db.session.scalar(select(User).where(User.username == username))
        user.mfa_secret = mfa.seal(secret)
        user.mfa_enabled = True
        db.session.commit()
    return secret


def actions(app: Flask) -> list[str]:
    """Every audit action so far, oldest first."""
    with app.app_context():
        return list(db.session.scalars(select(AuditLog.action_type).order_by(AuditLog.id)))


def get_user(app: Flask, username: str) -> User:
    """Load a user (detached) for assertions."""
    with app.app_context():
        user = db.session.scalar(select(User).where(User.username == username))
        db.session.expunge(user)
        return user
