"""A real SMTP server on a free loopback port for the mail tests (aiosmtpd, in-process).

`SmtpInbox` keeps every message that arrived; `mode` makes it accept, refuse (550) or defer (451).
`HungSmtp` accepts connections and never says a word, so clients must time out.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from flask import Flask

from app.extensions import db
from tests.support import build_app


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class SmtpInbox:
    """aiosmtpd handler: stores (envelope recipients, parsed message) for each accepted DATA."""

    def __init__(self) -> None:
        self.received: list[tuple[list[str], EmailMessage]] = []
        self.mode = "accept"
        self._lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd API
        if self.mode == "refuse":
            return "550 5.7.1 refused by policy"
        if self.mode == "defer":
            return "451 4.3.0 try again later"
        message = message_from_bytes(envelope.content, policy=policy.default)
        with self._lock:
            self.received.append((list(envelope.rcpt_tos), message))
        return "250 OK"

    def to(self, address: str) -> list[EmailMessage]:
        """Messages whose envelope named `address`."""
        with self._lock:
            return [msg for rcpts, msg in self.received if address in rcpts]


def start_smtp() -> tuple[Controller, SmtpInbox, int]:
    """Start an in-process SMTP server on loopback; returns (controller, inbox, port)."""
    inbox = SmtpInbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port, ready_timeout=10)
    controller.start()
    return controller, inbox, port


class HungSmtp:
    """A listener that accepts and then stays silent (no greeting), until stopped."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.accepted: list[socket.socket] = []
        self._stop = threading.Event()
        self.sock.settimeout(0.1)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        deadline = time.monotonic() + 120
        while not self._stop.is_set() and time.monotonic() < deadline:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.accepted.append(conn)

    def stop(self) -> None:
        """Close every connection and the listener."""
        self._stop.set()
        self.thread.join(timeout=5)
        for conn in self.accepted:
            conn.close()
        self.sock.close()


def mail_app(database_url: str, data_dir: Path, port: int, **overrides: object) -> Flask:
    """A testing app that sends mail to 127.0.0.1:`port` in plain SMTP, retrying at once.

    The timeout leaves room for a loaded machine (the in-process server shares the GIL); the hanging-
    server test sets its own short one.
    """
    settings: dict[str, object] = {
        "SMTP_HOST": "127.0.0.1", "SMTP_PORT": port, "SMTP_SECURITY": "none", "SMTP_TIMEOUT": 5,
        "MAIL_FROM": "slipway@example.org", "PUBLIC_URL": "http://slipway.test:8000",
        "TASK_RETRY_BASE_SECONDS": 0,
    }
    settings.update(overrides)
    return build_app(database_url, data_dir, **settings)


def body_text(message: EmailMessage) -> str:
    """The text/plain part of `message`."""
    part = message.get_body(preferencelist=("plain",))
    assert part is not None, "no text part"
    return part.get_content()


def body_html(message: EmailMessage) -> str:
    """The text/html part of `message`."""
    part = message.get_body(preferencelist=("html",))
    assert part is not None, "no html part"
    return part.get_content()


def clear_tables(app: Flask) -> None:
    """Empty every table (the mail tests' apps write through real tasks and commits)."""
    with app.app_context():
        for table in reversed(db.metadata.sorted_tables):
            db.session.execute(table.delete())
        db.session.commit()
        db.engine.dispose()


# Fixtures for the mail test modules, which import them: a real SMTP server on loopback, an app that
# mails to it, and its inbox.
@pytest.fixture(name="smtp")
def smtp_server() -> Iterator[tuple[SmtpInbox, int]]:
    controller, inbox, port = start_smtp()
    yield inbox, port
    controller.stop()


@pytest.fixture(name="app")
def mail_test_app(database_url: str, tmp_path: Path, smtp: tuple[SmtpInbox, int]) -> Iterator[Flask]:
    application = mail_app(database_url, tmp_path, smtp[1])
    yield application
    clear_tables(application)


@pytest.fixture(name="inbox")
def smtp_inbox(smtp: tuple[SmtpInbox, int]) -> SmtpInbox:
    return smtp[0]
