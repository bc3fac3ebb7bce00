"""Search text reaches LIKE patterns literally: `%`, `_` and `\\` are letters, not wildcards."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import User
from app.models.like import contains_text, escape_like
from tests.builders import make_user

EVERYONE = ["anna", "bob", "cleo", "root-admin"]


def found(client, q: str) -> set[str]:
    page = client.get("/admin/users", query_string={"q": q}).get_data(as_text=True)
    return {name for name in EVERYONE if f">{name}</a>" in page}


def test_admin_user_search_treats_wildcards_as_letters(app, client, auth):
    auth.as_role("admin", username="root-admin")
    with app.app_context():
        make_user("anna", email="anna@example.com")
        make_user("bob", email="bob_x@example.com")
        make_user("cleo", email="cleo%off@example.com")
    assert found(client, "%") == {"cleo"}
    assert found(client, "_") == {"bob"}
    assert found(client, "b_x") == {"bob"}
    assert found(client, "a_n") == set()
    assert "0 users" in client.get("/admin/users", query_string={"q": "\\"}).get_data(as_text=True)
    assert found(client, "ann") == {"anna"}


@pytest.mark.parametrize(
    "typed, expected",
    [("%", {"cleo"}), ("_", {"bob"}), ("\\", {"dina"}), ("\\%", set()), ("o%o", {"cleo"}), ("xample", None)],
)
def test_contains_text_matches_literally_on_this_database(app, typed, expected):
    with app.app_context():
        make_user("anna", email="anna@example.com")
        make_user("bob", email="bob_x@example.com")
        make_user("cleo", email="cleo%off@example.com")
        make_user("dina", email="di\\na@example.com")
        found = set(db.session.scalars(select(User.username).where(contains_text(User.email, typed))))
    assert found == (expected if expected is not None else {"anna", "bob", "cleo", "dina"})


def test_escape_like_escapes_the_escape_character_first():
    assert escape_like("a\\%_b") == "a\\\\\\%\\_b"
