"""Forms for the account security pages."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import BooleanField, DateField, PasswordField, SelectField, StringField, SubmitField
from wtforms.validators import DataRequired, EqualTo, Length, Optional

from app.forms_common import strong_password
from app.models import API_SCOPES


class ChangePasswordForm(FlaskForm):
    """Change your own password; the current one is required."""

    current_password = PasswordField("Current password", validators=[DataRequired(), Length(max=1024)])
    new_password = PasswordField(
        "New password",
        validators=[DataRequired(), strong_password],
        description="At least 12 characters, at most 72 bytes, hard to guess; not one of your last 5.",
    )
    new_password_confirm = PasswordField(
        "Repeat new password", validators=[DataRequired(), EqualTo("new_password", "Passwords differ.")]
    )
    revoke_api_keys = BooleanField("Also revoke my API keys")
    submit = SubmitField("Change password")


class DisableMfaForm(FlaskForm):
    """Turning MFA off needs the password and a current code."""

    password = PasswordField("Password", validators=[DataRequired(), Length(max=1024)])
    code = StringField("Code or backup code", validators=[DataRequired(), Length(max=16)])
    submit = SubmitField("Disable two-factor authentication")


class RegenerateCodesForm(FlaskForm):
    """New backup codes need the password (the old ones stop working)."""

    password = PasswordField("Password", validators=[DataRequired(), Length(max=1024)])
    submit = SubmitField("Generate new backup codes")


class ApiKeyForm(FlaskForm):
    """Create an API key."""

    name = StringField(
        "Name", validators=[DataRequired(), Length(max=64)], description="What the key is for."
    )
    scope = SelectField("Scope", choices=[(s, s) for s in API_SCOPES], default="read")
    expires_on = DateField("Expires on (optional)", validators=[Optional()])
    submit = SubmitField("Create key")
