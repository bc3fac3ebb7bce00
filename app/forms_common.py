"""Form pieces shared by several areas."""

from __future__ import annotations

from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import Field, ValidationError

from app.security.passwords import password_problem


class ConfirmForm(FlaskForm):
    """An empty form: one-button actions post it so they carry a CSRF token."""


def strong_password(form: FlaskForm, field: Field) -> None:
    """WTForms validator applying the shared password rule; the form's name and email count as known words."""
    known = [form[name].data for name in ("username", "email") if name in form]
    if current_user and current_user.is_authenticated:
        known += [current_user.username, current_user.email]
    problem = password_problem(field.data or "", [word for word in known if isinstance(word, str)])
    if problem:
        raise ValidationError(problem)
