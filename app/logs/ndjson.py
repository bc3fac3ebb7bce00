"""Parsing an NDJSON batch posted to the ingestion API into `add_entries` rows, line by line.

Each non-blank line must be one JSON object with the keys in `ALLOWED_KEYS`: `ts` (RFC 3339 /
ISO 8601 with a zone, or epoch seconds), `source`, `level`, `message`, optional `host` and an
optional flat `fields` object. A bad line never stops the others: it is reported with its line
number and reason, and the good lines are returned to be stored (partial accept).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from app.models import ENTRY_LEVELS

# orjson: a C parser and encoder, several times the standard library's rate on this path.
_loads = orjson.loads
_dumps = orjson.dumps
_JSONError = (orjson.JSONDecodeError, UnicodeDecodeError)

REQUIRED_KEYS = ("ts", "source", "level", "message")
ALLOWED_KEYS = frozenset(REQUIRED_KEYS + ("host", "fields"))
# Slipway's own inputs: a shipper may not pose as them (rules trust these sources).
RESERVED_SOURCES = frozenset({"slipway", "agent", "audit", "task"})
SOURCE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}")
FIELD_KEY_RE = re.compile(r"[A-Za-z0-9_.\-]{1,64}")
LEVEL_ALIASES = {"warn": "warning", "err": "error", "crit": "critical", "fatal": "critical"}
HOST_MAX = 255
# Every entry shipped through the API gets this category, so rules on Slipway's own categories
# (container.oom, auth.login_failed, ...) can never be triggered from outside.
INGEST_CATEGORY = "ingest"


@dataclass(frozen=True)
class Limits:
    """What one batch may hold."""

    max_lines: int
    field_max_bytes: int
    max_age: timedelta
    max_future: timedelta


@dataclass
class Parsed:
    """The good lines as entry rows and the bad ones as `{"line", "reason"}`."""

    entries: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[dict[str, Any]] = field(default_factory=list)


class LineError(ValueError):
    """One line's reason for refusal."""


class TooManyLines(ValueError):
    """The batch holds more non-blank lines than allowed."""


def parse_ts(value: Any, now: datetime, limits: Limits) -> datetime:
    """`value` as naive UTC, refused when zone-less, unparseable, too far ahead or older than kept."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise LineError("ts must be an RFC 3339 string with a zone or epoch seconds")
    if isinstance(value, str):
        if len(value) > 40:
            raise LineError("ts is too long")
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise LineError("ts is not an RFC 3339 / ISO 8601 timestamp") from None
        if parsed.tzinfo is None:
            raise LineError("ts has no time zone (add Z or an offset such as +02:00)")
        ts = parsed.astimezone(UTC).replace(tzinfo=None)
    else:
        try:
            ts = datetime.fromtimestamp(value, UTC).replace(tzinfo=None)
        except (OverflowError, OSError, ValueError):
            raise LineError("ts is out of range (epoch seconds are expected, not milliseconds)") from None
    if ts > now + limits.max_future:
        raise LineError(f"ts is more than {int(limits.max_future.total_seconds())} seconds in the future")
    if ts < now - limits.max_age:
        raise LineError(f"ts is older than the {limits.max_age.days}-day retention")
    return ts


def _text(obj: dict[str, Any], key: str, limit: int, *, required: bool = True) -> str | None:
    value = obj.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str):
        raise LineError(f"{key} must be a string")
    if len(value.encode()) > limit:
        raise LineError(f"{key} is longer than {limit} bytes")
    return value


def _source(obj: dict[str, Any]) -> str:
    source = obj.get("source")
    if not isinstance(source, str) or not SOURCE_RE.fullmatch(source):
        raise LineError("source must be 1-64 letters, digits, '.', '_' or '-', first a letter or digit")
    if source.lower() in RESERVED_SOURCES:
        raise LineError(f"source '{source}' is reserved for Slipway's own events")
    return source


def _level(obj: dict[str, Any]) -> str:
    level = obj.get("level")
    if isinstance(level, str):
        level = level.lower()
        level = LEVEL_ALIASES.get(level, level)
        if level in ENTRY_LEVELS:
            return level
    raise LineError(f"level must be one of {', '.join(ENTRY_LEVELS)}")


def _fields(obj: dict[str, Any], limit: int) -> dict[str, Any]:
    fields = obj.get("fields")
    if fields is None:
        return {}
    if not isinstance(fields, dict):
        raise LineError("fields must be an object")
    for key, value in fields.items():
        if not FIELD_KEY_RE.fullmatch(key):
            raise LineError("fields keys must be 1-64 letters, digits, '.', '_' or '-'")
        if isinstance(value, dict | list):
            raise LineError(f"fields.{key} must be a string, number, boolean or null (no nesting)")
    if len(_dumps(fields)) > limit:
        raise LineError(f"fields is longer than {limit} bytes as JSON")
    return fields


def parse_line(raw: bytes, now: datetime, limits: Limits) -> dict[str, Any]:
    """One line as an entry row for `add_entries`; raises `LineError` with the reason."""
    try:
        obj = _loads(raw)
    except _JSONError:
        raise LineError("not valid JSON (UTF-8, one object per line)") from None
    if not isinstance(obj, dict):
        raise LineError("a line must be a JSON object")
    unknown = obj.keys() - ALLOWED_KEYS
    if unknown:
        raise LineError(
            f"unknown key(s): {', '.join(sorted(unknown))[:200]} (allowed: {', '.join(sorted(ALLOWED_KEYS))})"
        )
    missing = [key for key in REQUIRED_KEYS if key not in obj]
    if missing:
        raise LineError(f"missing key(s): {', '.join(missing)}")
    cap = limits.field_max_bytes
    return {
        "ts": parse_ts(obj["ts"], now, limits),
        "source": _source(obj),
        "category": INGEST_CATEGORY,
        "level": _level(obj),
        "host": _text(obj, "host", min(cap, HOST_MAX), required=False),
        "message": _text(obj, "message", cap),
        "fields": _fields(obj, cap),
    }


def parse_batch(body: bytes, now: datetime, limits: Limits) -> Parsed:
    """Every line of `body` parsed; blank lines are skipped but still counted in line numbers.

    Raises `TooManyLines` before parsing anything when the batch holds more lines than allowed.
    """
    lines = body.split(b"\n")
    if len(lines) > limits.max_lines and sum(1 for raw in lines if raw.strip()) > limits.max_lines:
        raise TooManyLines(f"a batch may hold at most {limits.max_lines} lines")
    result = Parsed()
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            result.entries.append(parse_line(raw, now, limits))
        except LineError as exc:
            result.rejected.append({"line": number, "reason": str(exc)})
    return result
