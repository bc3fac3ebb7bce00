"""The journey a new user makes, with every mail read from a real SMTP server on loopback.

Register → the admin is mailed → approves → the user is mailed, and again with the workspace
link once it runs (FakeBackend) → forgets the password → resets it from the login page → logs in.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import select

from app.extensions import db
from app.models import User
from tests.builders import PASSWORD, make_server, make_user
from tests.fakes import use_fake_backend
from tests.mail_support import SmtpInbox, body_text, mail_app, start_smtp
from tests.support import AuthActions, form_post, run_tasks

NEW = "my own new passphrase 31"


@pytest.fixture
def setup(database_url: str, tmp_path: Path,
          monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Flask, SmtpInbox]]:
    controller, inbox, port = start_smtp()
    app = mail_app(database_url, tmp_path, port, NGINX_BIN="/bin/true")
    use_fake_backend(monkeypatch)
    yield app, inbox
    controller.stop()
    with app.app_context():
        for table in reversed(db.metadata.sorted_tables):
            db.session.execute(table.delete())
        db.session.commit()
        db.engine.dispose()


def _link(message, pattern: str) -> str:
    match = re.search(r"http://slipway\.test:8000(" + pattern + r")", body_text(message))
    assert match, body_text(message)
    return match.group(1)


def test_register_approve_workspace_forget_reset_login(setup: tuple[Flask, SmtpInbox]) -> None:
    app, inbox = setup
    with app.app_context():
        make_server()
        make_user("boss", role="admin")
    person = app.test_client()
    form = {"username": "newbie", "email": "newbie@example.com", "password": PASSWORD,
            "password_confirm": PASSWORD}
    assert form_post(person, "/register", form, "/register").status_code == 302
    run_tasks(app)
    [to_admin] = inbox.to("boss@example.com")
    queue = _link(to_admin, r"/admin/approvals")

    admin = app.test_client()
    assert AuthActions(admin).login("boss").status_code == 302
    assert "newbie" in admin.get(queue).get_data(as_text=True)
    with app.app_context():
        newbie_id = db.session.scalar(select(User.id).where(User.username == "newbie"))
    assert form_post(admin, f"/admin/users/{newbie_id}/approve", {"back": queue}, queue).status_code == 302
    tasks = run_tasks(app)
    assert {t.kind: t.state for t in tasks}["provision"] == "succeeded"
    subjects = [m["Subject"] for m in inbox.to("newbie@example.com")]
    assert subjects == ["[Slipway] Your account is approved", "[Slipway] Your workspace is ready"]
    workspace_page = _link(inbox.to("newbie@example.com")[1], r"/workspaces/")

    assert '<a href="/login/forgot">Forgot password?</a>' in person.get("/login").get_data(as_text=True)
    asked = form_post(person, "/login/forgot", {"email": "newbie@example.com"}, "/login/forgot")
    assert asked.status_code == 302
    run_tasks(app)
    reset = _link(inbox.to("newbie@example.com")[-1], r"/login/reset/[A-Za-z0-9_-]+")
    response = form_post(person, reset, {"password": NEW, "password_confirm": NEW}, reset)
    assert response.headers["Location"] == "/login"
    assert AuthActions(person).login("newbie", PASSWORD).status_code == 200  # the old one is refused
    assert AuthActions(person).login("newbie", NEW).headers["Location"] == workspace_page
    assert person.get(workspace_page).status_code == 200
