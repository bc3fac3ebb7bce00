"""The rule engine's worker: score new entries and fold matches into alerts, batch by batch.

Entries are read in id order after the `rules` cursor (`log_cursors`). Each batch is one
transaction: the cursor row is locked first (an UPDATE, then SELECT ... FOR UPDATE), so two
workers never evaluate the same entries; scores, alerts, alert links, webhook tasks and the new
cursor commit together, so a crash re-evaluates the batch instead of losing or doubling it.

An entry is read only once it is `settle_seconds` old: an entry whose id was handed out by a
transaction that commits later than a higher id's would otherwise fall behind the cursor.
"""

from __future__ import annotations

import logging
import random
import threading
from collections import defaultdict
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from flask import Flask, current_app
from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from app.extensions import db
from app.logs.rules import ENTRY_COLUMNS, CompiledRule, WindowCounter, enabled_rules, lookback
from app.models import Alert, AlertEntry, LogCursor, LogEntry
from app.timeutil import utcnow

log = logging.getLogger(__name__)
CURSOR = "rules"
BATCH = 1000
LINKS_PER_ALERT = 200
SETTLE_SECONDS = 2.0
IDLE_SECONDS = 1.0


@dataclass
class Firing:
    """One rule and group's matches in a batch, to be folded into its alert."""

    rule: CompiledRule
    group: str
    count: int = 0
    first_ts: datetime | None = None
    last: dict[str, Any] = field(default_factory=dict)
    evidence: dict[int, None] = field(default_factory=dict)  # ordered set of entry ids

    def add(self, entry: dict[str, Any], evidence: list[int]) -> None:
        """Record one firing entry and the ids of the entries that made it fire (newest first)."""
        self.count += 1
        self.first_ts = min(self.first_ts or entry["ts"], entry["ts"])
        self.last = entry
        for entry_id in reversed(evidence):
            self.evidence.setdefault(entry_id, None)


class Counters:
    """Threshold counters kept between batches by one process, valid while it holds the cursor.

    When the cursor is where this process left it, the counters already hold every earlier
    match in their windows; otherwise (start, another worker ran a batch, a rule was edited)
    they are rebuilt from `log_entries`.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.cursor: int | None = None
        self.by_rule: dict[int, WindowCounter] = {}

    def get(self, rule: CompiledRule) -> WindowCounter | None:
        """The kept counter of `rule`, unless the rule changed since."""
        counter = self.by_rule.get(rule.id)
        if counter is None or counter.rule.version != rule.version \
                or (counter.rule.window, counter.rule.threshold) != (rule.window, rule.threshold):
            return None
        counter.rule = rule
        return counter


def lock_cursor() -> int:
    """Lock the `rules` cursor row for this transaction (creating it once); returns its value.

    The lock is taken by a write before anything is read: on MariaDB a transaction's snapshot
    starts at its first plain read, so reading first would hide what the previous holder of the
    lock committed. On SQLite the write takes the database's write lock.
    """
    lock = update(LogCursor).where(LogCursor.name == CURSOR).values(updated_at=utcnow())
    if not db.session.execute(lock).rowcount:
        try:
            with db.session.begin_nested():
                db.session.add(LogCursor(name=CURSOR, value=0))
        except IntegrityError:  # another worker created it first
            pass
        db.session.execute(lock)
    value = db.session.scalar(select(LogCursor.value).where(LogCursor.name == CURSOR).with_for_update())
    return int(value or 0)


def pending_entries(after: int, limit: int, settle_seconds: float) -> list[dict[str, Any]]:
    """Up to `limit` entries after id `after`, cut before the first one younger than the settle time."""
    rows = db.session.execute(
        select(*ENTRY_COLUMNS, LogEntry.received_at).where(LogEntry.id > after).order_by(LogEntry.id)
        .limit(limit)
    ).mappings().all()
    cutoff = utcnow() - timedelta(seconds=settle_seconds)
    batch: list[dict[str, Any]] = []
    for row in rows:
        if row["received_at"] > cutoff:
            break
        batch.append(dict(row))
    return batch


def match_batch(rules: list[CompiledRule], batch: list[dict[str, Any]],
                counters: Counters | None = None) -> dict[tuple[int, str], Firing]:
    """Which rules fire for which entries; threshold rules look back before the batch when needed."""
    counters = counters or Counters()
    by_category: dict[str | None, list[CompiledRule]] = defaultdict(list)
    for rule in rules:
        by_category[rule.category].append(rule)
    matched: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for entry in batch:
        for rule in by_category.get(entry["category"], []) + by_category.get(None, []):
            if rule.matches(entry):
                matched[rule.id].append(entry)
    firings: dict[tuple[int, str], Firing] = {}
    live: dict[int, WindowCounter] = {}
    for rule in rules:
        entries = matched.get(rule.id, [])
        counter = counters.get(rule) if rule.has_threshold else None
        if rule.has_threshold and counter is None and entries:
            counter = WindowCounter(rule, LINKS_PER_ALERT)
            start = min(entry["ts"] for entry in entries) - timedelta(seconds=rule.window)
            end = max(entry["ts"] for entry in entries)
            counter.preload(lookback(rule, start, end, before_id=batch[0]["id"]))
        if counter is not None:
            live[rule.id] = counter
        for entry in entries:
            evidence = counter.add(entry) if counter is not None else [entry["id"]]
            if evidence is None:
                continue
            group = rule.group(entry)
            firing = firings.setdefault((rule.id, group), Firing(rule, group))
            firing.add(entry, evidence)
            entry.setdefault("_rules", []).append(rule)
    newest = min(max(entry["ts"] for entry in batch), utcnow())  # a future ts must not prune everything
    for counter in live.values():
        counter.prune(newest)
    counters.by_rule = live
    return firings


def score_entries(batch: list[dict[str, Any]]) -> int:
    """Store risk_score (the highest of the rules that fired) and rule_ids on fired entries."""
    rows = []
    for entry in batch:
        fired = entry.get("_rules")
        if fired:
            rows.append({"id": entry["id"], "risk_score": max(rule.risk_score for rule in fired),
                         "rule_ids": sorted({rule.id for rule in fired})})
    if rows:
        db.session.execute(update(LogEntry), rows)
    return len(rows)


def alert_message(firing: Firing) -> str:
    """The alert's one-line summary."""
    rule = firing.rule
    if rule.has_threshold:
        where = f" ({rule.group_by} {firing.group})" if rule.group_by else ""
        return f"{rule.threshold} or more matches within {rule.window} s{where}"[:500]
    return (firing.last.get("message") or rule.description or rule.name)[:500]


def fold(firing: Firing) -> Alert | None:
    """Fold a firing into its rule and group's unresolved alert; returns the alert when it is new."""
    rule, entry = firing.rule, firing.last
    key = f"{rule.id}:{firing.group}"
    existing = db.session.execute(select(Alert.id, Alert.last_seen).where(Alert.open_key == key)).first()
    new_alert = None
    updated = 0
    if existing is not None:
        # Conditional: an alert resolved meanwhile (open_key cleared) is left alone.
        updated = db.session.execute(
            update(Alert).where(Alert.id == existing.id, Alert.open_key == key)
            .values(count=Alert.count + firing.count, last_seen=max(existing.last_seen, entry["ts"]),
                    risk_score=rule.risk_score, severity=rule.severity)
            .execution_options(synchronize_session=False)
        ).rowcount
    if not updated:
        new_alert = Alert(
            rule_id=rule.id, rule_name=rule.name, group_value=firing.group, open_key=key, state="open",
            severity=rule.severity, risk_score=rule.risk_score, count=firing.count,
            message=alert_message(firing), server_id=entry.get("server_id"), username=entry.get("username"),
            first_seen=firing.first_ts, last_seen=entry["ts"],
        )
        db.session.add(new_alert)
        db.session.flush()
    if new_alert is not None:
        link_entries(new_alert.id, list(firing.evidence), new=True)
    else:
        link_entries(existing.id, list(firing.evidence))
    return new_alert


def link_entries(alert_id: int, entry_ids: list[int], new: bool = False) -> int:
    """Link entries to the alert, up to `LINKS_PER_ALERT` in all; returns how many were added."""
    linked: set[int] = set() if new else set(db.session.scalars(
        select(AlertEntry.entry_id).where(AlertEntry.alert_id == alert_id).limit(LINKS_PER_ALERT)))
    room = LINKS_PER_ALERT - len(linked)
    fresh = [entry_id for entry_id in entry_ids if entry_id not in linked][:max(room, 0)]
    if fresh:
        db.session.execute(insert(AlertEntry), [{"alert_id": alert_id, "entry_id": entry_id}
                                                for entry_id in fresh])
    return len(fresh)


def evaluate_batch(limit: int = BATCH, settle_seconds: float = SETTLE_SECONDS,
                   counters: Counters | None = None) -> int:
    """Evaluate one batch after the cursor and commit; returns how many entries it covered."""
    from app.logs.webhook import queue_delivery
    from app.mail import notify

    counters = counters or Counters()
    after = lock_cursor()
    batch = pending_entries(after, limit, settle_seconds)
    if not batch:
        db.session.commit()
        return 0
    rules, broken = enabled_rules()
    for rule, problem in broken:
        log.warning("alert rule %r skipped: %s", rule.name, problem)
    if counters.cursor != after:  # another worker evaluated in between, or first batch: rebuild
        counters.by_rule = {}
    counters.cursor = None  # invalid until this batch commits
    firings = match_batch(rules, batch, counters)
    score_entries(batch)
    for firing in firings.values():
        alert = fold(firing)
        if alert is not None:
            queue_delivery(alert, firing.rule)
            notify.alert_opened(alert)
    db.session.execute(update(LogCursor).where(LogCursor.name == CURSOR).values(value=batch[-1]["id"]))
    db.session.commit()
    counters.cursor = batch[-1]["id"]
    return len(batch)


def counters_for(app: Flask) -> Counters:
    """This process's threshold counters for `app`."""
    return app.extensions.setdefault("slipway_rule_counters", Counters())


def evaluate_pending(app: Flask | None = None, limit: int = BATCH, *,
                     settle_seconds: float = SETTLE_SECONDS, max_batches: int = 100) -> int:
    """Evaluate batches of up to `limit` until none is left (at most `max_batches`); returns the total."""
    total = 0
    with app.app_context() if app is not None else nullcontext():
        counters = counters_for(current_app._get_current_object())  # type: ignore[attr-defined]
        with counters.lock:  # threads of one process take turns; processes wait on the cursor row
            for _ in range(max_batches):
                try:
                    done = evaluate_batch(limit, settle_seconds, counters)
                except Exception:
                    counters.cursor = None
                    db.session.rollback()
                    raise
                total += done
                if done < limit:
                    break
    return total


def evaluate_loop(app: Flask, stop: threading.Event) -> None:
    """Seed the default rules, then evaluate new entries until `stop` is set."""
    from app.logs.defaults import seed_rules

    try:
        with app.app_context():
            seed_rules()
    except Exception:  # boundary: a database outage at start must not end the loop
        log.exception("seeding the default alert rules failed")
    delay = random.uniform(0.5, 2)
    while not stop.wait(delay):
        try:
            done = evaluate_pending(app, BATCH, max_batches=20)
        except Exception:  # boundary: the loop survives a database outage or a lock timeout
            log.exception("rule evaluation round failed")
            done = 0
        delay = 0 if done >= BATCH * 20 else IDLE_SECONDS * random.uniform(0.8, 1.2)
