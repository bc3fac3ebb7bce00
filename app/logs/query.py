"""The explorer's filters: parsed from a query string once, turned into one select with the role fence.

The explorer, both exports, the live stream, the server page and the alert detail all build their
queries here, so a filter (or the fence) can never mean one thing on a page and another in a file.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import abort
from sqlalchemy import Select, func, or_, select
from sqlalchemy.sql.elements import ColumnElement

from app.extensions import db
from app.models import ENTRY_LEVELS, Alert, LogEntry
from app.models.like import contains_text
from app.models.workspace import Workspace
from app.permissions import can

FILTER_NAMES = ("q", "source", "level", "server", "user", "min_risk", "since", "until")
TEXT_MAX = {"q": 200, "source": 64, "user": 64}
MAX_ID = 2**63 - 1
YEARS = (1970, 9998)  # what every database's DATETIME holds, with a day to spare
# qvp read image work: entries of these categories, plus their own. Task outcomes are named
# `task.<kind>.<outcome>`, so the image kinds' outcomes are prefixes too.
QVP_CATEGORY_PREFIXES = ("image.", "build.", "task.build.", "task.push.", "task.import.")
_DATE_FORMATS = ("%Y-%m-%d", "%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S")


@dataclass(frozen=True)
class Filters:
    """Valid filter values; `args` keeps them as given, for links, the form and the audit row."""

    q: str = ""
    source: str = ""
    level: str = ""
    server: int | None = None
    user: str = ""
    min_risk: int | None = None
    since: datetime | None = None
    until: datetime | None = None  # exclusive
    args: dict[str, str] = field(default_factory=dict)


def _parse_time(name: str, raw: str) -> datetime:
    value = _parse_time_text(name, raw)
    if not YEARS[0] <= value.year <= YEARS[1]:
        raise ValueError(f"{name} must fall between the years {YEARS[0]} and {YEARS[1]}")
    return value


def _parse_time_text(name: str, raw: str) -> datetime:
    for fmt in _DATE_FORMATS:
        try:
            value = datetime.strptime(raw, fmt)
        except ValueError:
            continue
        if name == "until" and fmt == "%Y-%m-%d" and value.year < YEARS[1]:
            value += timedelta(days=1)  # a date alone means "through that day"
        return value
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        raise ValueError(f"{name} must be a date (YYYY-MM-DD) or a time (YYYY-MM-DDTHH:MM)") from None
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value


def _parse_int(name: str, raw: str, low: int, high: int) -> int:
    if not raw.isascii() or not raw.isdigit() or len(raw) > 19 or not low <= int(raw) <= high:
        raise ValueError(f"{name} must be a whole number from {low} to {high}")
    return int(raw)


def parse_filters(args: Mapping[str, str]) -> tuple[Filters, list[str]]:
    """The valid filters in `args` and a message for each invalid one (invalid ones are dropped)."""
    values: dict[str, Any] = {}
    kept: dict[str, str] = {}
    problems: list[str] = []
    for name in FILTER_NAMES:
        raw = (args.get(name) or "").strip()
        if not raw:
            continue
        try:
            if name in TEXT_MAX:
                if len(raw) > TEXT_MAX[name]:
                    raise ValueError(f"{name} is longer than {TEXT_MAX[name]} characters")
                if not raw.isprintable():
                    raise ValueError(f"{name} must not contain control characters")
                value: Any = raw
            elif name == "level":
                if raw not in ENTRY_LEVELS:
                    raise ValueError(f"level must be one of {', '.join(ENTRY_LEVELS)}")
                value = raw
            elif name == "server":
                value = _parse_int(name, raw, 1, 2**31 - 1)
            elif name == "min_risk":
                value = _parse_int(name, raw, 0, 100)
            else:
                if len(raw) > 40:
                    raise ValueError(f"{name} is not a date")
                value = _parse_time(name, raw)
        except ValueError as exc:
            problems.append(str(exc))
            continue
        values[name] = value
        kept[name] = raw
    if values.get("since") and values.get("until") and values["since"] >= values["until"]:
        problems.append("since must be before until")
    return Filters(**values, args=kept), problems


def filters_or_400(args: Mapping[str, str]) -> Filters:
    """The filters of a request that must not guess (exports, the stream): any bad value is a 400."""
    filters, problems = parse_filters(args)
    if problems:
        abort(400, "Bad filter: " + "; ".join(problems))
    return filters


def parse_id(raw: str | None) -> int | None:
    """A keyset bound (`before`/`after`), or None when absent or not a sane id."""
    raw = (raw or "").strip()
    if raw.isascii() and raw.isdigit() and len(raw) <= 19 and int(raw) <= MAX_ID:
        return int(raw)
    return None


def entry_fence(user: Any) -> ColumnElement[bool] | None:
    """What `user` may read of `log_entries` (None: everything).

    Entries include the audit trail, so reading all of them is for those who read the audit log.
    """
    if can(user, "view_audit"):
        return None
    own = LogEntry.username == user.username
    if can(user, "view_logs"):
        return or_(own, *(LogEntry.category.startswith(prefix, autoescape=True)
                          for prefix in QVP_CATEGORY_PREFIXES))
    mine = select(Workspace.id).where(Workspace.user_id == user.id).scalar_subquery()
    return or_(own, LogEntry.workspace_id.in_(mine))


def filtered(filters: Filters, user: Any, *columns: Any) -> Select:
    """`select(LogEntry)` (or `columns`) narrowed to `filters` and to what `user` may read; unordered."""
    stmt = select(*columns) if columns else select(LogEntry)
    fence = entry_fence(user)
    if fence is not None:
        stmt = stmt.where(fence)
    if filters.q:
        stmt = stmt.where(contains_text(LogEntry.message, filters.q))
    if filters.source:
        stmt = stmt.where(LogEntry.source == filters.source)
    if filters.level:
        stmt = stmt.where(LogEntry.level.in_(ENTRY_LEVELS[ENTRY_LEVELS.index(filters.level):]))
    if filters.server is not None:
        stmt = stmt.where(LogEntry.server_id == filters.server)
    if filters.user:
        stmt = stmt.where(LogEntry.username == filters.user)
    if filters.min_risk:
        stmt = stmt.where(LogEntry.risk_score >= filters.min_risk)
    if filters.since is not None:
        stmt = stmt.where(LogEntry.ts >= filters.since)
    if filters.until is not None:
        stmt = stmt.where(LogEntry.ts < filters.until)
    return stmt


# A text filter cannot use an index (`LIKE '%text%'`): each page scans at most this many entries
# (by id, newest first) and offers to go on below them, so a search for something rare costs the
# same bounded time per page at 5,000,000 entries as at 5,000 instead of a full-table scan.
SEARCH_WINDOW = 20_000
# A time window holding at most this many entries is read through the `ts` index (then sorted by
# id); MariaDB would otherwise walk the primary key newest first, which for an old window means
# reading every newer entry before the first match.
TIME_INDEX_CAP = 20_000


@dataclass
class Page:
    """One keyset page, newest first, with the bounds for the links around it."""

    entries: list[LogEntry]
    newer: int | None  # `after=` for the newer page, when there is one
    older: int | None  # `before=` for the older page, when there is one
    searched: tuple[int, int] | None = None  # ids a text search looked through when it stopped short


def _search_window(filters: Filters, before: int | None, after: int | None) -> tuple[int, int, int] | None:
    """The ids (lowest, highest) a text search scans for this page, and the oldest id stored.

    None when the page is not a text search. One statement: the ends of the primary key.
    """
    if not filters.q:
        return None
    oldest, newest = db.session.execute(select(func.min(LogEntry.id), func.max(LogEntry.id))).one()
    oldest, newest = oldest or 0, newest or 0
    if after is not None and before is None:
        return after + 1, min(after + SEARCH_WINDOW, max(newest, after + 1)), oldest
    top = before - 1 if before is not None else newest
    return max(oldest, top - SEARCH_WINDOW + 1), top, oldest


def _small_time_window(filters: Filters) -> bool:
    """True when since/until hold at most TIME_INDEX_CAP entries (counted from the `ts` index alone)."""
    if filters.since is None and filters.until is None:
        return False
    ids = select(LogEntry.id)
    if filters.since is not None:
        ids = ids.where(LogEntry.ts >= filters.since)
    if filters.until is not None:
        ids = ids.where(LogEntry.ts < filters.until)
    count = db.session.scalar(select(func.count()).select_from(ids.limit(TIME_INDEX_CAP + 1).subquery()))
    return (count or 0) <= TIME_INDEX_CAP


def keyset_page(filters: Filters, user: Any, *, before: int | None = None, after: int | None = None,
                size: int = 50) -> Page:
    """A page of entries newest first: `before` an id (older) or `after` one (newer).

    Two statements at most besides the page itself, whatever the page: the newest id for a text
    search, and the size of a time window.
    """
    stmt = filtered(filters, user)
    if _small_time_window(filters):
        stmt = stmt.with_hint(LogEntry, "FORCE INDEX (ix_log_entries_ts)", "mysql")
    else:
        window = _search_window(filters, before, after)
        if window is not None:
            stmt = stmt.where(LogEntry.id.between(window[0], window[1]))
            return _windowed_page(stmt, window, before, after, size)
    if after is not None and before is None:
        rows = list(db.session.scalars(stmt.where(LogEntry.id > after).order_by(LogEntry.id).limit(size + 1)))
        more_newer = len(rows) > size
        rows = rows[:size][::-1]
        return Page(rows, rows[0].id if more_newer and rows else None, rows[-1].id if rows else None)
    if before is not None:
        stmt = stmt.where(LogEntry.id < before)
    rows = list(db.session.scalars(stmt.order_by(LogEntry.id.desc()).limit(size + 1)))
    more_older = len(rows) > size
    rows = rows[:size]
    newer = rows[0].id if before is not None and rows else None
    return Page(rows, newer, rows[-1].id if more_older else None)


def _windowed_page(stmt: Select, window: tuple[int, int, int], before: int | None, after: int | None,
                   size: int) -> Page:
    """A text search's page inside its id window; when the window runs out first, the links go past it."""
    low, high, oldest = window
    if after is not None and before is None:
        rows = list(db.session.scalars(stmt.order_by(LogEntry.id).limit(size + 1)))
        full = len(rows) > size
        rows = rows[:size][::-1]
        more_newer = high - low + 1 >= SEARCH_WINDOW  # the window was cut short of the newest entries
        newer = rows[0].id if full else (high if more_newer else None)
        return Page(rows, newer, rows[-1].id if rows else low, None if full else (low, high))
    rows = list(db.session.scalars(stmt.order_by(LogEntry.id.desc()).limit(size + 1)))
    full = len(rows) > size
    rows = rows[:size]
    newer = (rows[0].id if rows else high) if before is not None else None
    older = rows[-1].id if full else (low if low > oldest else None)
    return Page(rows, newer, older, None if full else (low, high))


def load_entry_or_404(entry_id: int, user: Any) -> LogEntry:
    """The entry if `user` may read it; otherwise 404, exactly like a missing one."""
    stmt = filtered(Filters(), user).where(LogEntry.id == entry_id)
    entry = db.session.scalars(stmt).first()
    if entry is None:
        abort(404)
    return entry


def alert_fence(user: Any) -> ColumnElement[bool] | None:
    """What `user` may read of `alerts` (None: everything): admins all, others the alerts about them."""
    if can(user, "manage_rules"):
        return None
    return Alert.username == user.username


def load_alert_or_404(alert_id: int, user: Any) -> Alert:
    """The alert if `user` may read it; otherwise 404, exactly like a missing one."""
    alert = db.session.get(Alert, alert_id)
    if alert is None or not (can(user, "manage_rules") or alert.username == user.username):
        abort(404)
    return alert


def recent_entries(filters: Filters, user: Any, limit: int = 10) -> list[LogEntry]:
    """The newest `limit` entries matching `filters` that `user` may read (one query)."""
    return list(db.session.scalars(filtered(filters, user).order_by(LogEntry.id.desc()).limit(limit)))


def visible_alerts(user: Any) -> Select:
    """`select(Alert)` narrowed to what `user` may read."""
    stmt = select(Alert)
    fence = alert_fence(user)
    return stmt if fence is None else stmt.where(fence)


def open_alert_count(user: Any) -> int:
    """Open (not yet acknowledged) alerts `user` may read: one count query."""
    stmt = visible_alerts(user).where(Alert.state == "open").with_only_columns(func.count(Alert.id))
    return db.session.scalar(stmt) or 0


def unresolved_alerts_of_server(server_id: int, user: Any, limit: int = 10) -> list[Alert]:
    """The most recently seen unresolved alerts about one server that `user` may read (one query)."""
    stmt = (visible_alerts(user).where(Alert.server_id == server_id, Alert.state != "resolved")
            .order_by(Alert.last_seen.desc()).limit(limit))
    return list(db.session.scalars(stmt))
