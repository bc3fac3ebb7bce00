"""The navigation: top links and grouped areas as data, filtered by the permission table."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import current_app, has_app_context

from app.permissions import ALL_PERMISSIONS, can


@dataclass(frozen=True)
class NavLink:
    """One area: its label, its endpoint and the permission it needs (None: any approved user)."""

    label: str
    endpoint: str
    permission: str | None = None


@dataclass(frozen=True)
class NavGroup:
    """Areas shown together under one heading (a dropdown in the navbar, a section on /menu)."""

    key: str
    label: str
    links: tuple[NavLink, ...]


TOP_LINKS: tuple[NavLink, ...] = (
    NavLink("My workspace", "workspaces.home"),
    NavLink("Dashboard", "admin.dashboard", "view_dashboard"),
)

# The order here is the order in the navbar. A new area joins a group; a new group (such as
# "Logs") is one more entry, and the navbar still fits one line at 1024 px with it.
GROUPS: tuple[NavGroup, ...] = (
    NavGroup("people", "People", (
        NavLink("Approvals", "admin.approvals", "manage_users"),
        NavLink("Users", "admin.users", "manage_users"),
        NavLink("Audit", "admin.audit_log", "view_audit"),
        NavLink("Security", "security_admin.overview", "manage_security"),
    )),
    NavGroup("infrastructure", "Infrastructure", (
        NavLink("Servers", "servers.index", "view_servers"),
        NavLink("Workspaces", "workspace_admin.index", "manage_users"),
        NavLink("Images", "images.index", "view_images"),
        NavLink("Tasks", "tasks.index", "view_tasks"),
    )),
    NavGroup("logs", "Logs", (
        NavLink("Explorer", "logs.index", "view_logs"),
        NavLink("Live", "logs.live", "view_logs"),
        NavLink("Alerts", "logs.alerts_index", "view_logs"),
        NavLink("Rules", "logs.rules", "manage_rules"),
        NavLink("Traffic", "traffic.index", "view_traffic"),
        NavLink("Connections", "connections.index", "view_traffic"),
    )),
)

for _link in TOP_LINKS + tuple(link for group in GROUPS for link in group.links):
    if _link.permission is not None and _link.permission not in ALL_PERMISSIONS:
        raise KeyError(f"unknown permission {_link.permission!r} for {_link.endpoint}")


def _allowed(user: Any, link: NavLink) -> bool:
    if not getattr(user, "is_authenticated", False) or not user.is_approved:
        return False
    if has_app_context() and link.endpoint not in current_app.view_functions:
        return False  # an area not built into this app (yet) is not offered
    return link.permission is None or can(user, link.permission)


def top_links(user: Any) -> list[NavLink]:
    """The ungrouped links `user` may follow."""
    return [link for link in TOP_LINKS if _allowed(user, link)]


def nav_groups(user: Any) -> list[NavGroup]:
    """The groups `user` sees, each with only the links their role allows; empty groups left out."""
    groups = []
    for group in GROUPS:
        links = tuple(link for link in group.links if _allowed(user, link))
        if links:
            groups.append(NavGroup(group.key, group.label, links))
    return groups
