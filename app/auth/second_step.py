"""The second login step: TOTP or backup code, or a forced MFA setup for roles that require it.

Between the password and the code the browser holds only `mfa_user_id` in its session; it is
not logged in, so every other page treats it as anonymous.
"""

from __future__ import annotations

from flask import current_app, flash, redirect, render_template, request, session, url_for
from flask_login import current_user
from werkzeug.wrappers import Response

from app.auth.forms import MfaCodeForm, MfaSetupForm
from app.auth.routes import bp, finish_login, home_for, safe_next
from app.auth.sessions import start_session
from app.extensions import db
from app.models import User
from app.security import bruteforce, clock, mfa
from app.security.ratelimit import rate_limit
from app.services import audit

PENDING_SECONDS = 300


def _pending_user() -> User | None:
    """The half-logged-in user, or None when there is none or it went stale."""
    user_id = session.get("mfa_user_id")
    started = session.get("mfa_started", 0)
    if user_id is None or clock.timestamp() - started > PENDING_SECONDS:
        return None
    user = db.session.get(User, user_id)
    if user is None or bruteforce.locked_until(user.username, user, request.remote_addr) is not None:
        return None
    return user


def _back_to_login() -> Response:
    session.clear()
    flash("Please log in again.", "info")
    return redirect(url_for("auth.login"))


@bp.route("/login/mfa", methods=["GET", "POST"])
@rate_limit("RATELIMIT_MFA")
def mfa_verify() -> str | Response:
    """Ask the half-logged-in user for a TOTP or backup code."""
    if current_user.is_authenticated:  # a reload or the back button after logging in
        return redirect(home_for(current_user))
    user = _pending_user()
    if user is None or not user.mfa_enabled:
        return _back_to_login()
    form = MfaCodeForm()
    if form.validate_on_submit():
        kind = mfa.verify_second_factor(user, form.code.data)
        if kind is not None:
            if kind == "backup_code":
                left = mfa.remaining_backup_codes(user)
                audit.record("mfa_backup_code_used", user.username, {"remaining": left}, level="warning")
                flash(f"Backup code accepted; {left} left. Regenerate them on your security page.", "warning")
            return finish_login(user, session.get("mfa_next"))
        ip = request.remote_addr or "unknown"
        bruteforce.record_failure(user, user.username, ip)
        audit.record("mfa_failed", user.username, level="warning")
        db.session.commit()
        if bruteforce.locked_until(user.username, user, ip) is not None:
            return _back_to_login()
        flash("That code is not valid (codes work once each).", "danger")
    return render_template("auth/mfa_verify.html", form=form)


@bp.route("/login/mfa/setup", methods=["GET", "POST"])
@rate_limit("RATELIMIT_MFA")
def mfa_setup() -> str | Response:
    """Forced MFA setup: a role that requires MFA sets it up before anything else."""
    if current_user.is_authenticated:  # the back button after the backup-codes page
        return redirect(home_for(current_user))
    user = _pending_user()
    if user is None or user.mfa_enabled:
        return _back_to_login()
    secret = setup_secret()
    form = MfaSetupForm()
    if form.validate_on_submit():
        if mfa.verify_totp(user, form.code.data, secret=secret):
            codes = mfa.enable(user, secret)
            target = session.get("mfa_next")
            bruteforce.record_success(user, request.remote_addr or "unknown")
            start_session(user)
            audit.record("user_logged_in", user.username, {"status": user.status, "mfa": True})
            db.session.commit()
            return render_template(
                "account/backup_codes.html", codes=codes, next_url=safe_next(target) or home_for(user)
            )
        flash("That code does not match. Check your device's clock and try again.", "danger")
    return setup_page(form, secret, user.username, forced=True)


def setup_secret() -> str:
    """The TOTP secret being set up in this browser session (a new one on the first visit)."""
    if "mfa_setup_secret" not in session:
        session["mfa_setup_secret"] = mfa.seal(mfa.new_secret())
    return mfa.unseal(session["mfa_setup_secret"])


def setup_page(form: MfaSetupForm, secret: str, username: str, *, forced: bool) -> str:
    """The MFA setup page: the secret, its QR code (inline SVG) and the confirmation form."""
    return render_template(
        "auth/mfa_setup.html",
        form=form,
        secret=secret,
        qr=mfa.qr_svg(mfa.provisioning_uri(secret, username)),
        forced=forced,
        issuer=current_app.config["MFA_ISSUER"],
    )
