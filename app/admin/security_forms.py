"""Admin security forms: MFA policy per role and manual bans."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import IntegerField, SelectField, StringField, SubmitField, ValidationError
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange

from app.validators import is_ip

POLICY_CHOICES = [("required", "MFA required"), ("optional", "MFA optional")]


class MfaPolicyForm(FlaskForm):
    """Which roles must use two-factor authentication."""

    admin = SelectField("admin", choices=POLICY_CHOICES, validators=[InputRequired()])
    qvp = SelectField("qvp", choices=POLICY_CHOICES, validators=[InputRequired()])
    regular = SelectField("regular", choices=POLICY_CHOICES, validators=[InputRequired()])
    submit = SubmitField("Save MFA policy")


class BanForm(FlaskForm):
    """Ban an address by hand."""

    ip_address = StringField("IP address", validators=[DataRequired(), Length(max=45)])
    reason = StringField("Reason", validators=[DataRequired(), Length(max=255)])
    hours = IntegerField("Hours", default=24, validators=[DataRequired(), NumberRange(min=1, max=24 * 365)])
    submit = SubmitField("Ban")

    def validate_ip_address(self, field: StringField) -> None:
        if not is_ip((field.data or "").strip()):
            raise ValidationError("Enter an IPv4 or IPv6 address.")
