"""Helpers for the logs tests: entries written the one real way (add_entries), alerts, a statement counter."""

from __future__ import annotations

from typing import Any

from flask import Flask
from sqlalchemy import delete, func, select

from app.extensions import db
from app.logs.store import add_entries
from app.models import Alert, AlertEntry, LogEntry


def add_logs(app: Flask, *entries: dict[str, Any]) -> list[int]:
    """Write `entries` through add_entries and commit; returns their ids in order.

    The audit feed's own entries (logging the test's user in writes one) are removed first, so
    a page shows exactly what the test wrote; tests/test_logs_engine.py covers that feed.
    """
    with app.app_context():
        db.session.execute(delete(LogEntry).where(LogEntry.source == "audit"))
        before = db.session.scalar(select(func.max(LogEntry.id))) or 0
        add_entries(entries)
        db.session.commit()
        return list(db.session.scalars(select(LogEntry.id).where(LogEntry.id > before).order_by(LogEntry.id)))


def add_alert(app: Flask, entry_ids: list[int] = (), **values: Any) -> int:  # type: ignore[assignment]
    """An open alert (defaults: medium, rule "test rule") linked to `entry_ids`; returns its id."""
    with app.app_context():
        fields = {"rule_name": "test rule", "group_value": "g", "severity": "medium", "state": "open",
                  "message": "something happened", "risk_score": 40}
        fields.update(values)
        fields.setdefault("open_key", f"0:{fields['group_value']}:{fields['rule_name']}"
                          if fields["state"] != "resolved" else None)
        alert = Alert(**fields)
        db.session.add(alert)
        db.session.flush()
        db.session.add_all(AlertEntry(alert_id=alert.id, entry_id=entry_id) for entry_id in entry_ids)
        db.session.commit()
        return alert.id
