"""Alert webhooks: a signed JSON POST per new alert, sent by an `alert_webhook` task.

The URL is the rule's `webhook_url`, else `SLIPWAY_ALERT_WEBHOOK_URL`. The body is signed with
HMAC-SHA256 over `"{timestamp}.{body}"` using `SLIPWAY_ALERT_WEBHOOK_SECRET`; the receiver
recomputes it from the `X-Slipway-Timestamp` header and the raw body and compares it with
`X-Slipway-Signature: sha256=<hex>` (and may refuse old timestamps, so a captured delivery
cannot be replayed later). The destination passes the outbound address policy
(`SLIPWAY_WEBHOOK_NETWORKS`) at every attempt, redirects are not followed. Connection errors,
timeouts, 408, 429 and 5xx answers are retried by the runner with exponential backoff; any
other answer outside 2xx fails the delivery for good. Each attempt's outcome is stored on the
alert (`webhook_status`, `webhook_attempts`, `webhook_last_error`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any
from urllib.parse import urlsplit

import requests
from flask import current_app
from sqlalchemy import update
from sqlalchemy.orm import Session

from app.extensions import db
from app.models import Alert
from app.models.task import PRIORITY_BACKGROUND
from app.security import outbound
from app.worker.kinds import TaskContext, TaskFailed, task_kind

KIND = "alert_webhook"
MAX_ATTEMPTS = 8
TIMEOUT = (3.0, 10.0)
RETRY_STATUSES = frozenset({408, 429})


class DeliveryError(RuntimeError):
    """A delivery attempt that may succeed later (connection error, timeout, 5xx)."""


def webhook_url_for(rule_url: str | None) -> str | None:
    """Where an alert of a rule with `rule_url` is delivered, or None."""
    return rule_url or current_app.config.get("ALERT_WEBHOOK_URL") or None


def queue_delivery(alert: Alert, rule: Any) -> bool:
    """Queue the webhook task for a new alert when a URL applies (in the caller's transaction)."""
    from app.services import task_queue

    url = webhook_url_for(getattr(rule, "webhook_url", None))
    if not url:
        return False
    alert.webhook_status = "pending"
    task_queue.enqueue(KIND, target=f"alert:{alert.id}", requested_by="rules",
                       payload={"alert_id": alert.id, "url": url})
    return True


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The signature header value for `body` sent at `timestamp`."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def payload_for(alert: Alert) -> dict[str, Any]:
    """The JSON document describing `alert`."""
    return {
        "alert_id": alert.id, "rule": alert.rule_name, "rule_id": alert.rule_id, "state": alert.state,
        "severity": alert.severity, "risk_score": alert.risk_score, "group": alert.group_value,
        "count": alert.count, "message": alert.message, "username": alert.username,
        "server_id": alert.server_id, "first_seen": alert.first_seen.isoformat(timespec="seconds"),
        "last_seen": alert.last_seen.isoformat(timespec="seconds"),
        "url": current_app.config["PUBLIC_URL"].rstrip("/") + f"/logs/alerts/{alert.id}",
    }


def _store_outcome(alert_id: int, status: str, error: str) -> None:
    """Record one attempt on the alert in its own transaction (the task's may roll back)."""
    with Session(db.engine) as session:
        session.execute(update(Alert).where(Alert.id == alert_id).values(
            webhook_status=status, webhook_attempts=Alert.webhook_attempts + 1,
            webhook_last_error=error[:500]))
        session.commit()


def deliver(url: str, document: dict[str, Any]) -> None:
    """POST `document` to `url`, signed; raises DeliveryError (retry) or TaskFailed (give up)."""
    if problem := outbound.url_problem(url, "webhook"):
        raise TaskFailed(f"webhook address refused: {problem}")
    secret = current_app.config.get("ALERT_WEBHOOK_SECRET") or ""
    if not secret:
        raise TaskFailed("SLIPWAY_ALERT_WEBHOOK_SECRET is not set, so the webhook cannot be signed")
    body = json.dumps(document, sort_keys=True).encode()
    timestamp = str(int(time.time()))
    headers = {"Content-Type": "application/json", "User-Agent": "Slipway-Alerts",
               "X-Slipway-Timestamp": timestamp, "X-Slipway-Signature": sign(secret, timestamp, body)}
    try:
        response = requests.post(url, data=body, headers=headers, timeout=TIMEOUT, allow_redirects=False)
    except requests.RequestException as exc:
        raise DeliveryError(f"{type(exc).__name__}: {exc}") from exc
    if 200 <= response.status_code < 300:
        return
    if response.status_code >= 500 or response.status_code in RETRY_STATUSES:
        raise DeliveryError(f"the receiver answered {response.status_code}")
    raise TaskFailed(f"the receiver answered {response.status_code}")


@task_kind(KIND, max_attempts=MAX_ATTEMPTS, priority=PRIORITY_BACKGROUND)
def alert_webhook(ctx: TaskContext) -> dict[str, Any]:
    """Send one alert to its webhook; the runner retries transient failures with backoff."""
    alert = db.session.get(Alert, int(ctx.payload["alert_id"]))
    if alert is None:
        raise TaskFailed("the alert no longer exists")
    alert_id, url = alert.id, str(ctx.payload["url"])
    last_try = ctx.task.attempts >= ctx.task.max_attempts
    try:
        deliver(url, payload_for(alert))
    except TaskFailed as exc:
        _store_outcome(alert_id, "failed", str(exc))
        raise
    except DeliveryError as exc:
        _store_outcome(alert_id, "failed" if last_try else "retrying", str(exc))
        ctx.log(f"delivery failed: {exc}", level="warning")
        raise
    _store_outcome(alert_id, "delivered", "")
    ctx.log(f"delivered to {urlsplit(url).netloc}")
    return {"delivered": True}
