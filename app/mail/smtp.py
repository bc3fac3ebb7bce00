"""Deliver one message over SMTP (plain, STARTTLS or TLS, optional login), bounded by a timeout."""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage

from flask import current_app


class MailDeferred(RuntimeError):
    """The server could not take the message now (connection error, timeout, 4xx): try again later."""


class MailRefused(RuntimeError):
    """The server refused the message for good (5xx): retrying would not help."""


def _text(value: bytes | str) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def _connect() -> smtplib.SMTP:
    cfg = current_app.config
    host, port, timeout = cfg["SMTP_HOST"], cfg["SMTP_PORT"], float(cfg["SMTP_TIMEOUT"])
    if cfg["SMTP_SECURITY"] == "tls":
        return smtplib.SMTP_SSL(host, port, timeout=timeout, context=ssl.create_default_context())
    client = smtplib.SMTP(host, port, timeout=timeout)
    if cfg["SMTP_SECURITY"] == "starttls":
        try:
            client.starttls(context=ssl.create_default_context())
        except BaseException:
            client.close()
            raise
    return client


def send(message: EmailMessage) -> None:
    """Send `message`; raises MailDeferred (retry) or MailRefused (give up)."""
    cfg = current_app.config
    if not cfg.get("SMTP_HOST"):
        raise MailRefused("no SMTP server is configured (SLIPWAY_SMTP_HOST)")
    try:
        with _connect() as client:
            if cfg.get("SMTP_USERNAME"):
                client.login(cfg["SMTP_USERNAME"], cfg["SMTP_PASSWORD"] or "")
            client.send_message(message)
    except smtplib.SMTPRecipientsRefused as exc:
        codes = [code for code, _ in exc.recipients.values()]
        reason = "; ".join(f"{code} {_text(text)}" for code, text in exc.recipients.values())
        if all(code >= 500 for code in codes):
            raise MailRefused(f"recipient refused: {reason}") from exc
        raise MailDeferred(f"recipient deferred: {reason}") from exc
    except smtplib.SMTPResponseException as exc:
        text = _text(exc.smtp_error)
        if exc.smtp_code >= 500:
            raise MailRefused(f"the SMTP server refused: {exc.smtp_code} {text}") from exc
        raise MailDeferred(f"the SMTP server deferred: {exc.smtp_code} {text}") from exc
    except (OSError, smtplib.SMTPException) as exc:
        raise MailDeferred(f"{type(exc).__name__}: {exc or 'no answer'}") from exc
