"""Build a multipart text + HTML message from a pair of templates in templates/mail/."""

from __future__ import annotations

from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import make_msgid
from typing import Any
from urllib.parse import urlsplit

from flask import current_app, render_template

PRODUCT = "Slipway"
# raise_on_defect: a header value with CR/LF or a malformed address raises instead of being sent.
POLICY = SMTP.clone(raise_on_defect=True)


class MessageError(ValueError):
    """A message cannot be built safely (an address or header that would inject headers)."""


def one_line(value: str, limit: int = 150) -> str:
    """`value` with every run of whitespace (CR and LF included) folded into one space, cut to `limit`."""
    text = " ".join(str(value).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def absolute_url(endpoint: str, **values: Any) -> str:
    """The absolute link to `endpoint`, under SLIPWAY_PUBLIC_URL (works outside a request)."""
    base = urlsplit(current_app.config["PUBLIC_URL"])
    adapter = current_app.url_map.bind(base.netloc, script_name=base.path or "/", url_scheme=base.scheme)
    return adapter.build(endpoint, values, force_external=True)


def address(addr_spec: str) -> Address:
    """A recipient or sender address; refuses anything that is not exactly one plain address."""
    if any(ch in addr_spec for ch in "\r\n\0,;<>") or addr_spec.count("@") != 1:
        raise MessageError(f"refused address {addr_spec!r}")
    try:
        return Address(addr_spec=addr_spec)
    except (ValueError, IndexError) as exc:
        raise MessageError(f"refused address {addr_spec!r}: {exc}") from exc


def compose(to: str, subject: str, template: str, context: dict[str, Any]) -> EmailMessage:
    """Render mail/<template>.txt and .html into one message to `to`; raises MessageError."""
    values = {**context, "product": PRODUCT, "subject": one_line(subject)}
    text = render_template(f"mail/{template}.txt", **values)
    html = render_template(f"mail/{template}.html", **values)
    sender = address(current_app.config["MAIL_FROM"])
    message = EmailMessage(policy=POLICY)
    try:
        message["Subject"] = f"[{PRODUCT}] {one_line(subject)}"
        message["From"] = Address(display_name=PRODUCT, username=sender.username, domain=sender.domain)
        message["To"] = address(to)
        message["Message-ID"] = make_msgid(domain=sender.domain)
        message["Auto-Submitted"] = "auto-generated"
    except ValueError as exc:
        raise MessageError(f"refused header: {exc}") from exc
    message.set_content(text)
    message.add_alternative(html, subtype="html")
    return message
