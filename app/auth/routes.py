"""Registration, login, logout and the page unapproved accounts see."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from werkzeug.wrappers import Response

from app.auth.forms import LoginForm, RegisterForm
from app.auth.sessions import end_session, start_session
from app.extensions import db
from app.forms_common import ConfirmForm
from app.security.passwords import check_password
from app.services import accounts, audit

bp = Blueprint("auth", __name__)

# Pages a logged-in but unapproved user may still reach.
OPEN_TO_UNAPPROVED = frozenset({"auth.logout", "auth.pending", "static", "main.health"})


def safe_next(target: str | None) -> str | None:
    """Follow `next` only to a local path: no scheme, no host, no backslash tricks."""
    if not target or "\\" in target:
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
    return url_for("users.home")


@bp.before_app_request
def keep_unapproved_out() -> Response | None:
    """A pending or rejected account sees only the page that says so."""
    if (
        current_user.is_authenticated
        and not current_user.is_approved
        and request.endpoint not in OPEN_TO_UNAPPROVED
        and request.endpoint is not None
        and not (request.blueprint == "bootstrap")
    ):
        return redirect(url_for("auth.pending"))
    return None


@bp.route("/register", methods=["GET", "POST"])
def register() -> str | Response:
    """Create a pending account."""
    if current_user.is_authenticated:
        return redirect(url_for("users.home"))
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


@bp.route("/login", methods=["GET", "POST"])
def login() -> str | Response:
    """Log in by username or email."""
    if current_user.is_authenticated:
        return redirect(home_for(current_user))
    form = LoginForm()
    if form.validate_on_submit():
        user = accounts.find_by_login(form.username.data)
        if check_password(form.password.data, user.password_hash if user else None):
            start_session(user)
            audit.record("login", user.username, {"status": user.status})
            db.session.commit()
            if not user.is_approved:
                return redirect(url_for("auth.pending"))
            return redirect(safe_next(request.args.get("next")) or home_for(user))
        audit.record(
            "login_failed",
            user.username if user else None,
            {"login": form.username.data[:255]},
            level="warning",
        )
        db.session.commit()
        flash("Wrong username, email or password.", "danger")
    return render_template("auth/login.html", form=form)


@bp.route("/logout", methods=["POST"])
@login_required
def logout() -> Response:
    """End this session."""
    username = current_user.username
    end_session(current_user)
    audit.record("logout", username)
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
