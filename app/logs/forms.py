"""Forms of the logs area: the alert rule editor."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from flask import current_app
from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import (
    BooleanField,
    IntegerField,
    SelectField,
    StringField,
    SubmitField,
    TextAreaField,
    ValidationError,
)
from wtforms.validators import DataRequired, Length, NumberRange, Optional

from app.extensions import db
from app.logs.rules import REGEX_MAX, regex_problem
from app.models import ALERT_SEVERITIES, ENTRY_LEVELS, AlertRule
from app.models.logs import RULE_GROUP_FIELDS
from app.security.outbound import url_problem

KEY_RE = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
FIELDS_MAX = 20
VALUE_MAX = 255
WINDOW_MAX = 7 * 24 * 3600
RULE_COLUMNS = ("name", "description", "enabled", "source", "category", "level", "field_equals",
                "message_regex", "threshold_count", "window_seconds", "group_by", "risk_score", "severity",
                "webhook_url")


def parse_field_equals(text: str) -> dict[str, str]:
    """`key=value` lines into a dict; raises ValidationError naming the first bad line."""
    pairs: dict[str, str] = {}
    for number, line in enumerate((text or "").splitlines(), start=1):
        if not line.strip():
            continue
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not KEY_RE.fullmatch(key):
            raise ValidationError(f"Line {number}: write key=value; keys use letters, digits, _ . : -.")
        if len(value) > VALUE_MAX:
            raise ValidationError(f"Line {number}: the value is longer than {VALUE_MAX} characters.")
        pairs[key] = value.strip()
    if len(pairs) > FIELDS_MAX:
        raise ValidationError(f"At most {FIELDS_MAX} field conditions.")
    return pairs


class RuleForm(FlaskForm):
    """Create or edit an alert rule; empty conditions match everything."""

    name = StringField("Name", validators=[DataRequired(), Length(max=100)])
    description = StringField("Description", validators=[Optional(), Length(max=500)])
    enabled = BooleanField("Enabled", default=True)
    source = StringField("Source", validators=[Optional(), Length(max=64)],
                         description="Exact source (agent, audit, task, or a shipper's name); blank for any.")
    category = StringField("Category", validators=[Optional(), Length(max=64)],
                           description="Exact category such as container.oom or audit.login_failed.")
    level = SelectField("Minimum level", choices=[("", "any")] + [(name, name) for name in ENTRY_LEVELS])
    field_equals = TextAreaField("Fields equal", validators=[Optional(), Length(max=6000)],
                                 description="One key=value per line; every one must hold.")
    message_regex = StringField("Message regex", validators=[Optional(), Length(max=REGEX_MAX)],
                                description=f"RE2 syntax, searched in the message; at most {REGEX_MAX} "
                                            "characters (no backreferences or lookaround).")
    threshold_count = IntegerField("Threshold count", default=1, validators=[NumberRange(1, 10000)],
                                   description="Fire when this many matches of one group fall in the window "
                                               "(1 fires on every match).")
    window_seconds = IntegerField("Window (seconds)", default=0, validators=[NumberRange(0, WINDOW_MAX)])
    group_by = StringField("Group by", validators=[Optional(), Length(max=32)],
                           description=f"{', '.join(RULE_GROUP_FIELDS)} or a field name; blank: one group.")
    risk_score = IntegerField("Risk score", default=50, validators=[NumberRange(0, 100)])
    severity = SelectField("Alert severity", choices=[(name, name) for name in ALERT_SEVERITIES],
                           default="medium")
    webhook_url = StringField("Webhook URL", validators=[Optional(), Length(max=500)],
                              description="Optional: new alerts of this rule are POSTed here, signed.")
    submit = SubmitField("Save")

    def __init__(self, *args: Any, editing: AlertRule | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.editing = editing
        self.parsed_fields: dict[str, str] = {}

    def validate_name(self, field: StringField) -> None:
        """Names are unique and printable."""
        field.data = (field.data or "").strip()
        if not field.data.isprintable():
            raise ValidationError("Use printable characters only.")
        if self.editing is not None and self.editing.builtin and field.data != self.editing.name:
            raise ValidationError("A built-in rule keeps its name (defaults are seeded by name).")
        clash = db.session.scalar(select(AlertRule.id).where(AlertRule.name == field.data))
        if clash is not None and (self.editing is None or clash != self.editing.id):
            raise ValidationError(f"A rule named {field.data!r} already exists.")

    def validate_source(self, field: StringField) -> None:
        """A source is one token."""
        field.data = (field.data or "").strip()
        if field.data and not KEY_RE.fullmatch(field.data):
            raise ValidationError("Use letters, digits, _ . : - only.")

    validate_category = validate_source

    def validate_field_equals(self, field: TextAreaField) -> None:
        """Each line parses as key=value."""
        self.parsed_fields = parse_field_equals(field.data or "")

    def validate_message_regex(self, field: StringField) -> None:
        """The pattern compiles on RE2 within the length cap."""
        if field.data and (problem := regex_problem(field.data)):
            raise ValidationError(problem)

    def validate_window_seconds(self, field: IntegerField) -> None:
        """A threshold needs a window."""
        if (self.threshold_count.data or 1) > 1 and not field.data:
            raise ValidationError("A threshold above 1 needs a window of at least 1 second.")

    def validate_group_by(self, field: StringField) -> None:
        """A known group or a field name."""
        field.data = (field.data or "").strip()
        if field.data and field.data not in RULE_GROUP_FIELDS and not KEY_RE.fullmatch(field.data):
            raise ValidationError(f"Use one of {', '.join(RULE_GROUP_FIELDS)} or a field name.")

    def validate_webhook_url(self, field: StringField) -> None:
        """http(s) to an address the webhook policy allows, and a secret to sign with."""
        field.data = (field.data or "").strip()
        if not field.data:
            return
        parts = urlsplit(field.data)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.username or parts.password:
            raise ValidationError("Use an http:// or https:// URL without credentials.")
        if not current_app.config.get("ALERT_WEBHOOK_SECRET"):
            raise ValidationError("Set SLIPWAY_ALERT_WEBHOOK_SECRET first: webhooks are always signed.")
        if problem := url_problem(field.data, "webhook"):
            raise ValidationError(problem)

    def values(self) -> dict[str, Any]:
        """The rule's column values from the validated form."""
        return {
            "name": self.name.data, "description": (self.description.data or "").strip(),
            "enabled": bool(self.enabled.data), "source": self.source.data or None,
            "category": self.category.data or None, "level": self.level.data or None,
            "field_equals": self.parsed_fields, "message_regex": self.message_regex.data or None,
            "threshold_count": self.threshold_count.data, "window_seconds": self.window_seconds.data or 0,
            "group_by": self.group_by.data or None, "risk_score": self.risk_score.data,
            "severity": self.severity.data, "webhook_url": self.webhook_url.data or None,
        }

    def load(self, rule: AlertRule) -> None:
        """Fill the form from `rule` (GET of the edit page)."""
        for name in RULE_COLUMNS:
            getattr(self, name).data = getattr(rule, name)
        pairs = (rule.field_equals or {}).items()
        self.field_equals.data = "\n".join(f"{key}={value}" for key, value in pairs)
        self.level.data = rule.level or ""
