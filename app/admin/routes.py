"""Admin pages: approvals, users (search, role, password, delete) and audit."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user
from sqlalchemy import func, or_, select
from werkzeug.wrappers import Response

from app.admin.audit_query import audit_filtered
from app.admin.forms import (
    AuditFilterForm,
    RejectForm,
    ResetPasswordForm,
    RoleForm,
    SuspendForm,
    UserFilterForm,
)
from app.auth.routes import safe_next
from app.extensions import db
from app.forms_common import ConfirmForm
from app.models import ROLES, STATUSES, AuditLog, User
from app.models.like import contains_text
from app.permissions import permission_required
from app.security.ratelimit import rate_limit
from app.services import accounts, workspaces

bp = Blueprint("admin", __name__, url_prefix="/admin")


@bp.route("/approvals")
@permission_required("manage_users")
def approvals() -> str:
    """The queue of pending accounts, oldest first, paginated."""
    stmt = select(User).where(User.status == "pending").order_by(User.created_at, User.id)
    page = db.paginate(stmt, per_page=current_app.config["USERS_PER_PAGE"], error_out=False)
    return render_template(
        "admin/approvals.html", page=page, confirm=ConfirmForm(), reject=RejectForm()
    )


@bp.route("/users")
@permission_required("manage_users")
def users() -> str:
    """Search and filter users, paginated."""
    form = UserFilterForm(request.args)
    stmt = select(User).order_by(User.username)
    if form.q.data:
        text = form.q.data.strip().lower()[:255]
        email = func.lower(User.email)
        stmt = stmt.where(or_(contains_text(User.username, text), contains_text(email, text)))
    if form.status.data in STATUSES:
        stmt = stmt.where(User.status == form.status.data)
    if form.role.data in ROLES:
        stmt = stmt.where(User.role == form.role.data)
    page = db.paginate(stmt, per_page=current_app.config["USERS_PER_PAGE"], error_out=False)
    return render_template("admin/users.html", form=form, page=page)


@bp.route("/users/<int:user_id>")
@permission_required("manage_users")
def user_detail(user_id: int) -> str:
    """One user, with the forms that change them."""
    user = db.get_or_404(User, user_id)
    recent = db.session.scalars(
        select(AuditLog)
        .where(AuditLog.username == user.username)
        .order_by(AuditLog.created_at.desc(), AuditLog.id.desc())
        .limit(10)
    ).all()
    return render_template(
        "admin/user_detail.html",
        user=user,
        recent=recent,
        role_form=RoleForm(role=user.role),
        password_form=_reset_form(user),
        confirm=ConfirmForm(),
        reject=RejectForm(),
        suspend_form=SuspendForm(),
    )


def _apply(action: str, user: User, fn: Callable[..., None], *args: object) -> Response:
    """Run an account operation, flash its outcome and go back where the form came from."""
    try:
        fn(user, *args)
    except accounts.AccountError as exc:
        flash(str(exc), "danger")
    else:
        flash(f"{action} {user.username}.", "success")
    back = safe_next(request.form.get("back"))
    return redirect(back or url_for("admin.user_detail", user_id=user.id))


@bp.route("/users/<int:user_id>/approve", methods=["POST"])
@permission_required("manage_users")
def approve(user_id: int) -> Response:
    """Approve a pending account and queue its workspace with the default server, image and limits."""
    user = db.get_or_404(User, user_id)
    if not ConfirmForm().validate_on_submit():
        abort(400)
    try:
        workspaces.approve_user(user, current_user, workspaces.Plan())
    except workspaces.WorkspaceError as exc:
        db.session.rollback()
        flash(f"Nothing changed: {exc}", "danger")
    else:
        flash(f"Approved {user.username}; their workspace is being set up.", "success")
    back = safe_next(request.form.get("back"))
    return redirect(back or url_for("admin.user_detail", user_id=user.id))


@bp.route("/users/<int:user_id>/reject", methods=["POST"])
@permission_required("manage_users")
def reject(user_id: int) -> Response:
    """Reject a pending account with a reason."""
    user = db.get_or_404(User, user_id)
    form = RejectForm()
    if not form.validate_on_submit():
        flash("Say why the account is rejected.", "danger")
        return redirect(url_for("admin.user_detail", user_id=user.id))
    return _apply("Rejected", user, accounts.reject, current_user, form.reason.data)


@bp.route("/users/<int:user_id>/role", methods=["POST"])
@permission_required("manage_users")
def change_role(user_id: int) -> Response:
    """Change a user's role."""
    user = db.get_or_404(User, user_id)
    form = RoleForm()
    if not form.validate_on_submit():
        abort(400)
    return _apply("Changed the role of", user, accounts.change_role, form.role.data, current_user)


@bp.route("/users/<int:user_id>/password", methods=["POST"])
@permission_required("manage_users")
@rate_limit("RATELIMIT_PASSWORD")
def reset_password(user_id: int) -> str | Response:
    """Set a new password for a user and end their sessions."""
    user = db.get_or_404(User, user_id)
    form = ResetPasswordForm()
    if not form.validate_on_submit():
        for error in form.password.errors:
            flash(error, "danger")
        return redirect(url_for("admin.user_detail", user_id=user.id))
    reset = partial(accounts.reset_password, revoke_keys=form.revoke_api_keys.data)
    return _apply("Reset the password of", user, reset, form.password.data, current_user)


@bp.route("/users/<int:user_id>/delete", methods=["POST"])
@permission_required("manage_users")
def delete_user(user_id: int) -> Response:
    """Delete a user and queue their workspace's removal; refused while a task holds the workspace."""
    user = db.get_or_404(User, user_id)
    if not ConfirmForm().validate_on_submit():
        abort(400)
    username = user.username
    try:
        accounts.delete(user, current_user, remove_folder=request.form.get("remove_folder") == "y")
    except accounts.AccountError as exc:
        db.session.rollback()
        flash(str(exc), "danger")
        return redirect(url_for("admin.user_detail", user_id=user_id))
    flash(f"Deleted {username}.", "success")
    return redirect(url_for("admin.users"))


@bp.route("/audit")
@permission_required("view_audit")
def audit_log() -> str:
    """The audit log, newest first, filtered by user, action and dates."""
    form = AuditFilterForm(request.args)
    stmt = audit_filtered(form) if form.validate() else select(AuditLog)
    stmt = stmt.order_by(AuditLog.created_at.desc(), AuditLog.id.desc())
    page = db.paginate(stmt, per_page=50, error_out=False)
    return render_template("admin/audit.html", form=form, page=page)


def _reset_form(user: User) -> ResetPasswordForm:
    """The admin's password-reset form, its API-key checkbox saying how many keys `user` has."""
    form = ResetPasswordForm()
    count = accounts.live_api_key_count(user)
    form.revoke_api_keys.label.text = f"Also revoke their API keys ({count} active)"
    return form


@bp.route("/users/<int:user_id>/suspend", methods=["POST"])
@permission_required("manage_users")
def suspend_user(user_id: int) -> Response:
    """Suspend an approved user: no login, sessions and API keys end, workspace stopped (kept)."""
    user = db.get_or_404(User, user_id)
    form = SuspendForm()
    if not form.validate_on_submit():
        abort(400)
    try:
        outcome = accounts.suspend(user, current_user, (form.reason.data or "").strip())
    except accounts.AccountError as exc:
        flash(str(exc), "danger")
    else:
        flash(f"Suspended {user.username}: sessions ended, API keys revoked. {outcome}", "success")
    back = safe_next(request.form.get("back"))
    return redirect(back or url_for("admin.user_detail", user_id=user.id))


@bp.route("/users/<int:user_id>/reinstate", methods=["POST"])
@permission_required("manage_users")
def reinstate_user(user_id: int) -> Response:
    """Let a suspended user log in again (their workspace stays stopped until they start it)."""
    user = db.get_or_404(User, user_id)
    if not ConfirmForm().validate_on_submit():
        abort(400)
    return _apply("Reinstated", user, accounts.reinstate, current_user)
