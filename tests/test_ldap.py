"""Directory login against a real slapd: first login, groups, wrong password, outage, bad names, injection."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import AuditLog, User
from app.services import accounts
from tests import ldapkit
from tests.builders import make_user
from tests.support import AuthActions, require_service


@pytest.fixture(scope="module")
def slapd() -> Iterator[ldapkit.Slapd]:
    """One private directory for the module."""
    require_service("slapd", ldapkit.slapd_available())
    with ldapkit.running_slapd() as server:
        yield server


def directory_settings(url: str) -> dict[str, object]:
    return {
        "LDAP_URL": url,
        "LDAP_BIND_DN": ldapkit.READER_DN,
        "LDAP_BIND_PASSWORD": ldapkit.READER_PASSWORD,
        "LDAP_USER_BASE": ldapkit.PEOPLE,
        "LDAP_GROUP_BASE": ldapkit.GROUPS,
        "LDAP_GROUP_ROLES": f"{ldapkit.ADMINS}=admin;{ldapkit.BUILDERS.upper()}=qvp",
        "LDAP_AUTO_APPROVE_GROUPS": ldapkit.AUTO,
        "LDAP_CONNECT_TIMEOUT": 2.0,
        "LDAP_TIMEOUT": 2.0,
    }


@pytest.fixture
def ldap_app(app, slapd):
    """The test app with directory login switched on."""
    app.config.update(directory_settings(slapd.url))
    return app


def login(client, name: str, password: str = ldapkit.PASSWORD):
    return AuthActions(client).login(name, password)


def user_named(app, username: str) -> User | None:
    with app.app_context():
        return db.session.scalar(select(User).where(User.username == username))


def audit_rows(app, action: str) -> list[AuditLog]:
    with app.app_context():
        return list(db.session.scalars(select(AuditLog).where(AuditLog.action_type == action)))


def user_count(app) -> int:
    with app.app_context():
        return len(db.session.scalars(select(User.id)).all())


def test_first_login_creates_a_pending_directory_account(ldap_app, client):
    response = login(client, "alice")
    assert response.status_code == 302 and response.headers["Location"].endswith("/pending")
    alice = user_named(ldap_app, "alice")
    assert (alice.status, alice.role, alice.auth_source) == ("pending", "regular", "ldap")
    assert (alice.email, alice.directory_dn) == ("alice@example.org", ldapkit.person_dn("alice"))
    [created] = audit_rows(ldap_app, "directory_user_created")
    assert created.details["auto_approve"] is False
    assert audit_rows(ldap_app, "user_logged_in")
    # The second login finds the same account; no second row.
    client.post("/logout", data={"csrf_token": _token(client)})
    assert login(client, "alice").headers["Location"].endswith("/pending")
    assert user_count(ldap_app) == 1


def _token(client) -> str:
    from tests.support import csrf_token

    return csrf_token(client, "/pending")


@pytest.mark.parametrize(("uid", "role"), [("bob", "qvp"), ("ada", "admin")])
def test_group_mapped_user_is_approved_with_the_mapped_role(ldap_app, client, uid, role):
    response = login(client, uid)
    assert response.status_code == 302 and not response.headers["Location"].endswith("/pending")
    user = user_named(ldap_app, uid)
    assert (user.status, user.role, user.auth_source) == ("approved", role, "ldap")
    [approved] = audit_rows(ldap_app, "user_approved")
    assert approved.details["user"] == uid
    # No server has room in this test: approved all the same, the missing workspace audited.
    assert audit_rows(ldap_app, "workspace_not_queued")


def test_wrong_directory_password_is_refused_and_counted(ldap_app, client):
    page = login(client, "alice", "not-the-password-at-all").get_data(as_text=True)
    assert "Wrong username, email or password." in page
    assert user_named(ldap_app, "alice") is None
    login(client, "alice")
    client.post("/logout", data={"csrf_token": _token(client)})
    page = login(client, "alice", "still-not-the-password").get_data(as_text=True)
    assert "Wrong username, email or password." in page
    with ldap_app.app_context():
        alice = db.session.scalar(select(User).where(User.username == "alice"))
        assert alice.failed_logins == 1
    assert [row.username for row in audit_rows(ldap_app, "login_failed")] == [None, "alice"]


def test_unknown_name_in_the_directory_is_a_plain_failure(ldap_app, client):
    page = login(client, "nobody-here").get_data(as_text=True)
    assert "Wrong username, email or password." in page
    assert user_count(ldap_app) == 0


@pytest.mark.parametrize("down", ["closed port", "wrong service password"])
def test_directory_down_says_so_and_local_admin_still_logs_in(app, client, slapd, down):
    closed = f"ldap://127.0.0.1:{ldapkit.free_port()}"
    settings = directory_settings(closed if down == "closed port" else slapd.url)
    if down == "wrong service password":
        settings["LDAP_BIND_PASSWORD"] = "wrong-reader-password"
    app.config.update(settings)
    with app.app_context():
        make_user("root-admin", role="admin")
    page = login(client, "alice").get_data(as_text=True)
    assert "The directory (LDAP) cannot be reached" in page
    assert "Local accounts still can" in page
    assert user_named(app, "alice") is None
    assert audit_rows(app, "directory_unavailable")
    response = login(client, "root-admin", "correct horse battery")
    assert response.status_code == 302 and response.headers["Location"].endswith("/admin/")


def test_hung_directory_answers_within_the_timeout(app, client):
    with ldapkit.silent_listener() as port:
        app.config.update(directory_settings(f"ldap://127.0.0.1:{port}"), LDAP_TIMEOUT=1.0)
        started = time.monotonic()
        page = login(client, "alice").get_data(as_text=True)
        elapsed = time.monotonic() - started
    assert "The directory (LDAP) cannot be reached" in page
    assert elapsed < 8, elapsed


def test_existing_directory_account_with_directory_down_is_told_so(ldap_app, client):
    login(client, "alice")
    client.post("/logout", data={"csrf_token": _token(client)})
    ldap_app.config["LDAP_URL"] = f"ldap://127.0.0.1:{ldapkit.free_port()}"
    page = login(client, "alice").get_data(as_text=True)
    assert "The directory (LDAP) cannot be reached" in page


@pytest.mark.parametrize(("uid", "words"), [
    ("carol_smith", ["carol_smith", "cannot be used here", "lowercase letters"]),
    ("nomail", ["no usable e-mail address", "attribute mail"]),
])
def test_unusable_directory_account_is_refused_with_a_reason(ldap_app, client, uid, words):
    page = login(client, uid).get_data(as_text=True)
    for word in words:
        assert word in page
    assert user_count(ldap_app) == 0
    [refused] = audit_rows(ldap_app, "directory_login_refused")
    assert refused.details["dn"] == ldapkit.person_dn(uid)


def test_only_ascii_case_is_folded(ldap_app, client):
    login(client, "Dave")
    assert user_named(ldap_app, "dave").directory_dn == ldapkit.person_dn("Dave")


def test_a_local_account_of_the_same_name_is_never_taken_over(ldap_app, client):
    with ldap_app.app_context():
        make_user("twin", password="local twin password 1")
    # The typed name is the local account's: only its local password counts.
    page = login(client, "twin").get_data(as_text=True)
    assert "Wrong username, email or password." in page
    # Reached through the directory by another filter: refused, not logged in as the local twin.
    ldap_app.config["LDAP_USER_FILTER"] = "(&(objectClass=inetOrgPerson)(mail={login}))"
    page = login(client, "twin-directory@example.org").get_data(as_text=True)
    assert "A local account named twin already exists" in page
    assert user_named(ldap_app, "twin").auth_source == "local"
    response = login(client, "twin", "local twin password 1")
    assert response.status_code == 302 and not response.headers["Location"].endswith("/login")


INJECTIONS = [
    "*",
    "*)(uid=*))(|(uid=*",
    "alice)(|(uid=*",
    "ali*",
    "*lice",
    "a*e",
    "*)(objectClass=*",
    "alice)(uid=*",
    "alice\\2a",
    "al\\69ce",
    "(uid=alice)",
    "alice\x00",
    "*)(|(mail=alice@example.org",
]


def test_filter_injection_never_matches_another_account(ldap_app, client):
    ldap_app.config.update(IP_BAN_ACCOUNTS=1000, IP_BAN_FAILURES=1000)
    for payload in INJECTIONS:
        page = login(client, payload).get_data(as_text=True)
        assert "Wrong username, email or password." in page, payload
    assert user_count(ldap_app) == 0
    assert not audit_rows(ldap_app, "user_logged_in")


def test_filter_values_are_escaped():
    from app.directory.client import fill

    escaped = r"(uid=\2a\29\28uid=\2a\29\29\28|\28uid=\2a)"
    assert fill("(uid={login})", "{login}", "*)(uid=*))(|(uid=*") == escaped
    assert fill("(member={dn})", "{dn}", "cn=a\\,b") == r"(member=cn=a\5c,b)"


def test_directory_password_pages_say_where_to_change_it(ldap_app, client):
    login(client, "bob")
    page = client.get("/account/password").get_data(as_text=True)
    assert "managed in your organisation" in page and "new_password" not in page
    from tests.support import form_post

    form_post(client, "/account/password", {"current_password": "x", "new_password": "y",
                                             "new_password_confirm": "y"}, page="/account/")
    assert audit_rows(ldap_app, "password_change_refused")
    overview = client.get("/account/").get_data(as_text=True)
    assert "Managed in your organisation" in overview
    with ldap_app.app_context():
        bob = db.session.scalar(select(User).where(User.username == "bob"))
        admin = make_user("boss", role="admin")
        with pytest.raises(accounts.AccountError, match="managed in the directory"):
            accounts.reset_password(bob, "An0ther-long-password!", admin)


def test_mfa_policy_applies_to_directory_accounts(ldap_app, client):
    ldap_app.config["MFA_REQUIRED_ROLES"] = "admin"
    response = login(client, "ada")
    assert response.status_code == 302 and response.headers["Location"].endswith("/login/mfa/setup")


def test_backup_codes_ask_for_the_directory_password(ldap_app, client):
    from app.security import mfa
    from tests.support import form_post

    login(client, "bob")
    with ldap_app.app_context():
        bob = db.session.scalar(select(User).where(User.username == "bob"))
        mfa.enable(bob, mfa.new_secret())
        db.session.commit()
    wrong = form_post(client, "/account/mfa/backup-codes", {"password": "not-bobs-pw"}, page="/account/",
                      follow_redirects=True).get_data(as_text=True)
    assert "That is not your password." in wrong
    right = form_post(client, "/account/mfa/backup-codes", {"password": ldapkit.PASSWORD}, page="/account/",
                      follow_redirects=True).get_data(as_text=True)
    assert "That is not your password." not in right and "backup" in right.lower()
    assert audit_rows(ldap_app, "mfa_backup_codes_regenerated")


@pytest.fixture(scope="module")
def tls_slapd() -> Iterator[ldapkit.Slapd]:
    """A directory that offers StartTLS with a certificate from a test CA."""
    require_service("slapd", ldapkit.slapd_available())
    with ldapkit.running_slapd(tls=True) as server:
        yield server


def test_start_tls_logs_in_with_the_directory_ca(app, client, tls_slapd):
    app.config.update(directory_settings(tls_slapd.url), LDAP_START_TLS=True,
                      LDAP_CA_FILE=str(tls_slapd.ca_file))
    assert login(client, "alice").headers["Location"].endswith("/pending")


def test_start_tls_refuses_a_certificate_it_cannot_verify(app, client, tls_slapd):
    app.config.update(directory_settings(tls_slapd.url), LDAP_START_TLS=True)  # system CAs: test CA unknown
    page = login(client, "alice").get_data(as_text=True)
    assert "The directory (LDAP) cannot be reached" in page
    assert user_named(app, "alice") is None
    [row] = audit_rows(app, "directory_unavailable")
    assert "certificate" in row.details["error"].lower() or "tls" in row.details["error"].lower()
