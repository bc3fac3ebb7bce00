"""NDJSON batches: every kind of bad line is reported with its number and reason; good lines pass."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from app.logs import ndjson

NOW = datetime(2026, 5, 1, 12, 0, 0)
LIMITS = ndjson.Limits(max_lines=5, field_max_bytes=100, max_age=timedelta(days=30),
                       max_future=timedelta(minutes=5))


def line(**overrides: object) -> bytes:
    entry = {"ts": "2026-05-01T11:59:00Z", "source": "nginx", "host": "web-1", "level": "error",
             "message": "upstream timed out", "fields": {"ip": "192.0.2.7", "status": 504}}
    entry.update(overrides)
    return json.dumps({k: v for k, v in entry.items() if v is not ...}).encode()


def reason(raw: bytes) -> str:
    with pytest.raises(ndjson.LineError) as caught:
        ndjson.parse_line(raw, NOW, LIMITS)
    return str(caught.value)


def test_a_good_line_becomes_an_entry_row():
    row = ndjson.parse_line(line(), NOW, LIMITS)
    assert row == {"ts": datetime(2026, 5, 1, 11, 59), "source": "nginx", "category": "ingest",
                   "level": "error", "host": "web-1", "message": "upstream timed out",
                   "fields": {"ip": "192.0.2.7", "status": 504}}


@pytest.mark.parametrize(
    ("ts", "expected"),
    [
        ("2026-05-01T13:59:00+02:00", datetime(2026, 5, 1, 11, 59)),
        ("2026-05-01T11:58:30.250Z", datetime(2026, 5, 1, 11, 58, 30, 250000)),
        (datetime(2026, 5, 1, 11, 0, tzinfo=UTC).timestamp(), datetime(2026, 5, 1, 11, 0)),
        (int(datetime(2026, 4, 30, tzinfo=UTC).timestamp()), datetime(2026, 4, 30)),
    ],
)
def test_timestamps_with_a_zone_or_epoch_seconds_are_stored_as_utc(ts, expected):
    assert ndjson.parse_line(line(ts=ts), NOW, LIMITS)["ts"] == expected


def test_optional_keys_may_be_left_out_and_levels_have_common_aliases():
    row = ndjson.parse_line(line(host=..., fields=..., level="WARN"), NOW, LIMITS)
    assert row["host"] is None and row["fields"] == {} and row["level"] == "warning"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"{not json", "not valid JSON"),
        (b"\xff\xfe{}", "not valid JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (b'"text"', "must be a JSON object"),
        (line(user="root"), "unknown key(s): user"),
        (line(category="container.oom"), "unknown key(s): category"),
        (line(message=...), "missing key(s): message"),
        (line(ts=..., source=...), "missing key(s): ts, source"),
        (line(ts="2026-05-01T11:59:00"), "no time zone"),
        (line(ts="yesterday"), "not an RFC 3339"),
        (line(ts=True), "ts must be"),
        (line(ts=None), "ts must be"),
        (line(ts=1e20), "out of range"),
        (line(ts="2026-05-01T12:06:00Z"), "in the future"),
        (line(ts=NOW.replace(tzinfo=UTC).timestamp() * 1000), "not milliseconds"),
        (line(ts="2026-03-01T00:00:00Z"), "older than the 30-day retention"),
        (line(source="audit"), "reserved"),
        (line(source="Agent"), "reserved"),
        (line(source="bad source!"), "source must be"),
        (line(source=""), "source must be"),
        (line(source=7), "source must be"),
        (line(level="loud"), "level must be one of debug, info, warning, error, critical"),
        (line(level=3), "level must be one of"),
        (line(message=5), "message must be a string"),
        (line(message="x" * 101), "message is longer than 100 bytes"),
        (line(message="é" * 51), "message is longer than 100 bytes"),  # 102 bytes in UTF-8
        (line(host="h" * 101), "host is longer than 100 bytes"),
        (line(host=["a"]), "host must be a string"),
        (line(fields=[1]), "fields must be an object"),
        (line(fields={"a": {"b": 1}}), "no nesting"),
        (line(fields={"a b": 1}), "fields keys must be"),
        (line(fields={"k": "v" * 100}), "fields is longer than 100 bytes"),
    ],
)
def test_each_bad_input_kind_is_refused_with_its_reason(raw, expected):
    assert expected in reason(raw)


def test_a_batch_keeps_good_lines_and_numbers_bad_ones_counting_blank_lines():
    body = b"\n".join([line(), b"", line(level="nope"), line(message="second") + b"\r", b"{oops"]) + b"\n"
    parsed = ndjson.parse_batch(body, NOW, LIMITS)
    assert [e["message"] for e in parsed.entries] == ["upstream timed out", "second"]
    assert [r["line"] for r in parsed.rejected] == [3, 5]
    assert "level must be" in parsed.rejected[0]["reason"] and "JSON" in parsed.rejected[1]["reason"]


def test_a_batch_over_the_line_limit_is_refused_whole_but_blank_lines_do_not_count():
    ok = b"\n".join([line()] * 5 + [b""] * 4)
    assert len(ndjson.parse_batch(ok, NOW, LIMITS).entries) == 5
    with pytest.raises(ndjson.TooManyLines, match="at most 5 lines"):
        ndjson.parse_batch(b"\n".join([line()] * 6), NOW, LIMITS)


def test_an_unknown_key_list_is_cut_in_the_reason():
    keys = {f"k{i:03d}": 1 for i in range(200)}
    text = reason(json.dumps({**json.loads(line()), **keys}).encode())
    assert len(text) < 400 and text.startswith("unknown key(s): k000")
