"""Moving an alert along open -> acknowledged -> resolved, with who, when, a note and an audit row.

Each step is one conditional UPDATE, so two people pressing the same button at once move the alert
once and the second is told where it already is. The caller commits.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import update

from app.extensions import db
from app.models import Alert
from app.services import audit
from app.timeutil import utcnow

NOTE_MAX = 1000


class AlertStateError(RuntimeError):
    """The alert is no longer in a state that allows this step."""


def _noted(existing: str, actor: str, step: str, note: str, now: datetime) -> str:
    line = f"{now:%Y-%m-%d %H:%M} {actor} {step}" + (f": {note}" if note else "")
    return f"{existing}\n{line}" if existing else line


def _move(alert: Alert, actor: str, note: str, *, step: str, allowed: tuple[str, ...],
          values: dict[str, object]) -> None:
    note = note.strip()[:NOTE_MAX]
    now = utcnow()
    result = db.session.execute(
        update(Alert).where(Alert.id == alert.id, Alert.state.in_(allowed))
        .values(note=_noted(alert.note, actor, step, note, now), **values)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        db.session.refresh(alert)
        raise AlertStateError(f"Alert #{alert.id} is already {alert.state}.")
    db.session.refresh(alert)
    audit.record(f"alert_{step}", actor, {"alert": alert.id, "rule": alert.rule_name,
                                          "group": alert.group_value, "note": note})


def acknowledge(alert: Alert, actor: str, note: str = "") -> None:
    """Mark an open alert as being looked at by `actor`."""
    _move(alert, actor, note, step="acknowledged", allowed=("open",),
          values={"state": "acknowledged", "acknowledged_by": actor, "acknowledged_at": utcnow()})


def resolve(alert: Alert, actor: str, note: str = "") -> None:
    """Close an open or acknowledged alert; its dedup key is freed so a new match opens a new alert."""
    _move(alert, actor, note, step="resolved", allowed=("open", "acknowledged"),
          values={"state": "resolved", "resolved_by": actor, "resolved_at": utcnow(), "open_key": None})
