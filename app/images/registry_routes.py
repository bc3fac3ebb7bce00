"""Registries (admin): add, edit, remove, test login. Passwords are stored encrypted, never shown."""

from __future__ import annotations

import ipaddress

import requests
from flask import abort, flash, redirect, render_template, url_for
from flask_login import current_user
from sqlalchemy import select
from werkzeug.wrappers import Response

from app.extensions import db
from app.forms_common import ConfirmForm
from app.images.forms import RegistryForm
from app.images.routes import bp
from app.models import Registry
from app.permissions import permission_required
from app.security.outbound import registry_host_problem
from app.services import audit

LOGIN_TIMEOUT_SECONDS = 5


def registry_base_url(host: str) -> str:
    """`http://` for loopback registries (as Docker treats them), `https://` otherwise."""
    name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    try:
        loopback = ipaddress.ip_address(name.strip("[]")).is_loopback
    except ValueError:
        loopback = name == "localhost"
    return f"{'http' if loopback else 'https'}://{host}"


def test_login(registry: Registry) -> tuple[bool, str]:
    """Ask the registry's `/v2/` endpoint whether the stored credentials are accepted."""
    auth = (registry.username or "", registry.decrypted_password() or "") if registry.username else None
    if problem := registry_host_problem(registry.host):
        return False, problem
    try:
        response = requests.get(f"{registry_base_url(registry.host)}/v2/", auth=auth,
                                timeout=LOGIN_TIMEOUT_SECONDS, allow_redirects=False)
    except requests.RequestException as exc:
        return False, f"could not reach {registry.host}: {type(exc).__name__}"
    if response.status_code == 200:
        return True, "login accepted"
    if response.status_code == 401:
        return False, "the registry refused the username or password (401)"
    return False, f"the registry answered HTTP {response.status_code}"


@bp.route("/registries", methods=["GET", "POST"])
@permission_required("manage_registries")
def registries() -> Response | tuple[str, int] | str:
    """List registries and add one."""
    form = RegistryForm()
    if form.validate_on_submit():
        if db.session.scalar(select(Registry).where(Registry.name == form.name.data.strip())):
            form.name.errors = ["A registry with that name exists."]
        else:
            registry = Registry(name=form.name.data.strip(), host=form.host.data.strip(),
                                username=(form.username.data or "").strip() or None,
                                created_by=current_user.username)
            registry.set_password(form.password.data)
            db.session.add(registry)
            audit.record("registry_added", current_user.username,
                         {"name": registry.name, "host": registry.host, "username": registry.username})
            db.session.commit()
            flash(f"Registry {registry.name} added.", "success")
            return redirect(url_for("images.registries"))
    rows = db.session.scalars(select(Registry).order_by(Registry.name)).all()
    status = 400 if form.is_submitted() else 200
    return render_template("images/registries.html", form=form, registries=rows,
                           confirm=ConfirmForm()), status


@bp.route("/registries/<int:registry_id>/edit", methods=["GET", "POST"])
@permission_required("manage_registries")
def edit_registry(registry_id: int) -> Response | tuple[str, int] | str:
    """Edit a registry; an empty password field keeps the stored password."""
    registry = db.get_or_404(Registry, registry_id)
    form = RegistryForm(obj=registry)
    if form.validate_on_submit():
        clash = db.session.scalar(select(Registry).where(Registry.name == form.name.data.strip(),
                                                         Registry.id != registry.id))
        if clash is not None:
            form.name.errors = ["A registry with that name exists."]
        else:
            registry.name = form.name.data.strip()
            registry.host = form.host.data.strip()
            registry.username = (form.username.data or "").strip() or None
            if form.password.data:
                registry.set_password(form.password.data)
            audit.record("registry_edited", current_user.username,
                         {"name": registry.name, "host": registry.host,
                          "password_changed": bool(form.password.data)})
            db.session.commit()
            flash(f"Registry {registry.name} saved.", "success")
            return redirect(url_for("images.registries"))
    form.password.data = ""
    status = 400 if form.is_submitted() else 200
    return render_template("images/registry_edit.html", form=form, registry=registry), status


@bp.route("/registries/<int:registry_id>/delete", methods=["POST"])
@permission_required("manage_registries")
def delete_registry(registry_id: int) -> Response:
    """Remove a registry and its stored credentials."""
    registry = db.get_or_404(Registry, registry_id)
    if not ConfirmForm().validate_on_submit():
        abort(400)
    audit.record("registry_deleted", current_user.username, {"name": registry.name, "host": registry.host})
    db.session.delete(registry)
    db.session.commit()
    flash(f"Registry {registry.name} removed.", "success")
    return redirect(url_for("images.registries"))


@bp.route("/registries/<int:registry_id>/test", methods=["POST"])
@permission_required("manage_registries")
def test_registry(registry_id: int) -> Response:
    """Try the stored credentials against the registry and say what it answered."""
    registry = db.get_or_404(Registry, registry_id)
    if not ConfirmForm().validate_on_submit():
        abort(400)
    ok, message = test_login(registry)
    audit.record("registry_tested", current_user.username,
                 {"name": registry.name, "ok": ok, "result": message}, level="info" if ok else "warning")
    db.session.commit()
    flash(f"{registry.name}: {message}", "success" if ok else "danger")
    return redirect(url_for("images.registries"))
