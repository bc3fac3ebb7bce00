"""Jinja helpers shared by every template."""

from __future__ import annotations

from typing import Any

from flask import Flask, request, url_for


def page_url(number: int) -> str:
    """The current page's URL with the same filters and another page number."""
    args = request.args.to_dict()
    args["page"] = str(number)
    return url_for(request.endpoint or "main.index", **(request.view_args or {}), **args)


def init_templating(app: Flask) -> None:
    """Expose the helpers and the permission check to templates."""
    from app.navigation import nav_groups, top_links
    from app.permissions import can

    app.jinja_env.globals.update(can=can, page_url=page_url)
    app.jinja_env.globals.update(nav_groups=nav_groups, top_links=top_links)
    app.jinja_env.globals.update(open_alerts_badge=open_alerts_badge)


def open_alerts_badge(user: Any) -> int:
    """The open-alert count shown in an admin's navbar (one count query; 0 and no query for others)."""
    from app.logs.query import open_alert_count
    from app.permissions import can

    if not getattr(user, "is_authenticated", False) or not can(user, "manage_rules"):
        return 0
    return open_alert_count(user)
