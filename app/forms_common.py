"""Form pieces shared by several areas."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import Field, ValidationError

from app.validators import password_problem


class ConfirmForm(FlaskForm):
    """An empty form: one-button actions post it so they carry a CSRF token."""


def strong_password(form: FlaskForm, field: Field) -> None:
    """WTForms validator applying the shared password rule."""
    problem = password_problem(field.data or "")
    if problem:
        raise ValidationError(problem)
