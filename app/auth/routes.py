"""Registration, login (password step), logout and the page unapproved accounts see."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, flash, redirect, render_template, request, session, url_for
from flask_login import current_user, login_required
from werkzeug.wrappers import Response

from app.auth.forms import LoginForm, RegisterForm
from app.auth.sessions import commit_login, end_session, lock_user_row, start_session
from app.directory.login import DirectoryLoginRefused, DirectoryUnavailable, check_credentials
from app.errors import error_response
from app.extensions import db
from app.forms_common import ConfirmForm
from app.models import User
from app.security import bruteforce, clock, mfa
from app.security.passwords import check_password
from app.security.ratelimit import rate_limit
from app.services import accounts, audit

bp = Blueprint("auth", __name__)

# Pages a logged-in but unapproved user may still reach.
OPEN_TO_UNAPPROVED = frozenset({"auth.logout", "auth.pending", "static", "main.health"})
# Pages a user who must replace an admin-set password may still reach.
OPEN_TO_MUST_CHANGE = frozenset({"auth.logout", "account.change_password", "static", "main.health"})
# Blueprints whose requests a banned address never gets past (login, MFA, registration, API).
BAN_CHECKED_BLUEPRINTS = frozenset({"auth", "api"})


def safe_next(target: str | None) -> str | None:
    """Follow `next` only to a local path: no scheme, no host, no backslash tricks."""
    if not target or "\\" in target or any(ord(ch) < 32 for ch in target):
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return None
    return target


def home_for(user: object) -> str:
    """Where a user lands after login."""
    from app.permissions import can

    if can(user, "view_dashboard"):
        return url_for("admin.dashboard")
    return url_for("workspaces.home")


@bp.before_app_request
def refuse_banned_ip() -> Response | tuple[str, int] | None:
    """A banned address gets 403 on login, MFA, registration and the API, before any password check."""
    if request.blueprint not in BAN_CHECKED_BLUEPRINTS:
        return None
    ban = bruteforce.active_ban(request.remote_addr)
    if ban is None:
        return None
    until = ban.expires_at.strftime("%Y-%m-%d %H:%M")
    return error_response(403, f"Your address is blocked until {until} UTC after repeated failed logins.")


@bp.before_app_request
def keep_unapproved_out() -> Response | None:
    """A pending or rejected account sees only the page that says so; a forced change comes first."""
    if request.blueprint in ("api", "bootstrap") or request.endpoint is None:
        return None
    if not current_user.is_authenticated:
        return None
    if not current_user.is_approved and request.endpoint not in OPEN_TO_UNAPPROVED:
        return redirect(url_for("auth.pending"))
    if current_user.must_change_password and request.endpoint not in OPEN_TO_MUST_CHANGE:
        flash("An administrator set your password. Choose a new one to continue.", "warning")
        return redirect(url_for("account.change_password"))
    return None


@bp.route("/register", methods=["GET", "POST"])
@rate_limit("RATELIMIT_REGISTER")
def register() -> str | Response:
    """Create a pending account."""
    if current_user.is_authenticated:
        return redirect(home_for(current_user))
    form = RegisterForm()
    if form.validate_on_submit():
        try:
            accounts.register(form.username.data, form.email.data, form.password.data)
        except accounts.AccountError as exc:
            flash(str(exc), "danger")
        else:
            flash("Account created. An administrator will review it; you can log in to check.", "success")
            return redirect(url_for("auth.login"))
    return render_template("auth/register.html", form=form)


def finish_login(user: User, target: str | None) -> Response:
    """Record the success, start the real session (renewed, no fixation), audit, send the user on."""
    if user.status == "suspended":
        # Said only after the right password, so it does not tell guessers which accounts exist.
        session.clear()
        audit.record("login_refused", user.username, {"reason": "suspended"}, level="warning")
        db.session.commit()
        flash("This account is suspended. Contact an administrator.", "danger")
        return redirect(url_for("auth.login"))

    def write_login() -> None:
        lock_user_row(user)
        bruteforce.record_success(user, request.remote_addr or "unknown")
        start_session(user)
        audit.record("user_logged_in", user.username, {"status": user.status, "mfa": user.mfa_enabled})

    commit_login(write_login)
    if not user.is_approved:
        return redirect(url_for("auth.pending"))
    return redirect(safe_next(target) or home_for(user))


def begin_second_step(user: User, target: str | None) -> Response:
    """Password accepted: remember only who is half-logged-in; no page but the MFA step opens."""
    session.clear()
    session["mfa_user_id"] = user.id
    session["mfa_started"] = clock.timestamp()
    session["mfa_next"] = safe_next(target)
    db.session.commit()
    if user.mfa_enabled:
        return redirect(url_for("auth.mfa_verify"))
    return redirect(url_for("auth.mfa_setup"))


@bp.route("/login", methods=["GET", "POST"])
@rate_limit("RATELIMIT_LOGIN")
def login() -> str | Response:
    """Log in by username or email (first step; MFA follows when enabled or required)."""
    if current_user.is_authenticated:
        return redirect(home_for(current_user))
    form = LoginForm()
    if form.validate_on_submit():
        ip = request.remote_addr or "unknown"
        user = accounts.find_by_login(form.username.data)
        login_name = bruteforce.login_key(user, form.username.data)
        until = bruteforce.locked_until(login_name, user, ip)
        if until is not None:
            check_password(form.password.data, None)  # the same bcrypt work as any other attempt
            bruteforce.record_failure(user, login_name, ip, counted=False)
            db.session.commit()
            flash(f"Too many failed attempts. This account is locked until {until:%H:%M:%S} UTC.", "danger")
            return render_template("auth/login.html", form=form)
        try:
            known = check_credentials(user, form.username.data, form.password.data)
        except DirectoryUnavailable as exc:
            audit.record("directory_unavailable", user.username if user else None, {"error": str(exc)},
                         level="error")
            db.session.commit()
            flash("The directory (LDAP) cannot be reached, so directory accounts cannot log in right now. "
                  "Local accounts still can. Try again later or tell an administrator.", "danger")
            return render_template("auth/login.html", form=form)
        except DirectoryLoginRefused as exc:
            flash(str(exc), "danger")
            return render_template("auth/login.html", form=form)
        if known is not None:
            user = known
            # With MFA to follow, nothing is counted as a success yet: wrong codes keep growing the lock.
            if user.is_approved and (user.mfa_enabled or mfa.mfa_required_for(user)):
                return begin_second_step(user, request.args.get("next"))
            return finish_login(user, request.args.get("next"))
        bruteforce.record_failure(user, login_name, ip)
        audit.record("login_failed", user.username if user else None, {"login": login_name}, level="warning")
        db.session.commit()
        flash("Wrong username, email or password.", "danger")
    return render_template("auth/login.html", form=form)


@bp.route("/logout", methods=["POST"])
@login_required
def logout() -> Response:
    """End this session."""
    username = current_user.username
    end_session(current_user)
    audit.record("user_logged_out", username)
    db.session.commit()
    flash("You are logged out.", "info")
    return redirect(url_for("auth.login"))


@bp.route("/pending")
@login_required
def pending() -> str | Response:
    """What a pending or rejected account sees."""
    if current_user.is_approved:
        return redirect(home_for(current_user))
    reason = (current_user.meta or {}).get("rejection_reason")
    return render_template("auth/pending.html", reason=reason, form=ConfirmForm())
