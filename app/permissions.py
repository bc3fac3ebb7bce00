"""The permission matrix (one table) and the decorator every protected view uses."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import abort
from flask_login import current_user

F = TypeVar("F", bound=Callable[..., Any])

_QVP = frozenset({"view_dashboard", "view_servers", "view_images", "build_images", "push_images",
                  "view_tasks", "view_logs"})
_ADMIN_ONLY = frozenset({"manage_users", "delete_server", "delete_image", "manage_servers", "view_audit",
                         "manage_registries", "manage_images", "manage_security", "manage_rules",
                         "manage_build_templates", "ship_logs", "view_traffic"})

PERMISSIONS: dict[str, frozenset[str]] = {
    "admin": _QVP | _ADMIN_ONLY,
    "qvp": _QVP,
    # Regulars see only their own workspace's events, on their workspace page (not the logs area).
    "regular": frozenset(),
}
ALL_PERMISSIONS: frozenset[str] = frozenset().union(*PERMISSIONS.values())


def can(user: Any, permission: str) -> bool:
    """True when `user` is an approved account whose role grants `permission`."""
    if permission not in ALL_PERMISSIONS:
        raise KeyError(f"unknown permission {permission!r}")
    if not getattr(user, "is_authenticated", False) or not user.is_approved:
        return False
    return permission in PERMISSIONS.get(user.role, frozenset())


def permission_required(permission: str) -> Callable[[F], F]:
    """Guard a view: anonymous users go to login (401 for JSON), others without it get 403."""
    if permission not in ALL_PERMISSIONS:
        raise KeyError(f"unknown permission {permission!r}")

    def decorator(view: F) -> F:
        @wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            if not current_user.is_authenticated:
                abort(401)
            if not can(current_user, permission):
                abort(403)
            return view(*args, **kwargs)

        wrapped.required_permission = permission  # type: ignore[attr-defined]
        return wrapped  # type: ignore[return-value]

    return decorator
