"""The credential step of a login: the local password for local accounts, the directory for the rest.

A directory account is created on its first successful login: pending, unless one of its
groups is an auto-approval group (then approved through `services.workspaces.approve_user`).
Its role comes from the group mapping. Its local password hash is of a random secret nobody
knows, so no local password check can ever accept it.
"""

from __future__ import annotations

import secrets

from flask import current_app
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from app.directory import client
from app.directory.client import DirectoryEntry, DirectoryUnavailable
from app.directory.mapping import mapped_role, parse_dn_list, parse_group_roles
from app.extensions import db
from app.models import User
from app.security.passwords import check_password, hash_password
from app.services import audit, workspaces
from app.validators import username_problem

__all__ = ["DirectoryLoginRefused", "DirectoryUnavailable", "check_credentials", "password_matches"]


class DirectoryLoginRefused(ValueError):
    """The directory accepted the password but the account cannot be used here; the message says why."""


def check_credentials(user: User | None, login: str, password: str) -> User | None:
    """The user `login` + `password` prove to be (created on a first directory login), or None.

    `user` is the local row `login` names, if any. Raises DirectoryUnavailable when the
    directory is needed but cannot answer, DirectoryLoginRefused when its account is unusable.
    """
    if user is not None and user.auth_source != "ldap":
        return user if check_password(password, user.password_hash) else None
    if not client.enabled():
        check_password(password, None)  # the same bcrypt work as a known name
        if user is not None:
            raise DirectoryUnavailable("directory login is switched off (SLIPWAY_LDAP_URL is unset)")
        return None
    entry = client.authenticate(user.username if user is not None else login.strip(), password)
    if entry is None:
        return None
    return _local_account(entry, user)


def password_matches(user: User, password: str) -> bool:
    """True when `password` is `user`'s password, asking the directory for directory accounts."""
    if user.auth_source != "ldap":
        return check_password(password, user.password_hash)
    if not client.enabled():
        raise DirectoryUnavailable("directory login is switched off (SLIPWAY_LDAP_URL is unset)")
    entry = client.authenticate(user.username, password)
    return entry is not None and entry.dn.lower() == (user.directory_dn or "").lower()


def _refuse(entry: DirectoryEntry, reason: str, message: str) -> DirectoryLoginRefused:
    audit.record("directory_login_refused", None, {"dn": entry.dn, "username": entry.username,
                                                    "reason": reason}, level="warning")
    db.session.commit()
    return DirectoryLoginRefused(message)


def _local_account(entry: DirectoryEntry, user: User | None) -> User:
    """The row for `entry`: `user` when it is the same entry, else an existing or new directory account."""
    # Only ASCII case is folded: LDAP and DNS both compare names without case. Nothing else changes.
    username = entry.username.lower() if entry.username.isascii() else entry.username
    problem = username_problem(username)
    if problem:
        raise _refuse(entry, "username", (
            f"Your directory username {entry.username!r} cannot be used here: {problem} "
            "An administrator can give the account a username that fits in the directory."))
    existing = user or db.session.scalar(select(User).where(User.username == username))
    if existing is not None:
        if existing.auth_source != "ldap":
            raise _refuse(entry, "local_account_exists", (
                f"A local account named {username} already exists, so the directory account "
                f"{entry.username!r} cannot log in; an administrator must rename or remove one of them."))
        if existing.username != username:
            raise _refuse(entry, "username_changed", (
                f"The directory now calls this account {entry.username!r}, but here it is "
                f"{existing.username}; "
                "an administrator must sort this out."))
        if (existing.directory_dn or "").lower() != entry.dn.lower():
            audit.record("directory_dn_changed", existing.username,
                         {"from": existing.directory_dn, "to": entry.dn}, level="warning")
            existing.directory_dn = entry.dn
        return existing
    return _create(entry, username)


def _create(entry: DirectoryEntry, username: str) -> User:
    """Create the account of a first directory login: pending, or approved by an auto-approval group."""
    from app.auth.forms import email_problem

    cfg = current_app.config
    email = (entry.email or "").strip().lower()
    attr = cfg["LDAP_EMAIL_ATTRIBUTE"]
    if not email or email_problem(email, strict_domains=cfg["EMAIL_STRICT_DOMAINS"]):
        raise _refuse(entry, "email", (
            f"Your directory account has no usable e-mail address (attribute {attr}); "
            "an administrator can add one in the directory."))
    if db.session.scalar(select(User.id).where(func.lower(User.email) == email)):
        raise _refuse(entry, "email_taken", (
            f"Another account here already uses {email}; an administrator must sort this out."))
    roles = parse_group_roles(cfg["LDAP_GROUP_ROLES"])[0]
    approvers = parse_dn_list(cfg["LDAP_AUTO_APPROVE_GROUPS"])[0]
    role = mapped_role(list(entry.groups), roles) or "regular"
    auto_approve = any(group in approvers for group in entry.groups)
    user = User(username=username, email=email, password_hash=hash_password(secrets.token_urlsafe(32)),
                role=role, status="pending", auth_source="ldap", directory_dn=entry.dn)
    db.session.add(user)
    audit.record("directory_user_created", username, {
        "dn": entry.dn, "role": role, "auto_approve": auto_approve,
        "groups": [g for g in entry.groups if g in roles or g in approvers]})
    try:
        db.session.commit()
    except IntegrityError:  # the same person's first login twice at once: the other one won
        db.session.rollback()
        raise DirectoryLoginRefused("Your account is being created by another login; try again.") from None
    if auto_approve:
        _approve(user)
    return user


def _approve(user: User) -> None:
    """Approve through the single writer of approvals; without room for a workspace, approve without one."""
    try:
        workspaces.approve_user(user, user, workspaces.Plan())
    except workspaces.WorkspaceError as exc:
        workspaces.approve_user(user, user, None)
        audit.record("workspace_not_queued", user.username, {"why": str(exc)}, level="warning")
        db.session.commit()
