"""Plain builders for test rows. Call inside an app context; each inserts and commits one row."""

from __future__ import annotations

import itertools
import secrets
from datetime import timedelta
from typing import Any

from app.extensions import db
from app.models import (
    Alert,
    AlertRule,
    BannedIP,
    BuildTemplate,
    LogEntry,
    Registry,
    Server,
    Task,
    Upload,
    User,
    UserSession,
    Workspace,
    WorkspaceImage,
)
from app.models.security import ApiKey, sha256_hex
from app.security.crypto import encrypt_secret
from app.security.passwords import hash_password
from app.timeutil import utcnow

PASSWORD = "correct horse battery"
TOKEN = "server-token-" + "x" * 30
_counter = itertools.count(1)


def make_user(
    username: str | None = None,
    *,
    role: str = "regular",
    status: str = "approved",
    password: str = PASSWORD,
    email: str | None = None,
) -> User:
    """Insert and commit a user; the defaults give an approved regular account."""
    username = username or f"user{next(_counter)}"
    user = User(
        username=username,
        email=email or f"{username}@example.com",
        password_hash=hash_password(password),
        role=role,
        status=status,
    )
    db.session.add(user)
    db.session.commit()
    return user


def make_server(
    name: str = "local",
    agent_url: str = "http://127.0.0.1:9",
    *,
    token: str = TOKEN,
    status: str = "online",
    publish_host: str = "127.0.0.1",
    **fields: Any,
) -> Server:
    """Insert and commit a server row (its agent token sealed as the app stores it)."""
    values: dict[str, Any] = {"cpu_cores": 8, "memory_total": 32 * 1024**3, **fields}
    server = Server(name=name, agent_url=agent_url, token_encrypted=encrypt_secret(token, "server.token"),
                    publish_host=publish_host, status=status, **values)
    db.session.add(server)
    db.session.commit()
    return server


def make_workspace(user: User, server: Server, *, status: str = "running",
                   ports: dict[str, int] | None = None, container_id: str | None = None) -> Workspace:
    """Insert and commit a workspace row for `user` on `server`."""
    ws = Workspace(user_id=user.id, username=user.username, server_id=server.id,
                   container_name=f"slipway-ws-{user.username}", container_id=container_id,
                   image="slipway/test-workspace:latest", cpu=1.0, memory_mb=512,
                   ports=ports if ports is not None else {"vscode": 40001, "jupyter": 40002},
                   status=status, error="")
    db.session.add(ws)
    db.session.commit()
    return ws


def make_task(requested_by: str | None, *, kind: str = "refresh_server", state: str = "queued",
              target: str = "test", payload: dict[str, Any] | None = None) -> Task:
    """Insert and commit a task row asked for by the user named `requested_by`."""
    task = Task(kind=kind, target=target, requested_by=requested_by, payload=payload or {}, state=state)
    db.session.add(task)
    db.session.commit()
    return task


def make_api_key(user: User, *, scope: str = "read", name: str = "test key") -> tuple[ApiKey, str]:
    """Insert and commit an API key for `user`; returns the row and the key's value."""
    value = "slw_" + secrets.token_urlsafe(32)
    key = ApiKey(user_id=user.id, name=name, prefix=value[:12], key_hash=sha256_hex(value), scope=scope)
    db.session.add(key)
    db.session.commit()
    return key, value


def make_session(user: User, *, hours: int = 1) -> UserSession:
    """Insert and commit a live login session for `user` (not the test client's own)."""
    row = UserSession(user_id=user.id, session_token=secrets.token_hex(32), ip_address="192.0.2.7",
                      user_agent="builder", expires_at=utcnow() + timedelta(hours=hours))
    db.session.add(row)
    db.session.commit()
    return row


def make_registry(name: str = "local", host: str = "127.0.0.1:5000") -> Registry:
    """Insert and commit a registry without credentials."""
    registry = Registry(name=name, host=host)
    db.session.add(registry)
    db.session.commit()
    return registry


def make_upload(uploaded_by: str, *, original_name: str = "rootfs.tar") -> Upload:
    """Insert and commit an upload row (no file on disk behind it)."""
    upload = Upload(stored_name=secrets.token_hex(16), original_name=original_name, size=10240,
                    sha256="0" * 64, compression="none", uploaded_by=uploaded_by)
    db.session.add(upload)
    db.session.commit()
    return upload


def make_workspace_image(ref: str = "slipway/test-workspace:latest") -> WorkspaceImage:
    """Insert and commit an image offered for workspaces."""
    image = WorkspaceImage(ref=ref, description="test image", default_cpu=1.0, default_memory_mb=512)
    db.session.add(image)
    db.session.commit()
    return image


def make_build_template(name: str = "base", dockerfile: str = "FROM slipway/test-workspace:latest\n"
                        ) -> BuildTemplate:
    """A saved Dockerfile template."""
    row = BuildTemplate(name=name, dockerfile=dockerfile)
    db.session.add(row)
    db.session.commit()
    return row


def make_alert_rule(name: str = "matrix rule", *, category: str = "test.event") -> AlertRule:
    """An enabled, non-builtin alert rule."""
    row = AlertRule(name=name, category=category, risk_score=40, severity="medium")
    db.session.add(row)
    db.session.commit()
    return row


def make_log_entry(username: str | None = None, *, category: str = "test.event") -> LogEntry:
    """One log entry (about `username`'s doings when given)."""
    row = LogEntry(source="test", category=category, level="info", username=username, message="an event")
    db.session.add(row)
    db.session.commit()
    return row


def make_alert(username: str | None = None, *, severity: str = "medium") -> Alert:
    """An open alert (about `username` when given)."""
    row = Alert(rule_name="matrix rule", group_value=username or "", open_key=f"0:{username}",
                severity=severity, username=username, message="something happened")
    db.session.add(row)
    db.session.commit()
    return row


def make_ban(ip_address: str = "203.0.113.9", *, minutes: int = 60) -> BannedIP:
    """Insert and commit a ban of `ip_address`."""
    ban = BannedIP(ip_address=ip_address, reason="test", created_by="builder",
                   expires_at=utcnow() + timedelta(minutes=minutes))
    db.session.add(ban)
    db.session.commit()
    return ban


def add_form(**overrides: str) -> dict[str, str]:
    """Valid add-server form data, with overrides."""
    data = {"name": "alpha", "agent_url": "http://127.0.0.1:9100", "token": TOKEN, "publish_host": ""}
    data.update(overrides)
    return data
