"""Account lifecycle: registration, rejection, role changes, password resets, deletion.

Approval lives with provisioning in `services/workspaces.approve_user`, since approving
normally queues the workspace in the same commit.

Each function is one unit of work: it changes the rows, writes the audit entry and
commits, or raises `AccountError` having changed nothing.
"""

from __future__ import annotations

from sqlalchemy import func, or_, select, update

from app.extensions import db
from app.mail import notify
from app.models import ROLES, ApiKey, Task, User, UserSession, Workspace
from app.security import clock
from app.security.passwords import hash_password, password_problem, set_password
from app.services import audit, workspaces
from app.services.task_queue import in_flight
from app.validators import username_problem


class AccountError(ValueError):
    """An account operation was refused; the message is meant for the person who asked."""


def find_by_login(login: str) -> User | None:
    """The user whose username or email is `login` (case-insensitive), if any."""
    login = login.strip().lower()
    return db.session.scalar(select(User).where(or_(User.username == login, func.lower(User.email) == login)))


def _check_new_account(username: str, email: str, password: str) -> None:
    problem = username_problem(username) or password_problem(password, [username, email])
    if problem:
        raise AccountError(problem)
    if db.session.scalar(select(User.id).where(User.username == username)):
        raise AccountError("That username is taken.")
    if db.session.scalar(select(User.id).where(func.lower(User.email) == email.lower())):
        raise AccountError("An account with that email already exists.")


def register(username: str, email: str, password: str) -> User:
    """Create a pending account that waits for an admin's approval."""
    _check_new_account(username, email, password)
    user = User(username=username, email=email.lower(), password_hash=hash_password(password))
    db.session.add(user)
    audit.record("user_registered", username, {"email": user.email})
    notify.registration(user)
    db.session.commit()
    return user


def create_admin(username: str, email: str, password: str) -> User:
    """Create an approved admin directly (the CLI's first-admin path)."""
    _check_new_account(username, email, password)
    user = User(
        username=username,
        email=email.lower(),
        password_hash=hash_password(password),
        role="admin",
        status="approved",
    )
    db.session.add(user)
    audit.record("admin_created", username, {"email": user.email}, source="cli")
    db.session.commit()
    return user


def reject(user: User, actor: User, reason: str) -> None:
    """Reject a pending account with a reason the user will see."""
    if user.status != "pending":
        raise AccountError(f"Only pending accounts can be rejected; {user.username} is {user.status}.")
    user.status = "rejected"
    user.meta = {**(user.meta or {}), "rejection_reason": reason}
    audit.record("user_rejected", actor.username, {"user": user.username, "reason": reason})
    notify.rejected(user, reason)
    db.session.commit()


def _is_last_admin(user: User) -> bool:
    if user.role != "admin" or user.status != "approved":
        return False
    count = db.session.scalar(
        select(func.count(User.id)).where(User.role == "admin", User.status == "approved")
    )
    return count == 1


def change_role(user: User, role: str, actor: User) -> None:
    """Give `user` a new role; an admin cannot demote themselves or the last admin."""
    if role not in ROLES:
        raise AccountError(f"Unknown role {role!r}.")
    if role == user.role:
        raise AccountError(f"{user.username} already has the role {role}.")
    if user.id == actor.id:
        raise AccountError("You cannot change your own role.")
    if _is_last_admin(user):
        raise AccountError("This is the last admin; promote someone else first.")
    old = user.role
    user.role = role
    audit.record("user_role_changed", actor.username, {"user": user.username, "from": old, "to": role})
    db.session.commit()


def end_all_sessions(user: User, *, except_id: int | None = None) -> int:
    """Mark every live session of `user` inactive (but one); returns how many ended."""
    live = [UserSession.user_id == user.id, UserSession.is_active]
    if except_id is not None:
        live.append(UserSession.id != except_id)
    ended = list(db.session.scalars(select(UserSession.id).where(*live)))
    if ended:
        db.session.execute(update(UserSession).where(UserSession.id.in_(ended)).values(is_active=False))
    from app.routing.sync import revoke_sessions  # the edges refuse their workspace cookies at once

    revoke_sessions(user.username, ended)
    return len(ended)


def reset_password(user: User, password: str, actor: User, *, revoke_keys: bool = False) -> None:
    """Set a new password chosen by an admin, end the user's sessions and, if asked, revoke their API keys."""
    if user.auth_source == "ldap":
        raise AccountError(f"{user.username}'s password is managed in the directory; reset it there.")
    problem = password_problem(password, [user.username, user.email])
    if problem:
        raise AccountError(problem)
    set_password(user, password)
    user.must_change_password = True  # the admin knows this password; the user must replace it
    ended = end_all_sessions(user)
    revoked = revoke_api_keys(user) if revoke_keys else 0
    audit.record("user_password_reset", actor.username,
                 {"user": user.username, "sessions_ended": ended, "api_keys_revoked": revoked})
    notify.password_changed(user, by_admin=True)
    db.session.commit()


def delete(user: User, actor: User, *, remove_folder: bool = False) -> Task | None:
    """Delete an account and its sessions and queue its workspace's removal, all in one commit.

    Refused while another task holds the workspace (a provision, a start...): deleting then
    would leave a container no row describes. Returns the removal task, if there is a workspace.
    """
    if user.id == actor.id:
        raise AccountError("You cannot delete your own account.")
    if _is_last_admin(user):
        raise AccountError("This is the last admin and cannot be deleted.")
    username = user.username
    ws = db.session.scalar(select(Workspace).where(Workspace.user_id == user.id))
    task = None
    if ws is not None:
        holder = in_flight(ws.lock_key)
        if holder is not None:
            raise AccountError(
                f"{username}'s workspace is busy with task #{holder.id} ({holder.kind}, {holder.state}); "
                "delete the account when it has finished."
            )
        try:
            task = workspaces.queue(ws, "delete", actor, remove_folder=remove_folder)
        except workspaces.WorkspaceError as exc:
            db.session.rollback()
            raise AccountError(f"{username}'s workspace cannot be removed now: {exc}") from exc
    db.session.delete(user)
    audit.record("user_deleted", actor.username, {"user": username}, level="warning")
    db.session.commit()
    return task


def live_api_key_count(user: User) -> int:
    """How many of `user`'s API keys still work (neither revoked nor expired)."""
    now = clock.now()
    return db.session.scalar(
        select(func.count(ApiKey.id)).where(
            ApiKey.user_id == user.id,
            ApiKey.revoked_at.is_(None),
            or_(ApiKey.expires_at.is_(None), ApiKey.expires_at > now),
        )
    ) or 0


def revoke_api_keys(user: User) -> int:
    """Revoke every unrevoked API key of `user`; returns how many. The caller audits and commits."""
    result = db.session.execute(
        update(ApiKey)
        .where(ApiKey.user_id == user.id, ApiKey.revoked_at.is_(None))
        .values(revoked_at=clock.now())
    )
    return result.rowcount or 0


def suspend(user: User, actor: User, reason: str = "") -> str:
    """Suspend an approved account: no login, sessions ended, API keys revoked, workspace stopped.

    Returns a sentence for the admin saying what happened to the workspace.
    """
    if user.id == actor.id:
        raise AccountError("You cannot suspend your own account.")
    if user.status != "approved":
        raise AccountError(f"Only approved accounts can be suspended; {user.username} is {user.status}.")
    if _is_last_admin(user):
        raise AccountError("This is the last admin and cannot be suspended.")
    user.status = "suspended"
    user.meta = {**(user.meta or {}), "suspension_reason": reason or None}
    ended = end_all_sessions(user)
    revoked = revoke_api_keys(user)
    audit.record(
        "user_suspended",
        actor.username,
        {"user": user.username, "reason": reason, "sessions_ended": ended, "api_keys_revoked": revoked},
        level="warning",
    )
    # Committed before the stop is queued: a workspace busy with another task must not hold the
    # suspension back (its links already refuse a suspended owner).
    db.session.commit()
    return _stop_workspace_of(user, actor)


def _stop_workspace_of(user: User, actor: User) -> str:
    ws = db.session.scalar(select(Workspace).where(Workspace.user_id == user.id))
    if ws is None:
        return f"{user.username} has no workspace."
    if ws.status == "stopped":
        return "The workspace was already stopped; it is kept."
    try:
        workspaces.request(ws, "stop", actor)
    except workspaces.WorkspaceError as exc:
        db.session.rollback()
        audit.record("workspace_stop_not_queued", actor.username, {"user": user.username, "why": str(exc)},
                     level="warning")
        db.session.commit()
        return f"The workspace could not be stopped now ({exc}); its links refuse {user.username} anyway."
    return "The workspace is being stopped; it is kept, not deleted."


def reinstate(user: User, actor: User) -> None:
    """Let a suspended account log in again; its workspace stays stopped until its owner starts it."""
    if user.status != "suspended":
        raise AccountError(f"Only suspended accounts can be reinstated; {user.username} is {user.status}.")
    user.status = "approved"
    user.meta = {**(user.meta or {}), "suspension_reason": None}
    audit.record("user_reinstated", actor.username, {"user": user.username}, level="warning")
    db.session.commit()
