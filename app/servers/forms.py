"""Forms of the servers area."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import PasswordField, SelectField, StringField, SubmitField, TextAreaField, ValidationError
from wtforms.validators import DataRequired, Length, Optional

from app.backends.swarm_client import BundleError, is_socket_url, split_bundle
from app.backends.swarm_status import placement_problem
from app.extensions import db
from app.models import Server
from app.models.server import SERVER_BACKENDS
from app.security.outbound import agent_url_problem, destination_problem
from app.validators import host_problem

SERVER_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
TOKEN_MIN_CHARS = 32
TOKEN_MAX_CHARS = 256
SOCKET_RE = re.compile(r"unix:///[A-Za-z0-9._/-]{1,200}")


class ServerForm(FlaskForm):
    """Add or edit a server. On edit a blank token keeps the stored one."""

    name = StringField("Name", validators=[DataRequired(), Length(max=64)])
    backend = SelectField("Backend", choices=[("agent", "Slipway agent (one Docker host)"),
                                              ("swarm", "Docker Swarm (a manager's Engine API)")],
                          default="agent")
    agent_url = StringField("Agent URL", validators=[DataRequired(), Length(max=255)],
                            description="http(s)://host:port of the agent, without credentials; for a Swarm "
                                        "the manager's Engine API: tcp://host:2376 (TLS) or "
                                        "unix:///var/run/docker.sock.")
    token = PasswordField("Agent token",
                          description="The agent's AGENT_TOKEN. Stored encrypted and never shown again. "
                                      "Not used by a Swarm.")
    tls_bundle = TextAreaField("Swarm TLS client certificate",
                               description="PEM: the client certificate, its key, then the CA certificate. "
                                           "Required for a tcp:// manager; stored encrypted, never shown.")
    swarm_placement = TextAreaField("Swarm placement", validators=[Length(max=500)],
                                    description="One rule a line: a constraint such as "
                                                "node.labels.slipway==yes, or spread=node.labels.zone.")
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

    def is_swarm(self) -> bool:
        """True when the form describes a Swarm server."""
        return self.backend.data == "swarm"

    def validate_backend(self, field: SelectField) -> None:
        """One of the known backends; a server keeps its backend once added."""
        if field.data not in SERVER_BACKENDS:
            raise ValidationError("Choose agent or swarm.")
        if self.editing is not None and field.data != self.editing.backend:
            raise ValidationError("A server keeps its backend; add another server instead.")

    def validate_agent_url(self, field: StringField) -> None:
        """http(s), a host the agent address policy allows, no credentials, no path (Swarm: see below)."""
        field.data = (field.data or "").strip(" ").rstrip("/")
        if self.is_swarm():
            problem = swarm_url_problem(field.data)
        else:
            problem = agent_url_problem(field.data)
        if problem:
            raise ValidationError(problem)

    def validate_tls_bundle(self, field: TextAreaField) -> None:
        """A Swarm over tcp:// needs a client certificate (kept when editing and left blank)."""
        field.data = (field.data or "").strip()
        if not self.is_swarm():
            if field.data:
                raise ValidationError("Only a Swarm server takes a TLS certificate.")
            return
        if not field.data:
            remote = not is_socket_url(self.agent_url.data or "")
            if remote and (self.editing is None or not self.editing.tls_encrypted):
                raise ValidationError("A tcp:// Swarm manager needs the client certificate bundle.")
            return
        if is_socket_url(self.agent_url.data or ""):
            raise ValidationError("A unix:// socket takes no TLS certificate.")
        try:
            split_bundle(field.data)
        except BundleError as exc:
            raise ValidationError(f"The bundle is not usable: {exc}.") from exc

    def validate_swarm_placement(self, field: TextAreaField) -> None:
        """Placement rules only for a Swarm, each a constraint or spread preference."""
        field.data = (field.data or "").strip()
        if field.data and not self.is_swarm():
            raise ValidationError("Only a Swarm server takes placement rules.")
        problem = placement_problem(field.data)
        if problem:
            raise ValidationError(problem)

    def validate_token(self, field: PasswordField) -> None:
        """Required when adding an agent; printable ASCII without spaces."""
        if self.is_swarm():
            if field.data:
                raise ValidationError("A Swarm server takes no agent token.")
            return
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
        """The publish host given, or the agent URL's host (a local socket: loopback)."""
        if is_socket_url(self.agent_url.data or ""):
            return self.publish_host.data or "127.0.0.1"
        return self.publish_host.data or (urlsplit(self.agent_url.data).hostname or "")


def swarm_url_problem(url: str) -> str | None:
    """Why `url` cannot be a Swarm manager's Engine API URL, or None."""
    if is_socket_url(url):
        if not SOCKET_RE.fullmatch(url) or "/../" in url or url.endswith("/.."):
            return "Give the socket as unix:///absolute/path (letters, digits, . _ - /)."
        return None
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in ("tcp", "https"):
        return "Use tcp://host:port or https://host:port (TLS), or unix:///var/run/docker.sock."
    return agent_url_problem(f"https://{rest}")
