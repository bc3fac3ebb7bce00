"""Forms of the servers area."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import PasswordField, StringField, SubmitField, ValidationError
from wtforms.validators import DataRequired, Length, Optional

from app.extensions import db
from app.models import Server
from app.security.outbound import agent_url_problem, destination_problem
from app.validators import host_problem

SERVER_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
TOKEN_MIN_CHARS = 32
TOKEN_MAX_CHARS = 256


class ServerForm(FlaskForm):
    """Add or edit a server. On edit a blank token keeps the stored one."""

    name = StringField("Name", validators=[DataRequired(), Length(max=64)])
    agent_url = StringField("Agent URL", validators=[DataRequired(), Length(max=255)],
                            description="http(s)://host:port of the agent, without credentials.")
    token = PasswordField("Agent token",
                          description="The agent's AGENT_TOKEN. Stored encrypted and never shown again.")
    publish_host = StringField("Publish host", validators=[Optional(), Length(max=255)],
                               description="Where the edge reaches this host's published ports; "
                                           "defaults to the agent URL's host.")
    submit = SubmitField("Save")

    def __init__(self, *args: object, editing: Server | None = None, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.editing = editing

    def validate_name(self, field: StringField) -> None:
        """Names are short labels, unique across servers."""
        field.data = (field.data or "").strip(" ")  # only spaces: a newline or NUL is refused, not hidden
        if not SERVER_NAME_RE.fullmatch(field.data):
            raise ValidationError("Use 1-64 letters, digits, dots, dashes or underscores.")
        clash = db.session.scalar(select(Server.id).where(Server.name == field.data))
        if clash is not None and (self.editing is None or clash != self.editing.id):
            raise ValidationError(f"A server named {field.data!r} already exists.")

    def validate_agent_url(self, field: StringField) -> None:
        """http(s), a host the agent address policy allows, no credentials, no path."""
        field.data = (field.data or "").strip(" ").rstrip("/")
        problem = agent_url_problem(field.data)
        if problem:
            raise ValidationError(problem)

    def validate_token(self, field: PasswordField) -> None:
        """Required when adding; printable ASCII without spaces."""
        if not field.data:
            if self.editing is None:
                raise ValidationError("The agent token is required.")
            return
        if not TOKEN_MIN_CHARS <= len(field.data) <= TOKEN_MAX_CHARS:
            raise ValidationError(f"The token must be at least {TOKEN_MIN_CHARS} and at most "
                                  f"{TOKEN_MAX_CHARS} characters long.")
        if not field.data.isascii() or not field.data.isprintable() or " " in field.data:
            raise ValidationError("The token must be printable ASCII without spaces.")

    def validate_publish_host(self, field: StringField) -> None:
        """A host name or IP literal the agent address policy allows (the edge proxies to it)."""
        field.data = (field.data or "").strip(" ")
        problem = field.data and (host_problem(field.data) or destination_problem(field.data, None, "agent"))
        if problem:
            raise ValidationError(problem)

    def resolved_publish_host(self) -> str:
        """The publish host given, or the agent URL's host."""
        return self.publish_host.data or (urlsplit(self.agent_url.data).hostname or "")
