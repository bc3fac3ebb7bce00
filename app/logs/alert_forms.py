"""Forms of the alerts pages: the list's GET filter, and the note that goes with acknowledge/resolve."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import SelectField, StringField, SubmitField, TextAreaField
from wtforms.validators import Length, Optional

from app.models import ALERT_SEVERITIES, ALERT_STATES


class AlertFilterForm(FlaskForm):
    """Filter the alerts list (a GET form: no CSRF)."""

    class Meta:
        csrf = False

    state = SelectField("State", choices=[("", "any state"), ("unresolved", "open or acknowledged")]
                        + [(s, s) for s in ALERT_STATES], default="")
    severity = SelectField("Severity", choices=[("", "any severity")] + [(s, s) for s in ALERT_SEVERITIES],
                           default="")
    rule = StringField("Rule", validators=[Optional(), Length(max=100)])


class AlertNoteForm(FlaskForm):
    """Acknowledge or resolve an alert, with an optional note kept on it and in the audit log."""

    note = TextAreaField("Note", validators=[Optional(), Length(max=1000)])
    submit = SubmitField("Save")
