"""Task kinds that send mail: `send_mail` (one message to one address) and `password_reset_mail`.

Both retry on a deferral (connection error, timeout, 4xx) with the runner's exponential backoff
and fail for good on a refusal (5xx) or a message that cannot be built safely. A failed send is
visible on its task; the action that queued it was committed before and stays done.
"""

from __future__ import annotations

from typing import Any

from flask import current_app

from app.extensions import db
from app.mail.message import MessageError, compose
from app.mail.smtp import MailDeferred, MailRefused, send
from app.models.task import PRIORITY_BACKGROUND, PRIORITY_INTERACTIVE
from app.services.task_queue import enqueue
from app.worker.kinds import TaskContext, TaskFailed, task_kind

SEND_KIND = "send_mail"
RESET_KIND = "password_reset_mail"
MAX_ATTEMPTS = 6
# The templates a queued message may name (each has a .txt and an .html in templates/mail/).
TEMPLATES = frozenset({
    "registration", "approved", "rejected", "workspace_ready", "workspace_failed", "task_finished",
    "alert", "password_changed", "mfa_disabled", "new_login",
})


def mail_enabled() -> bool:
    """True when an SMTP server is configured."""
    return bool(current_app.config.get("SMTP_HOST"))


def queue_message(to: str, subject: str, template: str, context: dict[str, Any], *, kind: str) -> None:
    """Add a `send_mail` task to the session (the caller commits with the action it reports)."""
    if template not in TEMPLATES:
        raise KeyError(f"unknown mail template {template!r}")
    enqueue(SEND_KIND, target=f"mail:{kind}", requested_by="mail",
            payload={"to": to, "subject": subject, "template": template, "context": context, "kind": kind})


def deliver(ctx: TaskContext, to: str, subject: str, template: str, context: dict[str, Any]) -> None:
    """Build and send one message, turning outcomes into the task contract (retry or fail)."""
    try:
        message = compose(to, subject, template, context)
    except MessageError as exc:
        raise TaskFailed(f"message not sent: {exc}") from exc
    try:
        send(message)
    except MailRefused as exc:
        raise TaskFailed(str(exc)) from exc
    except MailDeferred as exc:
        ctx.log(f"not sent yet: {exc}", level="warning")
        raise


@task_kind(SEND_KIND, max_attempts=MAX_ATTEMPTS, priority=PRIORITY_BACKGROUND)
def send_mail(ctx: TaskContext) -> dict[str, Any]:
    """Send one queued notification."""
    payload = ctx.payload
    template = str(payload.get("template"))
    if template not in TEMPLATES:
        raise TaskFailed(f"unknown mail template {template!r}")
    deliver(ctx, str(payload["to"]), str(payload["subject"]), template, dict(payload.get("context") or {}))
    ctx.log(f"sent {template} mail")
    return {"sent": True}


def queue_reset(email: str, ip: str | None) -> None:
    """Queue the reset mail for whatever account `email` names, if any (the caller commits)."""
    enqueue(RESET_KIND, target="mail:password_reset", requested_by="system",
            payload={"email": email, "ip": ip}, priority=PRIORITY_INTERACTIVE)


@task_kind(RESET_KIND, max_attempts=MAX_ATTEMPTS, priority=PRIORITY_INTERACTIVE)
def password_reset_mail(ctx: TaskContext) -> dict[str, Any]:
    """Issue a reset token for the account behind the address and mail its link (or do nothing)."""
    from app.auth import reset_tokens

    outcome = reset_tokens.issue_for(str(ctx.payload.get("email") or ""), ctx.task.id,
                                     ctx.payload.get("ip"))
    if outcome.user is None:
        ctx.log(outcome.reason)
        return {"sent": False}
    db.session.commit()
    deliver(ctx, outcome.user.email, "Reset your password", "password_reset",
            {"username": outcome.user.username, "reset_url": outcome.url,
             "minutes": reset_tokens.VALID_MINUTES, "forgot_url": outcome.forgot_url})
    ctx.log("sent the reset link")
    return {"sent": True}
