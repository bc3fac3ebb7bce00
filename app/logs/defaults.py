"""The rules an admin wants on day one, seeded by name (an edited or disabled rule is left alone).

CATEGORIES: the `category` names each producer writes into `log_entries`, so rules can match them.

- agent events (source `agent`): `container.start`, `container.die` (fields: exit_code),
  `container.oom`, `container.kill`, `container.restart`, `container.health_status`;
  `image.<action>` (build, push, pull, delete, tag, untag, import, load); host warnings
  `host.disk`, `host.memory` (above the agent's threshold, 90 % by default) and
  `host.disk_recovered`, `host.memory_recovered`; `agent.gap` when events were lost (agent
  restart, or the poller's cursor fell out of the agent's buffer).
- audit rows (source `audit`): `audit.<action_type>`, e.g. `audit.login_failed`,
  `audit.workspace_admin_open`, `audit.nginx_reload_failed`; fields are the row's details plus
  `ip` (the client address) when the row was written in a request.
- task outcomes (source `task`): `task.<state>` (`task.succeeded`, `task.failed`,
  `task.cancelled`) with fields `kind`, `target`, `task_id`.
- the poller's transition of a server to offline (source `poller`): `server.offline`.
"""

from __future__ import annotations

from typing import Any

import click
from flask.cli import with_appcontext
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app.extensions import db
from app.models import AlertRule

CATEGORIES: dict[str, tuple[str, ...]] = {
    "agent": ("container.start", "container.die", "container.oom", "container.kill", "container.restart",
              "container.health_status", "image.build", "image.push", "image.pull", "image.delete",
              "image.tag", "image.untag", "image.import", "image.load", "host.disk", "host.memory",
              "host.disk_recovered", "host.memory_recovered", "agent.gap"),
    "audit": ("audit.<action_type>",),
    "task": ("task.succeeded", "task.failed", "task.cancelled"),
    "poller": ("server.offline",),
}

DEFAULT_RULES: tuple[dict[str, Any], ...] = (
    {"name": "Workspace OOM-killed", "category": "container.oom", "risk_score": 70, "severity": "high",
     "description": "A workspace container was killed for exceeding its memory limit."},
    {"name": "Container restart loop", "category": "container.die", "threshold_count": 3,
     "window_seconds": 600, "group_by": "workspace", "risk_score": 60, "severity": "high",
     "description": "A workspace container stopped 3 or more times within 10 minutes."},
    {"name": "Failed-login burst from one address", "category": "audit.login_failed", "threshold_count": 10,
     "window_seconds": 300, "group_by": "ip", "risk_score": 80, "severity": "high",
     "description": "10 or more failed logins from one address within 5 minutes."},
    {"name": "Build failures in a row", "category": "task.failed", "field_equals": {"kind": "build"},
     "threshold_count": 3, "window_seconds": 3600, "group_by": "username", "risk_score": 40,
     "severity": "medium", "description": "3 or more failed image builds by one user within an hour."},
    {"name": "Agent offline", "category": "server.offline", "group_by": "server", "risk_score": 70,
     "severity": "critical", "description": "The poller marked a server offline."},
    {"name": "Host disk above 90 %", "category": "host.disk", "group_by": "server", "risk_score": 60,
     "severity": "high", "description": "An agent reported its disk more than 90 % full."},
    {"name": "Admin opened another user's workspace", "category": "audit.workspace_admin_opened",
     "group_by": "username", "risk_score": 30, "severity": "low",
     "description": "An admin opened a workspace that belongs to someone else."},
    {"name": "Nginx route generation failed", "category": "audit.nginx_reload_failed", "risk_score": 70,
     "severity": "high", "description": "Generating or reloading the edge's nginx routes failed."},
)


def seed_rules() -> int:
    """Add each default rule missing by name, as builtin, and commit; returns how many were added."""
    have = set(db.session.scalars(select(AlertRule.name)))
    added = 0
    for spec in DEFAULT_RULES:
        if spec["name"] in have:
            continue
        try:
            with db.session.begin_nested():
                db.session.add(AlertRule(builtin=True, enabled=True, **spec))
            added += 1
        except IntegrityError:  # another worker seeded it at the same moment
            continue
    db.session.commit()
    return added


@click.command("seed-rules")
@with_appcontext
def seed_rules_command() -> None:
    """Add the default alert rules that are missing (by name)."""
    added = seed_rules()
    click.echo(f"added {added} default alert rules" if added else "default alert rules already present")
