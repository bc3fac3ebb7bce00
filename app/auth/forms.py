"""Forms for registration and login."""

from __future__ import annotations

import email_validator
from flask import current_app
from flask_wtf import FlaskForm
from sqlalchemy import func, select
from wtforms import EmailField, PasswordField, StringField, SubmitField, ValidationError
from wtforms.validators import DataRequired, EqualTo, Length

from app.extensions import db
from app.forms_common import strong_password
from app.models import User
from app.validators import username_problem

# email-validator's special-use names, plus `.internal`, which ICANN reserved for private use in 2024.
SPECIAL_USE_DOMAINS = (*email_validator.SPECIAL_USE_DOMAIN_NAMES, "internal")


def email_problem(address: str, *, strict_domains: bool) -> str | None:
    """Why `address` is not a valid e-mail address, or None; special-use domains pass unless strict.

    Organisations running Slipway in-house use addresses such as `name@corp.local`, which
    email-validator refuses as special-use (RFC 6761) and has no switch for. So, unless strict,
    a special-use domain is checked with a neutral `.example` label appended: every character
    and label rule still applies, only the reserved-name rule does not.
    """
    local, at, domain = address.rpartition("@")
    candidate = address
    if at and _special_use(domain):
        if strict_domains:
            return "The part after the @-sign is a special-use or reserved name (this install refuses those)."
        candidate = f"{local}@{domain}.example"
    try:
        email_validator.validate_email(candidate, check_deliverability=False)
    except email_validator.EmailNotValidError as exc:
        return str(exc)
    return None


def _special_use(domain: str) -> bool:
    name = domain.lower()
    return any(name == d or name.endswith("." + d) for d in SPECIAL_USE_DOMAINS)


class RegisterForm(FlaskForm):
    """Ask for an account; an admin approves it later."""

    username = StringField(
        "Username",
        validators=[DataRequired(), Length(max=32)],
        description="3-32 lowercase letters, digits or hyphens; it becomes part of your links.",
    )
    email = EmailField("Email", validators=[DataRequired(), Length(max=255)])
    password = PasswordField(
        "Password",
        validators=[DataRequired(), strong_password],
        description="At least 12 characters, at most 72 bytes.",
    )
    password_confirm = PasswordField(
        "Repeat password", validators=[DataRequired(), EqualTo("password", "Passwords differ.")]
    )
    submit = SubmitField("Register")

    def validate_username(self, field: StringField) -> None:
        problem = username_problem(field.data or "")
        if problem:
            raise ValidationError(problem)
        if db.session.scalar(select(User.id).where(User.username == field.data)):
            raise ValidationError("That username is taken.")

    def validate_email(self, field: EmailField) -> None:
        email = (field.data or "").lower()
        problem = email_problem(email, strict_domains=current_app.config["EMAIL_STRICT_DOMAINS"])
        if problem:
            raise ValidationError(problem)
        if db.session.scalar(select(User.id).where(func.lower(User.email) == email)):
            raise ValidationError("An account with that email already exists.")


class LoginForm(FlaskForm):
    """Username or email, and password."""

    username = StringField("Username or email", validators=[DataRequired(), Length(max=255)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=1024)])
    submit = SubmitField("Log in")


class MfaCodeForm(FlaskForm):
    """The second login step: a code from the authenticator app or a backup code."""

    code = StringField(
        "Code",
        validators=[DataRequired(), Length(max=16)],
        description="The 6-digit code from your authenticator app, or one of your backup codes.",
        render_kw={"autocomplete": "one-time-code", "inputmode": "text", "autofocus": True},
    )
    submit = SubmitField("Verify")


class MfaSetupForm(FlaskForm):
    """Confirm a new authenticator by typing its current code."""

    code = StringField(
        "Code from your app",
        validators=[DataRequired(), Length(min=6, max=8)],
        render_kw={"autocomplete": "one-time-code", "inputmode": "numeric"},
    )
    submit = SubmitField("Enable two-factor authentication")
