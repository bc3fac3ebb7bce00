"""Forms of the images area: build, push, registries, uploads, workspace images, policy."""

from __future__ import annotations

import re

from flask import current_app
from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from wtforms import (
    DecimalField,
    IntegerField,
    PasswordField,
    SelectField,
    StringField,
    SubmitField,
    TextAreaField,
    ValidationError,
)
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange, Optional

from app.security.outbound import registry_host_check

# Docker's own grammar, kept strict: lower-case path components, optional host[:port] first.
REPOSITORY_RE = re.compile(
    r"^(?:[a-z0-9.-]+(?::[0-9]{1,5})?/)?[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*$"
)
TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
HOST_RE = re.compile(r"^[A-Za-z0-9.-]+(?::[0-9]{1,5})?$")
BUILDARG_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


def repository_check(form: FlaskForm, field: StringField) -> None:
    """A Docker repository name (lower case, optional registry host)."""
    if not REPOSITORY_RE.fullmatch(field.data or "") or len(field.data) > 200:
        raise ValidationError("Use a Docker repository name, e.g. team/app or 127.0.0.1:5000/team/app.")


def tag_check(form: FlaskForm, field: StringField) -> None:
    """A Docker tag."""
    if not TAG_RE.fullmatch(field.data or ""):
        raise ValidationError("A tag is letters, digits, '_', '.', '-' (128 at most), e.g. latest.")


def parse_buildargs(text: str) -> dict[str, str]:
    """`NAME=value` lines into a dict; raises ValueError naming the bad line."""
    args: dict[str, str] = {}
    for number, line in enumerate((text or "").splitlines(), start=1):
        if not line.strip():
            continue
        name, sep, value = line.partition("=")
        if not sep or not BUILDARG_RE.fullmatch(name.strip()):
            raise ValueError(f"line {number}: write NAME=value (NAME: letters, digits, _)")
        args[name.strip()] = value.strip()
    return args


class BuildForm(FlaskForm):
    """Build an image on a server from a Dockerfile and an optional context archive."""

    server_id = SelectField("Server", coerce=int, validators=[InputRequired()])
    repository = StringField("Repository", validators=[DataRequired(), repository_check])
    tag = StringField("Tag", default="latest", validators=[DataRequired(), tag_check])
    dockerfile = TextAreaField("Dockerfile", validators=[DataRequired()])
    context = FileField("Build context (optional .tar or .tar.gz)")
    buildargs = TextAreaField("Build arguments (NAME=value, one per line)", validators=[Optional()])
    submit = SubmitField("Build")

    def validate_dockerfile(self, field: TextAreaField) -> None:
        """Refuse Dockerfiles over the configured size."""
        limit = current_app.config["DOCKERFILE_MAX_BYTES"]
        if len((field.data or "").encode()) > limit:
            raise ValidationError(f"The Dockerfile is larger than {limit} bytes.")

    def validate_buildargs(self, field: TextAreaField) -> None:
        """Build arguments must parse."""
        try:
            parse_buildargs(field.data or "")
        except ValueError as exc:
            raise ValidationError(str(exc)) from exc


class PushForm(FlaskForm):
    """Push an image of a server to a registry."""

    server_id = SelectField("Server", coerce=int, validators=[InputRequired()])
    registry_id = SelectField("Registry", coerce=int, validators=[InputRequired()])
    repository = StringField("Repository on the server", validators=[DataRequired(), repository_check])
    tag = StringField("Tag", default="latest", validators=[DataRequired(), tag_check])
    submit = SubmitField("Push")


class PullForm(FlaskForm):
    """Pull an image from a registry onto a server."""

    server_id = SelectField("Server", coerce=int, validators=[InputRequired()])
    registry_id = SelectField("Registry", coerce=int, validators=[InputRequired()])
    repository = StringField("Repository in the registry", validators=[DataRequired(), repository_check])
    tag = StringField("Tag", default="latest", validators=[DataRequired(), tag_check])
    submit = SubmitField("Pull")


class RegistryForm(FlaskForm):
    """Add or edit a registry; an empty password keeps the stored one."""

    name = StringField("Name", validators=[DataRequired(), Length(max=64)])
    host = StringField("Registry host[:port]", validators=[DataRequired(), Length(max=255)])
    username = StringField("Username", validators=[Optional(), Length(max=255)])
    password = PasswordField("Password (leave empty to keep the stored one)",
                             validators=[Optional(), Length(max=512)])
    submit = SubmitField("Save")

    def validate_host(self, field: StringField) -> None:
        """A host name or IP with an optional port, no scheme or path."""
        if not HOST_RE.fullmatch(field.data or ""):
            raise ValidationError("Give host[:port] only, e.g. 127.0.0.1:5000 (no https://, no path).")
        registry_host_check(field.data)


class ImportForm(FlaskForm):
    """Import an uploaded tarball as an image on a server."""

    server_id = SelectField("Server", coerce=int, validators=[InputRequired()])
    repository = StringField("Repository", validators=[DataRequired(), repository_check])
    tag = StringField("Tag", default="latest", validators=[DataRequired(), tag_check])
    submit = SubmitField("Import")


class WorkspaceImageForm(FlaskForm):
    """Offer an image to users on approval, with its default resources."""

    ref = StringField("Image (repository:tag)", validators=[DataRequired(), Length(max=255)])
    description = StringField("Description", validators=[Optional(), Length(max=255)])
    default_cpu = DecimalField("Default CPU (cores)", places=2, default=1,
                               validators=[InputRequired(), NumberRange(min=0.1, max=64)])
    default_memory_mb = IntegerField("Default memory (MB)", default=1024,
                                     validators=[InputRequired(), NumberRange(min=128, max=262144)])
    submit = SubmitField("Add")

    def validate_ref(self, field: StringField) -> None:
        """repository[:tag] in Docker's grammar."""
        repository, _, tag = (field.data or "").rpartition(":")
        if not repository or "/" in tag:
            repository, tag = field.data or "", "latest"
        if not REPOSITORY_RE.fullmatch(repository) or not TAG_RE.fullmatch(tag):
            raise ValidationError("Use repository:tag, e.g. slipway/workspace:latest.")


class PolicyForm(FlaskForm):
    """The allow-lists a Dockerfile's FROM must match."""

    allowed_bases = TextAreaField("Allowed base images (one per line, * wildcards, e.g. debian:12)")
    allowed_registries = TextAreaField("Allowed registries (one host[:port] per line)")
    submit = SubmitField("Save policy")

    def validate_allowed_registries(self, field: TextAreaField) -> None:
        """Each line is host[:port]."""
        for line in (field.data or "").splitlines():
            if line.strip() and not HOST_RE.fullmatch(line.strip()):
                raise ValidationError(f"'{line.strip()}' is not host[:port].")
        if not lines(field.data) and not lines(self.allowed_bases.data):
            raise ValidationError("Allow at least one base image or registry; "
                                  "with none every build is refused.")


def lines(text: str | None) -> list[str]:
    """Non-empty stripped lines of a textarea."""
    return [line.strip() for line in (text or "").splitlines() if line.strip()]


class BuildTemplateForm(FlaskForm):
    """A named Dockerfile offered on the build form."""

    name = StringField("Name", validators=[DataRequired(), Length(max=64)])
    description = StringField("Description", validators=[Optional(), Length(max=255)])
    dockerfile = TextAreaField("Dockerfile", validators=[DataRequired()])
    submit = SubmitField("Save template")

    def validate_dockerfile(self, field: TextAreaField) -> None:
        """Refuse Dockerfiles over the configured size."""
        limit = current_app.config["DOCKERFILE_MAX_BYTES"]
        if len((field.data or "").encode()) > limit:
            raise ValidationError(f"The Dockerfile is larger than {limit} bytes.")
