"""Who gets which mail. Each function adds `send_mail` tasks to the caller's transaction.

Kinds a user can switch off on the account page: `registrations` (admins: a new account waits),
`account` (approval, rejection, workspace ready), `builds` (a build, push or pull you started ended)
and `alerts` (admins: an alert of severity high or above opened). Security mail (password
changed, two-factor turned off, a login from an unseen address) is always sent.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from app.extensions import db
from app.mail.message import absolute_url, one_line
from app.mail.tasks import mail_enabled, queue_message
from app.models import Alert, MailOptOut, Task, User, UserSession, Workspace
from app.worker.kinds import on_finish

SECURITY = "security"
ALERT_MIN_SEVERITIES = ("high", "critical")
# Task kinds whose end is mailed to whoever started them.
TASK_MAIL_KINDS = ("build", "push", "pull")


def wants(user: User, kind: str) -> bool:
    """True unless `user` switched `kind` off (security mail cannot be switched off)."""
    if kind == SECURITY:
        return True
    return db.session.scalar(
        select(MailOptOut.id).where(MailOptOut.user_id == user.id, MailOptOut.kind == kind)) is None


def _send(user: User, kind: str, subject: str, template: str, context: dict[str, Any]) -> bool:
    if not mail_enabled() or not user.email or not wants(user, kind):
        return False
    queue_message(user.email, subject, template, {"username": user.username, **context}, kind=kind)
    return True


def _admins() -> list[User]:
    return list(db.session.scalars(select(User).where(User.role == "admin", User.status == "approved")
                                   .order_by(User.id)))


def registration(user: User) -> None:
    """A new account waits for approval: tell every admin, with a link to the approval queue."""
    for admin in _admins():
        _send(admin, "registrations", f"New account waiting for approval: {user.username}", "registration",
              {"new_user": user.username, "new_email": user.email, "url": absolute_url("admin.approvals")})


def approved(user: User, *, workspace_queued: bool) -> None:
    """The account is approved; the workspace link follows when its container runs."""
    _send(user, "account", "Your account is approved", "approved",
          {"workspace_queued": workspace_queued, "url": absolute_url("workspaces.home")})


def rejected(user: User, reason: str) -> None:
    """The account was rejected, with the admin's reason."""
    _send(user, "account", "Your account request was not approved", "rejected",
          {"reason": reason, "url": absolute_url("auth.login")})


@on_finish
def task_finished(task: Task, state: str) -> None:
    """A finished task: a build, push or pull to whoever started it, a provision to the workspace's owner.

    Run by the worker as a finish hook of every task (`app.worker.kinds.on_finish`)."""
    if state not in ("succeeded", "failed") or not mail_enabled():
        return
    if task.kind == "provision":
        ws = db.session.get(Workspace, (task.payload or {}).get("workspace_id"))
        owner = db.session.get(User, ws.user_id) if ws is not None else None
        if owner is not None and state == "succeeded":
            _send(owner, "account", "Your workspace is ready", "workspace_ready",
                  {"url": absolute_url("workspaces.home")})
        elif owner is not None:
            _send(owner, "account", "Your workspace could not be started yet", "workspace_failed",
                  {"url": absolute_url("workspaces.home")})
        return
    if task.kind not in TASK_MAIL_KINDS or not task.requested_by:
        return
    starter = db.session.scalar(select(User).where(User.username == task.requested_by))
    if starter is None:
        return
    what = task.kind
    subject = f"Your {what} {'finished' if state == 'succeeded' else 'failed'}: {task.target or ''}"
    _send(starter, "builds", subject, "task_finished",
          {"what": what, "state": state, "target": task.target or "",
           "message": one_line(task.message or "", 500),
           "url": absolute_url("tasks.detail", task_id=task.id)})


def alert_opened(alert: Alert) -> None:
    """A new alert of severity high or above: tell every admin."""
    if alert.severity not in ALERT_MIN_SEVERITIES:
        return
    for admin in _admins():
        _send(admin, "alerts", f"{alert.severity.capitalize()} alert: {alert.rule_name}", "alert",
              {"rule": alert.rule_name, "severity": alert.severity,
               "message": one_line(alert.message or "", 500),
               "group": alert.group_value or "", "url": absolute_url("logs.alert_detail", alert_id=alert.id)})


def password_changed(user: User, *, by_admin: bool) -> None:
    """Security mail: the password of `user` changed (by them, a reset link, or an admin)."""
    _send(user, SECURITY, "Your password was changed", "password_changed",
          {"by_admin": by_admin, "url": absolute_url("auth.forgot_password")})


def mfa_disabled(user: User, actor: str) -> None:
    """Security mail: two-factor authentication was turned off for `user`."""
    _send(user, SECURITY, "Two-factor authentication was turned off", "mfa_disabled",
          {"by_admin": actor != user.username, "url": absolute_url("account.overview")})


def new_login(user: User, ip: str | None, agent: str) -> None:
    """Security mail when `user` logs in from an address none of their earlier sessions used."""
    if not ip:
        return
    earlier = db.session.scalars(select(UserSession.ip_address).where(UserSession.user_id == user.id)
                                 .distinct().limit(1000)).all()
    if not earlier or ip in earlier:  # the first login ever is not news
        return
    _send(user, SECURITY, "New login to your account", "new_login",
          {"ip": ip, "agent": one_line(agent, 200), "url": absolute_url("account.sessions")})
