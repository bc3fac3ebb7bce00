"""The rule engine: matching, thresholds across a window and across batches, alerts, the feeds."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.logs.defaults import DEFAULT_RULES, seed_rules
from app.logs.evaluate import evaluate_pending
from app.logs.rules import REGEX_MAX, RuleError, compile_regex, compile_rule, regex_problem
from app.logs.store import add_entries
from app.models import Alert, AlertEntry, AlertRule, LogCursor, LogEntry, Task
from app.services import audit, task_queue
from app.timeutil import utcnow
from tests.support import build_app


def add_rule(**values):
    """Insert and commit a rule; returns its id."""
    rule = AlertRule(name=values.pop("name", f"rule {time.monotonic_ns()}"), **values)
    db.session.add(rule)
    db.session.commit()
    return rule.id


def add(*entries):
    """Insert entries and commit."""
    add_entries(entries)
    db.session.commit()


def run(app, limit=1000):
    """Evaluate everything pending (no settle delay in tests).

    The caller's transaction ends first: on MariaDB its snapshot would hide what the worker wrote.
    """
    db.session.commit()
    return evaluate_pending(app, limit, settle_seconds=0)


def alerts():
    """Every alert, oldest first."""
    return db.session.scalars(select(Alert).order_by(Alert.id)).all()


# -- matching ----------------------------------------------------------------------------------


def test_conditions_all_must_hold():
    rule = compile_rule(AlertRule(id=1, name="r", source="agent", category="container.die", level="warning",
                                  field_equals={"exit_code": 137}, message_regex=r"killed\b",
                                  risk_score=10, severity="low"))
    entry = {"source": "agent", "category": "container.die", "level": "error",
             "fields": {"exit_code": 137}, "message": "was killed now"}
    assert rule.matches(entry)
    for key, value in (("source", "audit"), ("category", "container.oom"), ("level", "info"),
                       ("fields", {"exit_code": 0}), ("fields", {}), ("message", "killedx")):
        assert not rule.matches({**entry, key: value}), key


def test_catastrophic_regex_on_long_input_is_fast():
    rule = compile_rule(AlertRule(id=1, name="r", message_regex="(a+)+$", risk_score=1, severity="low"))
    message = "a" * 200_000 + "!"
    started = time.perf_counter()
    for _ in range(20):
        assert not rule.matches({"message": message})
    assert time.perf_counter() - started < 1.0


def test_regex_refused_when_invalid_or_too_long():
    assert "not valid" in regex_problem("(unclosed")
    assert "not valid" in regex_problem(r"(a)\1")  # backreferences need backtracking: refused
    assert str(REGEX_MAX) in regex_problem("a" * (REGEX_MAX + 1))
    assert regex_problem(r"^login failed for \w+$") is None
    with pytest.raises(RuleError):
        compile_regex("[z-a]")


# -- thresholds and alerts ---------------------------------------------------------------------


def failed_login(ip, ts, user="bob"):
    return {"source": "audit", "category": "audit.login_failed", "level": "warning", "ts": ts,
            "username": user, "fields": {"ip": ip}, "message": "login_failed"}


def test_threshold_within_window_per_group(app):
    with app.app_context():
        rule_id = add_rule(category="audit.login_failed", threshold_count=3, window_seconds=60,
                           group_by="ip", risk_score=80, severity="high")
        now = utcnow().replace(microsecond=0)
        # 10.0.0.1: three within 60 s -> fires on the third; 10.0.0.2: three spread over 3 minutes -> never
        add(failed_login("10.0.0.1", now), failed_login("10.0.0.1", now + timedelta(seconds=20)),
            failed_login("10.0.0.2", now), failed_login("10.0.0.2", now + timedelta(seconds=90)),
            failed_login("10.0.0.1", now + timedelta(seconds=40)),
            failed_login("10.0.0.2", now + timedelta(seconds=180)))
        assert run(app) == 6
        rows = db.session.scalars(select(LogEntry).order_by(LogEntry.id)).all()
        assert [row.risk_score for row in rows] == [0, 0, 0, 0, 80, 0]
        assert rows[4].rule_ids == [rule_id]
        [alert] = alerts()
        assert (alert.group_value, alert.count, alert.state) == ("10.0.0.1", 1, "open")
        assert alert.severity == "high"
        linked = set(db.session.scalars(select(AlertEntry.entry_id).where(AlertEntry.alert_id == alert.id)))
        assert linked == {rows[0].id, rows[1].id, rows[4].id}


@pytest.mark.parametrize("restart", [False, True], ids=["kept-counters", "look-back"])
def test_threshold_counts_across_batches(app, restart):
    with app.app_context():
        add_rule(category="container.die", threshold_count=3, window_seconds=600, group_by="workspace",
                 risk_score=60, severity="high")
        now = utcnow().replace(microsecond=0)
        for offset in (0, 100, 200):
            if restart:  # as after a worker restart: nothing kept in memory, the window is read back
                app.extensions.pop("slipway_rule_counters", None)
            assert alerts() == []
            add({"source": "agent", "category": "container.die", "workspace_id": 7,
                 "ts": now + timedelta(seconds=offset)})
            assert run(app) == 1
        [alert] = alerts()
        assert alert.group_value == "7"
        assert db.session.scalar(select(func.count()).select_from(AlertEntry)) == 3


def test_counters_rebuilt_when_another_worker_ran_a_batch(app, database_url, tmp_path):
    other = build_app(database_url, tmp_path / "other")
    with app.app_context():
        add_rule(category="audit.login_failed", threshold_count=4, window_seconds=300, group_by="ip")
        now = utcnow().replace(microsecond=0)
        add(failed_login("10.1.1.1", now), failed_login("10.1.1.1", now))
        run(app)
        add(failed_login("10.1.1.1", now))
        db.session.commit()
    evaluate_pending(other, settle_seconds=0)  # this worker's counters now miss the third
    with app.app_context():
        add(failed_login("10.1.1.1", now))
        run(app)
        [alert] = alerts()
        assert alert.count == 1


def test_batches_of_two_give_the_same_result_as_one_batch(app):
    with app.app_context():
        add_rule(category="audit.login_failed", threshold_count=4, window_seconds=300, group_by="ip",
                 risk_score=80)
        now = utcnow().replace(microsecond=0)
        add(*[failed_login("10.9.9.9", now + timedelta(seconds=i)) for i in range(7)])
        assert run(app, limit=2) == 7
        assert db.session.scalar(select(LogCursor.value).where(LogCursor.name == "rules")) == \
            db.session.scalar(select(func.max(LogEntry.id)))
        scores = db.session.scalars(select(LogEntry.risk_score).order_by(LogEntry.id)).all()
        assert scores == [0, 0, 0, 80, 80, 80, 80]
        [alert] = alerts()
        assert alert.count == 4


def test_repeats_fold_into_one_alert_and_resolve_reopens(app):
    with app.app_context():
        add_rule(name="oom", category="container.oom", group_by="workspace", risk_score=70, severity="high")
        start = utcnow().replace(microsecond=0)
        add({"source": "agent", "category": "container.oom", "workspace_id": 3, "ts": start,
             "message": "workspace 3 OOM"})
        run(app)
        add({"source": "agent", "category": "container.oom", "workspace_id": 3,
             "ts": start + timedelta(seconds=30)},
            {"source": "agent", "category": "container.oom", "workspace_id": 4, "ts": start})
        run(app)
        first, other = alerts()
        assert (first.group_value, first.count, first.message) == ("3", 2, "workspace 3 OOM")
        assert first.last_seen == start + timedelta(seconds=30)
        assert (other.group_value, other.count) == ("4", 1)
        first.state, first.open_key, first.resolved_by = "resolved", None, "admin"
        db.session.commit()
        add({"source": "agent", "category": "container.oom", "workspace_id": 3,
             "ts": start + timedelta(seconds=60)})
        run(app)
        rows = alerts()
        assert len(rows) == 3
        assert (rows[0].state, rows[0].count) == ("resolved", 2)
        assert (rows[2].state, rows[2].group_value, rows[2].count) == ("open", "3", 1)


def test_links_are_capped_per_alert(app, monkeypatch):
    monkeypatch.setattr("app.logs.evaluate.LINKS_PER_ALERT", 5)
    with app.app_context():
        add_rule(category="x.y", risk_score=5)
        add(*[{"source": "s", "category": "x.y"} for _ in range(12)])
        run(app, limit=4)
        [alert] = alerts()
        assert alert.count == 12
        assert db.session.scalar(select(func.count()).select_from(AlertEntry)) == 5


def test_highest_score_wins_and_unmatched_entries_stay_zero(app):
    with app.app_context():
        low = add_rule(category="host.disk", risk_score=20)
        high = add_rule(category="host.disk", level="error", risk_score=90)
        add({"source": "agent", "category": "host.disk", "level": "warning"},
            {"source": "agent", "category": "host.disk", "level": "critical"},
            {"source": "agent", "category": "host.memory", "level": "critical"})
        run(app)
        rows = db.session.execute(select(LogEntry.risk_score, LogEntry.rule_ids).order_by(LogEntry.id)).all()
        assert [tuple(row) for row in rows] == [(20, [low]), (90, sorted([low, high])), (0, [])]


def test_broken_rule_is_skipped_not_fatal(app):
    with app.app_context():
        add_rule(category="a.b", message_regex="(bad", risk_score=10)
        good = add_rule(category="a.b", risk_score=30)
        add({"source": "s", "category": "a.b", "message": "hello"})
        assert run(app) == 1
        assert db.session.scalar(select(LogEntry.rule_ids)) == [good]


def test_unsettled_entries_wait(app):
    with app.app_context():
        add({"source": "s", "category": "a"})
        assert evaluate_pending(app, settle_seconds=60) == 0
        assert run(app) == 1


# -- defaults and feeds ------------------------------------------------------------------------


def test_default_rules_seed_once_and_keep_edits(app, runner):
    with app.app_context():
        assert seed_rules() == len(DEFAULT_RULES)
        rule = db.session.scalar(select(AlertRule).where(AlertRule.name == "Workspace OOM-killed"))
        rule.enabled = False
        db.session.commit()
        assert seed_rules() == 0
        assert db.session.scalar(select(AlertRule.enabled).where(AlertRule.id == rule.id)) is False
        assert all(row.builtin for row in db.session.scalars(select(AlertRule)))
    result = runner.invoke(args=["seed-rules"])
    assert result.exit_code == 0 and "already present" in result.output


def test_failed_logins_through_audit_raise_the_default_burst_alert(app):
    with app.app_context():
        seed_rules()
        with app.test_request_context("/login", environ_base={"REMOTE_ADDR": "203.0.113.9"}):
            for _ in range(10):
                audit.record("login_failed", None, {"login": "root"}, level="warning")
            db.session.commit()
        entry = db.session.scalar(select(LogEntry).order_by(LogEntry.id))
        assert (entry.source, entry.category, entry.level) == ("audit", "audit.login_failed", "warning")
        assert entry.fields == {"login": "root", "ip": "203.0.113.9"}
        run(app)
        [alert] = alerts()
        assert (alert.rule_name, alert.group_value) == ("Failed-login burst from one address", "203.0.113.9")


def test_audit_entry_rolls_back_with_its_transaction(app):
    with app.app_context():
        audit.record("something", "alice")
        db.session.rollback()
        assert db.session.scalar(select(func.count()).select_from(LogEntry)) == 0


def test_finished_tasks_feed_entries_and_build_failures_alert(app):
    from app.worker.runner import Runner

    with app.app_context():
        seed_rules()
        runner = Runner(app, worker_id="w1", concurrency=1)
        for _ in range(3):
            task = task_queue.enqueue("build", target="img:1", requested_by="carol")
            db.session.commit()
            db.session.execute(Task.__table__.update().where(Task.id == task.id)
                               .values(state="running", claimed_by="w1"))
            db.session.commit()
            runner._finish(task.id, "failed", "Dockerfile step 3 failed")
        rows = db.session.scalars(select(LogEntry).where(LogEntry.source == "task")).all()
        assert len(rows) == 3
        assert rows[0].category == "task.failed" and rows[0].level == "error"
        assert rows[0].fields["kind"] == "build" and rows[0].username == "carol"
        run(app)
        [alert] = alerts()
        assert (alert.rule_name, alert.group_value) == ("Build failures in a row", "carol")


def test_two_workers_never_evaluate_an_entry_twice(app):
    from sqlalchemy.exc import OperationalError

    with app.app_context():
        add_rule(category="x.two", risk_score=5)
        add(*[{"source": "s", "category": "x.two"} for _ in range(240)])
        last = db.session.scalar(select(func.max(LogEntry.id)))
    errors: list[Exception] = []

    def worker():
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                evaluate_pending(app, 7, settle_seconds=0, max_batches=1)
            except OperationalError:  # SQLite: the other worker holds the write lock; try again
                time.sleep(0.01)
            except Exception as exc:  # noqa: BLE001 - reported by the assertion below
                errors.append(exc)
                return
            with app.app_context():
                if db.session.scalar(select(LogCursor.value).where(LogCursor.name == "rules")) == last:
                    return

    import threading

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(90)
    assert errors == []
    with app.app_context():
        [alert] = alerts()
        assert alert.count == 240
