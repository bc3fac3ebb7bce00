"""The admin's provisioning form: server (default: placement), image, CPU and memory, or no workspace."""

from __future__ import annotations

from flask import current_app
from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import BooleanField, DecimalField, IntegerField, SelectField, SubmitField
from wtforms.validators import DataRequired, NumberRange

from app.extensions import db
from app.models import WorkspaceImage
from app.models.server import Server
from app.services.default_image import default_workspace_image


class ProvisionForm(FlaskForm):
    """Approve (when pending) and provision a workspace."""

    server = SelectField("Server", coerce=int, default=0)
    image = SelectField("Image", validators=[DataRequired()])
    cpu = DecimalField("CPU cores", places=2, validators=[DataRequired(), NumberRange(0.1, 64)])
    memory_mb = IntegerField("Memory (MiB)", validators=[DataRequired(), NumberRange(128, 262144)])
    without_workspace = BooleanField(
        "Approve without a workspace",
        description="The account is approved and gets no workspace until you provision one.",
    )
    submit = SubmitField("Approve and provision")

    def fill_choices(self) -> None:
        """Servers (placement first) and images (the workspace image list, else the default)."""
        servers = db.session.scalars(select(Server).order_by(Server.name)).all()
        self.server.choices = [(0, "Automatic (least-loaded online server)")] + [
            (s.id, f"{s.name} ({s.status})") for s in servers
        ]
        refs = list(db.session.scalars(select(WorkspaceImage.ref).order_by(WorkspaceImage.ref)))
        default = default_workspace_image()
        if default.ref not in refs:
            refs.insert(0, default.ref)
        self.image.choices = [(ref, default.label if ref == default.ref else ref) for ref in refs]
        if self.image.data is None:
            self.image.data = default.ref
        if self.cpu.data is None:
            self.cpu.data = current_app.config["DEFAULT_CPU"]
        if self.memory_mb.data is None:
            self.memory_mb.data = current_app.config["DEFAULT_MEMORY_MB"]


class DeleteWorkspaceForm(FlaskForm):
    """Delete a workspace, optionally with its folder."""

    remove_folder = BooleanField("Also remove the workspace folder")
    submit = SubmitField("Delete workspace")
