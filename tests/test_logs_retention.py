"""Log retention per level, deleted in small batches; the retention setting is validated."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from app.extensions import db
from app.logs import retention
from app.logs.store import add_entries
from app.models import Alert, AlertEntry, LogEntry
from app.timeutil import utcnow
from config import TestingConfig


def test_purge_keeps_each_level_for_its_days_in_batches(app, monkeypatch):
    now = utcnow()
    with app.app_context():
        rows = []
        for level, age_days in (("debug", 5), ("debug", 1), ("info", 40), ("info", 20), ("error", 100)):
            rows += [{"source": "s", "level": level, "ts": now - timedelta(days=age_days)}] * 3
        add_entries(rows)
        add_entries([{"source": "s", "level": "debug", "ts": now - timedelta(days=10)}])  # the newest row
        db.session.add(Alert(rule_name="r", open_key="1:"))
        db.session.flush()
        old_debug = db.session.scalar(select(func.min(LogEntry.id)))
        db.session.add(AlertEntry(alert_id=db.session.scalar(select(Alert.id)), entry_id=old_debug))
        db.session.commit()
        batches = []
        real = retention.delete_batch
        monkeypatch.setattr(retention, "delete_batch",
                            lambda *a, **k: batches.append(real(*a, **k)) or batches[-1])
        deleted = retention.purge(now, {"debug": 3, "info": 30, "error": 180}, batch=2)
        assert deleted == {"debug": 3, "info": 3, "error": 0}
        assert max(batches) <= 2
        left = db.session.execute(select(LogEntry.level, func.count()).group_by(LogEntry.level)).all()
        # the 10-day-old debug row is the newest by id, so it stays (SQLite would reuse its id)
        assert dict(left) == {"debug": 4, "info": 3, "error": 3}
        assert db.session.scalar(select(func.count()).select_from(AlertEntry)) == 0


def test_retention_setting_parsed_and_checked():
    settings, problems = TestingConfig.load({"SLIPWAY_LOG_RETENTION": "debug=1, error=400"})
    assert problems == []
    assert settings["LOG_RETENTION_DAYS"] == {"debug": 1, "info": 30, "warning": 90, "error": 400,
                                              "critical": 365}
    _, problems = TestingConfig.load({"SLIPWAY_LOG_RETENTION": "verbose=3,info=0,warning"})
    assert len(problems) == 3 and all("SLIPWAY_LOG_RETENTION" in problem for problem in problems)
