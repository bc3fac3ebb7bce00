"""The signed-in user's e-mail preferences: which notification kinds they receive."""

from __future__ import annotations

from flask import flash, redirect, render_template, url_for
from flask_login import current_user, login_required
from flask_wtf import FlaskForm
from sqlalchemy import delete, select
from werkzeug.wrappers import Response
from wtforms import BooleanField, SubmitField

from app.account.routes import bp
from app.extensions import db
from app.models import MAIL_KINDS, MailOptOut
from app.services import audit

LABELS = {
    "registrations": "New accounts waiting for approval (administrators)",
    "account": "My account's approval, rejection and workspace",
    "builds": "Builds, pushes and pulls I started, when they end",
    "alerts": "Alerts of severity high or above (administrators)",
}


class MailPreferencesForm(FlaskForm):
    """One checkbox per notification kind; checked means send it."""

    registrations = BooleanField(LABELS["registrations"])
    account = BooleanField(LABELS["account"])
    builds = BooleanField(LABELS["builds"])
    alerts = BooleanField(LABELS["alerts"])
    submit = SubmitField("Save e-mail preferences")


@bp.route("/mail", methods=["GET", "POST"])
@login_required
def mail_preferences() -> str | Response:
    """Switch each kind of notification mail on or off; security mail is always sent."""
    opted_out = set(db.session.scalars(select(MailOptOut.kind).where(MailOptOut.user_id == current_user.id)))
    form = MailPreferencesForm()
    if form.validate_on_submit():
        wanted_off = {kind for kind in MAIL_KINDS if not form[kind].data}
        db.session.execute(delete(MailOptOut).where(MailOptOut.user_id == current_user.id))
        db.session.add_all(MailOptOut(user_id=current_user.id, kind=kind) for kind in sorted(wanted_off))
        audit.record("mail_preferences_changed", current_user.username, {"off": sorted(wanted_off)})
        db.session.commit()
        flash("E-mail preferences saved.", "success")
        return redirect(url_for("account.mail_preferences"))
    if not form.is_submitted():
        for kind in MAIL_KINDS:
            form[kind].data = kind not in opted_out
    return render_template("account/mail.html", form=form)
