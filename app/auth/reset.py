"""Self-service password reset: `/login/forgot` asks for a link, `/login/reset/<token>` uses it.

The request page gives the same answer, doing the same work, whether or not the address has an
account: it only queues a `password_reset_mail` task; the worker looks the address up, issues
the token and sends it. The reset page ends every session and does not log anyone in, so the
next login still asks for MFA.
"""

from __future__ import annotations

from flask import current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user, logout_user
from flask_wtf import FlaskForm
from werkzeug.wrappers import Response
from wtforms import EmailField, PasswordField, SubmitField
from wtforms.validators import DataRequired, EqualTo, Length

from app.auth import reset_tokens
from app.auth.routes import bp
from app.extensions import db, limiter
from app.mail import notify
from app.mail.tasks import mail_enabled, queue_reset
from app.models import User
from app.security.passwords import password_problem, recently_used, set_password
from app.security.ratelimit import LIMIT_MESSAGE, rate_limit
from app.services import accounts, audit

NEUTRAL = ("If an account has this address, a link to reset its password is on its way. "
           "It works once, for 30 minutes.")
INVALID = ("This reset link is not valid: it was used, it expired, or the password changed since. "
           "Ask for a new one.")


class ForgotForm(FlaskForm):
    """The address to send a reset link to."""

    email = EmailField("Email", validators=[DataRequired(), Length(max=255)])
    submit = SubmitField("Send reset link")


class ResetForm(FlaskForm):
    """The new password, twice."""

    password = PasswordField("New password", validators=[DataRequired(), Length(max=1024)],
                             description="At least 12 characters, at most 72 bytes, hard to guess; "
                                         "not one of your recent passwords.")
    password_confirm = PasswordField("Repeat new password",
                                     validators=[DataRequired(), EqualTo("password", "Passwords differ.")])
    submit = SubmitField("Set new password")


def _address_key() -> str:
    """Rate-limit key for the address asked about, the same whether or not it has an account."""
    return "reset-address:" + (request.form.get("email") or "").strip().lower()[:255]


@bp.route("/login/forgot", methods=["GET", "POST"])
@rate_limit("RATELIMIT_RESET")
@limiter.limit(lambda: current_app.config["RATELIMIT_RESET_ADDRESS"], key_func=_address_key,
               methods=["POST"], error_message=LIMIT_MESSAGE)
def forgot_password() -> str | Response:
    """Ask for a reset link; the answer never tells whether the address has an account."""
    if not mail_enabled():
        return render_template("auth/forgot.html", form=None)
    form = ForgotForm()
    if form.validate_on_submit():
        email = form.email.data.strip().lower()
        queue_reset(email, request.remote_addr)
        audit.record("password_reset_requested", None, {"email": email})
        db.session.commit()
        flash(NEUTRAL, "info")
        return redirect(url_for("auth.login"))
    return render_template("auth/forgot.html", form=form)


def _no_referrer(response: Response) -> Response:
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


@bp.route("/login/reset/<token>", methods=["GET", "POST"])
@rate_limit("RATELIMIT_PASSWORD")
def reset_password(token: str) -> str | Response:
    """Choose a new password with a reset link; every session of the account ends."""
    row = reset_tokens.find_valid(token)
    user = db.session.get(User, row.user_id) if row is not None else None
    if user is None or (current_user.is_authenticated and current_user.id != user.id):
        audit.record("password_reset_link_refused", current_user.username if current_user.is_authenticated
                     else None, {"method": request.method}, level="warning")
        db.session.commit()
        return _no_referrer(Response(render_template("auth/reset.html", form=None, invalid=INVALID), 404))
    form = ResetForm()
    if form.validate_on_submit():
        problem = password_problem(form.password.data, [user.username, user.email])
        if problem:
            form.password.errors.append(problem)
        elif recently_used(user, form.password.data):
            keep = current_app.config["PASSWORD_HISTORY"]
            form.password.errors.append(f"Choose a password you have not used among your last {keep}.")
        elif not reset_tokens.consume(row):
            db.session.rollback()
            return _no_referrer(Response(render_template("auth/reset.html", form=None, invalid=INVALID), 404))
        else:
            set_password(user, form.password.data)
            user.must_change_password = False
            ended = accounts.end_all_sessions(user)
            audit.record("password_reset_completed", user.username, {"sessions_ended": ended},
                         level="warning")
            notify.password_changed(user, by_admin=False)
            db.session.commit()
            if current_user.is_authenticated:
                logout_user()
            flash("Your password is changed and every session ended. Log in with the new password.",
                  "success")
            return redirect(url_for("auth.login"))
    return _no_referrer(Response(render_template("auth/reset.html", form=form, invalid=None)))
