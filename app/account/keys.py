"""API keys: create (shown once, rate-limited, capped per user), list by prefix, revoke."""

from __future__ import annotations

from datetime import datetime, time

from flask import abort, current_app, flash, redirect, render_template, url_for
from flask_login import current_user, login_required
from sqlalchemy import select
from werkzeug.wrappers import Response

from app.account.forms import ApiKeyForm
from app.account.routes import bp
from app.extensions import db
from app.forms_common import ConfirmForm
from app.models import ApiKey
from app.security import clock
from app.security.ratelimit import rate_limit
from app.services import accounts, audit
from app.services import api_keys as api_keys_service


def _my_key_or_404(key_id: int) -> ApiKey:
    key = db.session.get(ApiKey, key_id)
    if key is None or key.user_id != current_user.id:
        abort(404)
    return key


@bp.route("/api-keys", methods=["GET", "POST"])
@login_required
@rate_limit("RATELIMIT_API_KEYS")
def api_keys() -> str | Response:
    """List your API keys and create a new one (its value is shown once)."""
    form = ApiKeyForm()
    form.scope.choices = [(scope, scope) for scope in api_keys_service.scopes_for(current_user)]
    created = None
    if form.validate_on_submit():
        expires = datetime.combine(form.expires_on.data, time.max) if form.expires_on.data else None
        try:
            created = api_keys_service.create(current_user, form.name.data, form.scope.data, expires).value
        except api_keys_service.ApiKeyError as exc:
            if exc.field == "expires_on":
                form.expires_on.errors.append(str(exc))
            else:
                flash(str(exc), "danger")
        else:
            form = ApiKeyForm(formdata=None)
            form.scope.choices = [(scope, scope) for scope in api_keys_service.scopes_for(current_user)]
    keys = db.session.scalars(
        select(ApiKey)
        .where(ApiKey.user_id == current_user.id)
        .order_by(ApiKey.created_at.desc(), ApiKey.id.desc())
    ).all()
    return render_template(
        "account/api_keys.html",
        form=form,
        keys=keys,
        created=created,
        now=clock.now(),
        confirm=ConfirmForm(),
        live_count=accounts.live_api_key_count(current_user),
        cap=current_app.config["API_KEYS_MAX"],
    )


@bp.route("/api-keys/<int:key_id>/revoke", methods=["POST"])
@login_required
def revoke_api_key(key_id: int) -> Response:
    """Revoke one of your API keys (another user's answers 404)."""
    key = _my_key_or_404(key_id)
    if not ConfirmForm().validate_on_submit():
        abort(400)
    if key.revoked_at is None:
        key.revoked_at = clock.now()
        audit.record("api_key_revoked", current_user.username, {"prefix": key.prefix, "name": key.name})
        db.session.commit()
        flash(f"Key {key.prefix}… revoked.", "success")
    return redirect(url_for("account.api_keys"))
