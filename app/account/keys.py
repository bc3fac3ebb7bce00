"""API keys: create (shown once, rate-limited, capped per user), list by prefix, revoke."""

from __future__ import annotations

import secrets
from datetime import datetime, time

from flask import abort, current_app, flash, redirect, render_template, url_for
from flask_login import current_user, login_required
from sqlalchemy import select
from werkzeug.wrappers import Response

from app.account.forms import ApiKeyForm
from app.account.routes import bp
from app.extensions import db
from app.forms_common import ConfirmForm
from app.models import ApiKey, User
from app.models.security import sha256_hex
from app.security import clock
from app.security.ratelimit import rate_limit
from app.services import accounts, audit

KEY_PREFIX = "slw_"


def new_key_value() -> str:
    """A fresh random API key; its first 12 characters are the listed prefix."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def _my_key_or_404(key_id: int) -> ApiKey:
    key = db.session.get(ApiKey, key_id)
    if key is None or key.user_id != current_user.id:
        abort(404)
    return key


def _at_cap() -> str | None:
    """The refusal when the current user already has the most live keys allowed, else None."""
    # Lock the user's row so two simultaneous creations cannot both slip under the cap.
    db.session.execute(select(User.id).where(User.id == current_user.id).with_for_update())
    cap = current_app.config["API_KEYS_MAX"]
    if accounts.live_api_key_count(current_user) < cap:
        return None
    return f"You already have {cap} active API keys, the most allowed. Revoke one you no longer use first."


@bp.route("/api-keys", methods=["GET", "POST"])
@login_required
@rate_limit("RATELIMIT_API_KEYS")
def api_keys() -> str | Response:
    """List your API keys and create a new one (its value is shown once)."""
    form = ApiKeyForm()
    created = None
    if form.validate_on_submit():
        now = clock.now()
        expires = datetime.combine(form.expires_on.data, time.max) if form.expires_on.data else None
        if expires is not None and expires <= now:
            form.expires_on.errors.append("The expiry date must be in the future.")
        elif (refusal := _at_cap()) is not None:
            flash(refusal, "danger")
        else:
            created = new_key_value()
            key = ApiKey(
                user_id=current_user.id,
                name=form.name.data.strip(),
                prefix=created[:12],
                key_hash=sha256_hex(created),
                scope=form.scope.data,
                created_at=now,
                expires_at=expires.replace(microsecond=0) if expires else None,
            )
            db.session.add(key)
            audit.record(
                "api_key_created",
                current_user.username,
                {"name": key.name, "prefix": key.prefix, "scope": key.scope},
            )
            db.session.commit()
            form = ApiKeyForm(formdata=None)
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
