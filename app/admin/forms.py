"""Admin forms. Filter forms are GET forms without CSRF; every change is a POST with it."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    DateField,
    PasswordField,
    SelectField,
    StringField,
    SubmitField,
    TextAreaField,
)
from wtforms.validators import DataRequired, Length, Optional

from app.forms_common import strong_password
from app.models import ROLES, STATUSES


class RejectForm(FlaskForm):
    """Reject a pending account, saying why."""

    reason = TextAreaField("Reason", validators=[DataRequired(), Length(max=500)])
    submit = SubmitField("Reject")


class RoleForm(FlaskForm):
    """Change a user's role."""

    role = SelectField("Role", choices=[(r, r) for r in ROLES])
    submit = SubmitField("Change role")


class ResetPasswordForm(FlaskForm):
    """Set a new password for someone else."""

    password = PasswordField("New password", validators=[DataRequired(), strong_password])
    revoke_api_keys = BooleanField("Also revoke their API keys")
    submit = SubmitField("Reset password")


class UserFilterForm(FlaskForm):
    """Search and filter the user list."""

    class Meta:
        csrf = False

    q = StringField("Search", validators=[Optional(), Length(max=255)])
    status = SelectField(
        "Status", choices=[("", "any status")] + [(s, s) for s in STATUSES], validate_choice=False
    )
    role = SelectField("Role", choices=[("", "any role")] + [(r, r) for r in ROLES], validate_choice=False)


class AuditFilterForm(FlaskForm):
    """Filter the audit log."""

    class Meta:
        csrf = False

    user = StringField("User", validators=[Optional(), Length(max=255)])
    action = StringField("Action", validators=[Optional(), Length(max=64)])
    date_from = DateField("From", validators=[Optional()])
    date_to = DateField("To", validators=[Optional()])


class SuspendForm(FlaskForm):
    """Suspend an approved account, optionally saying why (kept in the audit log)."""

    reason = TextAreaField("Reason (optional)", validators=[Optional(), Length(max=500)])
    submit = SubmitField("Suspend")
