"""Admin security pages: recent login failures, IP bans, MFA policy per role, ending a user's sessions."""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, url_for
from flask_login import current_user
from sqlalchemy import select
from werkzeug.wrappers import Response

from app.admin.security_forms import BanForm, MfaPolicyForm
from app.extensions import db
from app.forms_common import ConfirmForm
from app.models import ROLES, BannedIP, LoginAttempt, RolePolicy, User
from app.permissions import permission_required
from app.security import bruteforce, clock, mfa
from app.services import accounts, audit

bp = Blueprint("security_admin", __name__, url_prefix="/admin/security")
RECENT_FAILURES = 100


@bp.route("/")
@permission_required("manage_security")
def overview() -> str:
    """Recent failed logins, current bans, and the MFA policy per role."""
    return _render_overview(BanForm())


def _render_overview(ban_form: BanForm) -> str:
    now = clock.now()
    failures = db.session.scalars(
        select(LoginAttempt)
        .where(LoginAttempt.success.is_(False))
        .order_by(LoginAttempt.created_at.desc(), LoginAttempt.id.desc())
        .limit(RECENT_FAILURES)
    ).all()
    bans = db.session.scalars(
        select(BannedIP).where(BannedIP.expires_at > now).order_by(BannedIP.expires_at.desc())
    ).all()
    choices = {role: "required" if on else "optional" for role, on in mfa.role_policies().items()}
    return render_template(
        "admin/security.html",
        failures=failures,
        bans=bans,
        policy_form=MfaPolicyForm(data=choices),
        ban_form=ban_form,
        confirm=ConfirmForm(),
    )


@bp.route("/mfa-policy", methods=["POST"])
@permission_required("manage_security")
def mfa_policy() -> Response:
    """Require (or stop requiring) MFA for each role; affected users set it up at next login."""
    form = MfaPolicyForm()
    if not form.validate_on_submit():
        abort(400)
    now = clock.now()
    changed = {}
    for role in ROLES:
        wanted = form[role].data == "required"
        row = db.session.get(RolePolicy, role)
        if row is None:
            row = RolePolicy(role=role, mfa_required=not wanted)
            db.session.add(row)
        if row.mfa_required != wanted:
            changed[role] = wanted
        row.mfa_required, row.updated_by, row.updated_at = wanted, current_user.username, now
    audit.record("mfa_policy_changed", current_user.username, {"changed": changed}, level="warning")
    db.session.commit()
    flash("MFA policy saved.", "success")
    return redirect(url_for("security_admin.overview"))


@bp.route("/bans", methods=["POST"])
@permission_required("manage_security")
def ban_ip() -> Response | tuple[str, int]:
    """Ban an address by hand for some hours."""
    form = BanForm()
    if not form.validate_on_submit():
        return _render_overview(form), 400
    ip = form.ip_address.data.strip()
    bruteforce.ban(ip, form.reason.data.strip(), form.hours.data * 3600, actor=current_user.username)
    db.session.commit()
    flash(f"Banned {ip}.", "success")
    return redirect(url_for("security_admin.overview"))


@bp.route("/bans/<int:ban_id>/unban", methods=["POST"])
@permission_required("manage_security")
def unban(ban_id: int) -> Response:
    """Lift a ban."""
    ban = db.get_or_404(BannedIP, ban_id)
    if not ConfirmForm().validate_on_submit():
        abort(400)
    ip = ban.ip_address
    db.session.delete(ban)
    audit.record("ip_unbanned", current_user.username, {"ip": ip}, level="warning")
    db.session.commit()
    flash(f"Unbanned {ip}.", "success")
    return redirect(url_for("security_admin.overview"))


@bp.route("/users/<int:user_id>/end-sessions", methods=["POST"])
@permission_required("manage_security")
def end_user_sessions(user_id: int) -> Response:
    """End every session of a user and revoke their API keys (they must log in again)."""
    user = db.get_or_404(User, user_id)
    if not ConfirmForm().validate_on_submit():
        abort(400)
    ended = accounts.end_all_sessions(user)
    revoked = accounts.revoke_api_keys(user)
    audit.record(
        "sessions_ended_by_admin",
        current_user.username,
        {"user": user.username, "sessions_ended": ended, "api_keys_revoked": revoked},
        level="warning",
    )
    db.session.commit()
    flash(f"Ended {ended} session(s) and revoked {revoked} API key(s) of {user.username}.", "success")
    return redirect(url_for("admin.user_detail", user_id=user.id))


@bp.route("/users/<int:user_id>/unlock", methods=["POST"])
@permission_required("manage_security")
def unlock_user(user_id: int) -> Response:
    """Clear a user's failed-login lock."""
    user = db.get_or_404(User, user_id)
    if not ConfirmForm().validate_on_submit():
        abort(400)
    user.failed_logins, user.locked_until, user.lock_cleared_at = 0, None, clock.now()
    audit.record("account_unlocked", current_user.username, {"user": user.username})
    db.session.commit()
    flash(f"Unlocked {user.username}.", "success")
    return redirect(url_for("admin.user_detail", user_id=user.id))
