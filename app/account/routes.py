"""The signed-in user's security pages: overview, password, MFA and sessions."""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, session, url_for
from flask_login import current_user, login_required
from sqlalchemy import select
from werkzeug.wrappers import Response

from app.account.forms import ChangePasswordForm, DisableMfaForm, RegenerateCodesForm
from app.analytics.trail import recent_activity
from app.auth.forms import MfaSetupForm
from app.auth.second_step import setup_page, setup_secret
from app.directory.login import DirectoryUnavailable, password_matches
from app.extensions import db
from app.forms_common import ConfirmForm
from app.mail import notify
from app.models import User, UserSession
from app.routing.sync import revoke_sessions
from app.security import clock, mfa
from app.security.passwords import check_password, recently_used, set_password
from app.security.ratelimit import rate_limit
from app.services import accounts, audit

bp = Blueprint("account", __name__, url_prefix="/account")


def live_sessions() -> list[UserSession]:
    """The current user's sessions that still count, newest first."""
    return list(
        db.session.scalars(
            select(UserSession)
            .where(
                UserSession.user_id == current_user.id,
                UserSession.is_active,
                UserSession.expires_at > clock.now(),
            )
            .order_by(UserSession.last_seen.desc(), UserSession.id.desc())
        )
    )


def _password_ok(user: User, password: str) -> bool:
    """The password check for MFA changes: the directory's for directory accounts (down counts as no)."""
    try:
        return password_matches(user, password)
    except DirectoryUnavailable:
        flash("The directory (LDAP) cannot be reached to check your password; try again later.", "warning")
        return False


@bp.route("/")
@login_required
def overview() -> str:
    """Security overview: MFA state, backup codes left, session count, links."""
    return render_template(
        "account/overview.html",
        codes_left=mfa.remaining_backup_codes(current_user) if current_user.mfa_enabled else 0,
        session_count=len(live_sessions()),
        mfa_required=mfa.mfa_required_for(current_user),
        disable_form=DisableMfaForm(),
        regenerate_form=RegenerateCodesForm(),
        activity=recent_activity(current_user.id),
    )


@bp.route("/password", methods=["GET", "POST"])
@login_required
@rate_limit("RATELIMIT_PASSWORD")
def change_password() -> str | Response:
    """Change your password; every other session of yours ends."""
    if current_user.auth_source == "ldap":
        if request.method == "POST":
            audit.record("password_change_refused", current_user.username, {"reason": "directory account"},
                         level="warning")
            db.session.commit()
            flash("Your password is managed in your organisation's directory; change it there.", "warning")
        return render_template("account/password.html", form=None, directory=True)
    form = ChangePasswordForm()
    key_count = accounts.live_api_key_count(current_user)
    form.revoke_api_keys.label.text = f"Also revoke my API keys ({key_count} active)"
    if form.validate_on_submit():
        user = current_user
        if not check_password(form.current_password.data, user.password_hash):
            audit.record("password_change_failed", user.username, level="warning")
            db.session.commit()
            form.current_password.errors.append("That is not your current password.")
        elif recently_used(user, form.new_password.data):
            form.new_password.errors.append("Choose a password you have not used among your last 5.")
        else:
            set_password(user, form.new_password.data)
            user.must_change_password = False
            ended = accounts.end_all_sessions(user, except_id=user.current_session.id)
            revoked = accounts.revoke_api_keys(user) if form.revoke_api_keys.data else 0
            audit.record("password_changed", user.username,
                         {"sessions_ended": ended, "api_keys_revoked": revoked})
            notify.password_changed(user, by_admin=False)
            db.session.commit()
            flash(f"Password changed. {ended} other session(s) ended, {revoked} API key(s) revoked.",
                  "success")
            return redirect(url_for("account.overview"))
    return render_template("account/password.html", form=form)


@bp.route("/mfa/setup", methods=["GET", "POST"])
@login_required
@rate_limit("RATELIMIT_MFA")
def mfa_setup() -> str | Response:
    """Show a new secret and QR code; a valid code turns MFA on and shows backup codes once."""
    if current_user.mfa_enabled:
        flash("Two-factor authentication is already on.", "info")
        return redirect(url_for("account.overview"))
    secret = setup_secret()
    form = MfaSetupForm()
    if form.validate_on_submit():
        if mfa.verify_totp(current_user, form.code.data, secret=secret):
            codes = mfa.enable(current_user, secret)
            db.session.commit()
            session.pop("mfa_setup_secret", None)
            return render_template(
                "account/backup_codes.html", codes=codes, next_url=url_for("account.overview")
            )
        flash("That code does not match. Check your device's clock and try again.", "danger")
    return setup_page(form, secret, current_user.username, forced=False)


@bp.route("/mfa/disable", methods=["POST"])
@login_required
@rate_limit("RATELIMIT_MFA")
def mfa_disable() -> Response:
    """Turn MFA off with the password and a current code (refused when the role requires MFA)."""
    form = DisableMfaForm()
    user = current_user
    if not form.validate_on_submit():
        flash("Enter your password and a code.", "danger")
    elif mfa.mfa_required_for(user):
        flash(f"Two-factor authentication is required for the {user.role} role.", "danger")
    elif not _password_ok(user, form.password.data):
        flash("That is not your password.", "danger")
    elif mfa.verify_second_factor(user, form.code.data) is None:
        db.session.rollback()
        flash("That code is not valid.", "danger")
    else:
        mfa.disable(user, user.username)
        db.session.commit()
        flash("Two-factor authentication is off.", "success")
    return redirect(url_for("account.overview"))


@bp.route("/mfa/backup-codes", methods=["POST"])
@login_required
@rate_limit("RATELIMIT_MFA")
def regenerate_codes() -> str | Response:
    """Replace the backup codes (password required) and show the new ones once."""
    form = RegenerateCodesForm()
    if not current_user.mfa_enabled:
        flash("Turn on two-factor authentication first.", "danger")
        return redirect(url_for("account.overview"))
    if not form.validate_on_submit() or not _password_ok(current_user, form.password.data):
        flash("That is not your password.", "danger")
        return redirect(url_for("account.overview"))
    codes = mfa.new_backup_codes(current_user)
    audit.record("mfa_backup_codes_regenerated", current_user.username)
    db.session.commit()
    return render_template("account/backup_codes.html", codes=codes, next_url=url_for("account.overview"))


@bp.route("/sessions")
@login_required
def sessions() -> str:
    """Your active sessions with a revoke button each."""
    return render_template(
        "account/sessions.html",
        rows=live_sessions(),
        current_id=current_user.current_session.id,
        confirm=ConfirmForm(),
    )


@bp.route("/sessions/<int:session_id>/revoke", methods=["POST"])
@login_required
def revoke_session(session_id: int) -> Response:
    """End one of your sessions (another user's answers 404)."""
    row = db.session.get(UserSession, session_id)
    if row is None or row.user_id != current_user.id:
        abort(404)
    if not ConfirmForm().validate_on_submit():
        abort(400)
    row.is_active = False
    audit.record("session_revoked", current_user.username, {"session_id": row.id})
    db.session.commit()
    revoke_sessions(current_user.username, [row.id])
    flash("Session ended.", "success")
    if row.id == current_user.current_session.id:
        return redirect(url_for("auth.login"))
    return redirect(url_for("account.sessions"))


@bp.route("/sessions/revoke-others", methods=["POST"])
@login_required
def revoke_other_sessions() -> Response:
    """End every session of yours except this one."""
    if not ConfirmForm().validate_on_submit():
        abort(400)
    ended = accounts.end_all_sessions(current_user, except_id=current_user.current_session.id)
    audit.record("sessions_revoked", current_user.username, {"sessions_ended": ended})
    db.session.commit()
    flash(f"{ended} other session(s) ended.", "success")
    return redirect(url_for("account.sessions"))
