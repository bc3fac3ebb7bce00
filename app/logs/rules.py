"""Alert rules compiled for matching: conditions on one entry, thresholds over a window per group.

A rule's conditions all hold for an entry when `source` and `category` are equal, the entry's
level is at least the rule's `level`, every key of `field_equals` equals the entry's field (as
text), and `message_regex` is found in the message. Regular expressions run on RE2, a
linear-time engine: a pattern such as `(a+)+$` cannot backtrack, so no message can hang the
worker; patterns RE2 refuses (backreferences, lookaround) are refused when a rule is saved.

A rule with `threshold_count` N > 1 fires for an entry when, counting that entry, N entries of
the same group (`group_by`: ip, username, workspace, server or any field name) matched within
the `window_seconds` before it. The look-back reads `log_entries`, so a window spans batches.
"""

from __future__ import annotations

import functools
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import islice
from typing import Any

from sqlalchemy import select

from app.extensions import db
from app.models import ENTRY_LEVELS, AlertRule, LogEntry

REGEX_MAX = 500
LOOKBACK_ROWS = 10_000  # newest first; bounds the work of one rule in one batch
LEVEL_RANK = {name: rank for rank, name in enumerate(ENTRY_LEVELS)}
ENTRY_COLUMNS = (LogEntry.id, LogEntry.ts, LogEntry.source, LogEntry.category, LogEntry.level,
                 LogEntry.server_id, LogEntry.workspace_id, LogEntry.username, LogEntry.message,
                 LogEntry.fields)



@functools.cache
def _re2() -> tuple[Any, Any]:
    """The re2 module and its options, imported on first use: only rule pages and the worker need them."""
    import re2

    options = re2.Options()
    options.log_errors = False  # a bad pattern is reported to the admin, not printed on stderr
    options.max_mem = 8 << 20
    return re2, options


class RuleError(ValueError):
    """A rule that cannot be compiled (bad regular expression, unknown level)."""


def compile_regex(pattern: str) -> Any:
    """The RE2 program for `pattern`; raises RuleError with the reason when it is refused."""
    if len(pattern) > REGEX_MAX:
        raise RuleError(f"The regular expression is longer than {REGEX_MAX} characters.")
    re2, options = _re2()
    try:
        return re2.compile(pattern, options=options)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else "invalid"
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        raise RuleError(f"The regular expression is not valid: {reason}.") from exc


def regex_problem(pattern: str) -> str | None:
    """Why `pattern` cannot be a rule's message regex, or None."""
    try:
        compile_regex(pattern)
    except RuleError as exc:
        return str(exc)
    return None


def group_value(group_by: str | None, entry: Mapping[str, Any]) -> str:
    """The text an entry is grouped by for `group_by` ("" without grouping or value)."""
    if not group_by:
        return ""
    fields = entry.get("fields") or {}
    column = {"username": "username", "workspace": "workspace_id", "server": "server_id"}.get(group_by)
    value = entry.get(column) if column else None
    if value is None:
        value = fields.get(group_by)
    return "" if value is None else str(value)[:255]


@dataclass
class CompiledRule:
    """An `AlertRule` ready to match: plain values, the regex compiled once."""

    id: int
    name: str
    source: str | None
    category: str | None
    min_rank: int | None
    field_equals: dict[str, str]
    regex: Any
    threshold: int
    window: int
    group_by: str | None
    risk_score: int
    severity: str
    webhook_url: str | None
    description: str = ""
    levels: tuple[str, ...] = field(default=())
    version: Any = None  # changes when the rule is edited

    def matches(self, entry: Mapping[str, Any]) -> bool:
        """True when every condition of the rule holds for `entry` (a row as a mapping)."""
        if self.source is not None and entry.get("source") != self.source:
            return False
        if self.category is not None and entry.get("category") != self.category:
            return False
        if self.min_rank is not None and LEVEL_RANK.get(entry.get("level") or "", 1) < self.min_rank:
            return False
        if self.field_equals:
            fields = entry.get("fields") or {}
            for key, wanted in self.field_equals.items():
                if key not in fields or _text(fields[key]) != wanted:
                    return False
        return self.regex is None or self.regex.search(entry.get("message") or "") is not None

    def group(self, entry: Mapping[str, Any]) -> str:
        """This rule's group value for `entry`."""
        return group_value(self.group_by, entry)

    @property
    def has_threshold(self) -> bool:
        """True when the rule counts matches over a window instead of firing on each."""
        return self.threshold > 1 and self.window > 0


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def compile_rule(rule: AlertRule) -> CompiledRule:
    """Compile `rule`; raises RuleError when its regex or level is not valid."""
    if rule.level and rule.level not in LEVEL_RANK:
        raise RuleError(f"Unknown level {rule.level!r}.")
    return CompiledRule(
        id=rule.id,
        name=rule.name,
        source=rule.source or None,
        category=rule.category or None,
        min_rank=LEVEL_RANK[rule.level] if rule.level else None,
        field_equals={str(key): _text(value) for key, value in (rule.field_equals or {}).items()},
        regex=compile_regex(rule.message_regex) if rule.message_regex else None,
        threshold=max(int(rule.threshold_count or 1), 1),
        window=max(int(rule.window_seconds or 0), 0),
        group_by=rule.group_by or None,
        risk_score=int(rule.risk_score),
        severity=rule.severity,
        webhook_url=rule.webhook_url or None,
        description=rule.description or "",
        levels=tuple(ENTRY_LEVELS[LEVEL_RANK[rule.level]:]) if rule.level else (),
        version=rule.updated_at,
    )


def load_rules(rules: Iterable[AlertRule]) -> tuple[list[CompiledRule], list[tuple[AlertRule, str]]]:
    """Compile every rule; returns (compiled, [(rule, problem)]) so one broken rule stops no other."""
    compiled: list[CompiledRule] = []
    broken: list[tuple[AlertRule, str]] = []
    for rule in rules:
        try:
            compiled.append(compile_rule(rule))
        except RuleError as exc:
            broken.append((rule, str(exc)))
    return compiled, broken


def enabled_rules() -> tuple[list[CompiledRule], list[tuple[AlertRule, str]]]:
    """The enabled rules from the database, compiled."""
    return load_rules(db.session.scalars(select(AlertRule).where(AlertRule.enabled.is_(True))
                                          .order_by(AlertRule.id)))


def lookback(rule: CompiledRule, start: datetime, end: datetime, before_id: int) -> list[dict[str, Any]]:
    """Entries with id below `before_id` and ts in [start, end] that match `rule` (newest first, bounded).

    The SQL narrows by the indexed columns (category, source, level, ts); fields and the regex
    are checked here.
    """
    query = select(*ENTRY_COLUMNS).where(LogEntry.id < before_id, LogEntry.ts >= start, LogEntry.ts <= end)
    if rule.category is not None:
        query = query.where(LogEntry.category == rule.category)
    if rule.source is not None:
        query = query.where(LogEntry.source == rule.source)
    if rule.levels:
        query = query.where(LogEntry.level.in_(rule.levels))
    rows = db.session.execute(query.order_by(LogEntry.id.desc()).limit(LOOKBACK_ROWS)).mappings()
    return [dict(row) for row in rows if rule.matches(row)]


class WindowCounter:
    """Matches of one threshold rule per group, as (id, ts) in arrival order, to count windows.

    Per group only the newest `max(threshold, keep)` matches are kept and rows older than the
    window (measured back from the newest entry's time) are dropped from the left, so memory and
    counting stay small however noisy a group is. A counter may live across batches.
    """

    def __init__(self, rule: CompiledRule, keep: int = 200) -> None:
        self.rule = rule
        self.keep = keep
        self.window = timedelta(seconds=rule.window)
        self.seen: dict[str, deque[tuple[int, datetime]]] = {}

    def _matches(self, group: str) -> deque[tuple[int, datetime]]:
        matches = self.seen.get(group)
        if matches is None:
            matches = self.seen[group] = deque(maxlen=max(self.rule.threshold, self.keep))
        return matches

    def preload(self, rows: Iterable[dict[str, Any]]) -> None:
        """Add earlier matches (from `lookback`) before the batch's own entries."""
        for row in sorted(rows, key=lambda item: item["id"]):
            self._matches(self.rule.group(row)).append((row["id"], row["ts"]))

    def add(self, entry: dict[str, Any]) -> list[int] | None:
        """Count `entry`; at the threshold, the ids of the newest `keep` matches in its window, else None."""
        matches = self._matches(self.rule.group(entry))
        matches.append((entry["id"], entry["ts"]))
        start = entry["ts"] - self.window
        while matches and matches[0][1] < start:
            matches.popleft()
        if len(matches) < self.rule.threshold:
            return None
        return [entry_id for entry_id, _ in islice(reversed(matches), self.keep)]

    def prune(self, now: datetime) -> None:
        """Forget groups whose newest match is older than the window before `now`."""
        start = now - self.window
        for group in [group for group, matches in self.seen.items() if not matches or matches[-1][1] < start]:
            del self.seen[group]
