"""Common and easily guessed passwords are refused everywhere a password is chosen, saying why."""

from __future__ import annotations

from sqlalchemy import select

from app.extensions import db
from app.models import User
from tests.builders import PASSWORD, make_user
from tests.support import form_post

WEAK = "password1234"  # 12 characters, so only the strength check can refuse it
WHY = "too easy to guess"


def test_registration_refuses_a_common_password_and_says_why(app, client):
    form = {"username": "alice", "email": "alice@example.com", "password": WEAK, "password_confirm": WEAK}
    html = form_post(client, "/register", form).get_data(as_text=True)
    assert WHY in html and "very common password" in html
    with app.app_context():
        assert db.session.scalar(select(User.id)) is None


def test_registration_refuses_a_password_built_from_the_username(app, client):
    typed = "mortimerzz-1"
    form = {"username": "mortimerzz", "email": "m@example.com", "password": typed, "password_confirm": typed}
    assert WHY in form_post(client, "/register", form).get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(select(User.id)) is None


def test_own_password_change_refuses_a_common_password(app, client, auth):
    user = auth.as_role("regular")
    form = {"current_password": PASSWORD, "new_password": WEAK, "new_password_confirm": WEAK}
    html = form_post(client, "/account/password", form, page="/account/password").get_data(as_text=True)
    assert WHY in html
    with app.app_context():
        assert db.session.get(User, user.id).password_hash == user.password_hash


def test_admin_reset_refuses_a_common_password(app, client, auth):
    auth.as_role("admin")
    with app.app_context():
        target = make_user("olga")
        uid, old_hash = target.id, target.password_hash
    response = form_post(client, f"/admin/users/{uid}/password", {"password": WEAK}, follow_redirects=True)
    assert WHY in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.get(User, uid).password_hash == old_hash


def test_create_admin_refuses_a_common_password(app, runner):
    args = ["create-admin", "--username", "chief", "--email", "chief@example.com", "--password-stdin"]
    result = runner.invoke(args=args, input=f"{WEAK}\n")
    assert result.exit_code != 0 and WHY in result.output
    with app.app_context():
        assert db.session.scalar(select(User.id)) is None


def test_a_strong_password_still_passes_and_the_length_rules_stay(app, client):
    form = {"username": "bruno", "email": "bruno@example.com", "password": "short"}
    form["password_confirm"] = "short"
    assert "at least 12" in form_post(client, "/register", form).get_data(as_text=True)
    long_one = "é" * 40
    form.update(password=long_one, password_confirm=long_one)
    assert "72 bytes" in form_post(client, "/register", form).get_data(as_text=True)
    form.update(password=PASSWORD, password_confirm=PASSWORD)
    assert form_post(client, "/register", form).status_code == 302
