"""The logs explorer over 5,000,000 entries in MariaDB: keyset pages and a streamed 1,000,000-row export.

How it is measured: a dedicated MariaDB database (`BENCH_DATABASE_URL`, default
`slipway_test_bench_logs_explorer` on 127.0.0.1) is migrated; 10,000 varied entries (6 sources,
levels mostly info with 10 % errors, 50 servers, 500 users, 30 days of timestamps) are inserted
with `add_entries`, then doubled with INSERT ... SELECT up to `ROWS` (the secondary indexes are
dropped for the load and rebuilt after it, as a bulk import would; the generation time is printed
and bounded by `GENERATION_LIMIT`). With `BENCH_REUSE=1` a database already holding `ROWS` entries
(from an earlier run) is kept as it is and migrated forward.
- pages: the explorer's query is the keyset query of its contract (newest first, 50 rows, `id <
  :after` for the next page, no OFFSET, one statement per page) built by `explorer_page` below;
  NOTE: at merge it switches to the pages helper's `app.logs.query.filtered(filters, user)` and
  `/logs/` is then timed through the Flask app instead. Until then each sample is the query plus
  rendering its 50 rows into an HTML table with Jinja (escaped), in-process, `time.perf_counter`;
  `FETCHES` samples after `WARMUPS`, the median is the figure. Pages: the first page, a filtered
  page (level=error, server=7), page 1,000 unfiltered and page 1,000 filtered by level (its keyset
  cursor found by walking the 999 pages before it, which are timed too); the statement count per page
  and the query plans are printed. Bar: each median < 100 ms.
- explorer cases, timed through the explorer's own `app.logs.query.keyset_page` (admin) plus
  rendering: a narrow old time window (one hour, three days after the oldest entry; alone, with
  level=error, and a whole day), a text filter matching nothing (before: a full-table scan) and
  one matching often. The statement count and, for text, the ids searched are printed. Bar: < 100 ms.
- export: `EXPORT_ROWS` rows streamed as CSV (cells starting with = + - @ neutralised) through a
  Flask streaming response in keyset batches of `EXPORT_BATCH`, read chunk by chunk by the test
  client and discarded. The process's RSS (`/proc/self/status` VmRSS) is sampled every 10,000
  rows; the growth is the highest sample minus the RSS just before the request. Bar: < 50 MB.
"""

from __future__ import annotations

import csv
import io
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from flask import Response, stream_with_context  # noqa: E402
from flask_migrate import upgrade  # noqa: E402
from sqlalchemy import Select, event, func, select, text  # noqa: E402

from app.extensions import db  # noqa: E402
from app.logs.query import SEARCH_WINDOW, Page, keyset_page, parse_filters  # noqa: E402
from app.logs.store import add_entries  # noqa: E402
from app.models import LogEntry, User  # noqa: E402
from app.timeutil import utcnow  # noqa: E402
from bench.benchdb import fresh_database  # noqa: E402
from tests.builders import make_user  # noqa: E402
from tests.conftest import build_app  # noqa: E402

DEFAULT_URL = "mysql+pymysql://slipway:slipway-test-password@127.0.0.1/slipway_test_bench_logs_explorer"
ROWS = int(os.environ.get("BENCH_ROWS", "5000000"))
SEED_ROWS = 10_000
GENERATION_LIMIT = 1800  # seconds; the bench stops rather than run on
PAGE_SIZE = 50
FETCHES, WARMUPS = 30, 3
BAR_MS = 100.0
TIME = "%Y-%m-%dT%H:%M"
REUSE = os.environ.get("BENCH_REUSE") == "1"  # keep a database this bench filled before
EXPORT_ROWS = int(os.environ.get("BENCH_EXPORT_ROWS", "1000000"))
EXPORT_BATCH = 2000
BAR_RSS_MB = 50.0
COLUMNS = ("ts", "received_at", "source", "category", "level", "server_id", "workspace_id", "username",
           "host", "message", "fields", "risk_score", "rule_ids")
LEVELS = ["info"] * 70 + ["warning"] * 15 + ["error"] * 10 + ["debug"] * 4 + ["critical"]
SOURCES = ("agent", "audit", "task", "nginx", "syslog", "app")
LIST_COLUMNS = [LogEntry.id, LogEntry.ts, LogEntry.source, LogEntry.category, LogEntry.level,
                LogEntry.server_id, LogEntry.username, LogEntry.host, LogEntry.message, LogEntry.risk_score]
PAGE_TEMPLATE = """<table class="table table-sm"><tbody>
{% for e in rows %}<tr><td><a href="/logs/{{ e.id }}">{{ e.ts.strftime('%Y-%m-%d %H:%M:%S') }}</a></td>
<td>{{ e.source }}</td><td>{{ e.category }}</td><td>{{ e.level }}</td><td>{{ e.server_id or '' }}</td>
<td>{{ e.username or '' }}</td><td>{{ e.host or '' }}</td><td>{{ e.message|truncate(200) }}</td>
<td>{{ e.risk_score }}</td></tr>{% endfor %}</tbody></table>
{% if next_after %}<a href="?after={{ next_after }}">Older</a>{% endif %}"""


def page_query(filters: dict[str, Any], after: int | None) -> Select:
    """The explorer's statement for one page: newest first, keyset on id, one statement.

    The ids are found first from an index alone (a derived table), then only those rows are read:
    with `WHERE level = 'error' AND id < :after` MariaDB 10.11 picks `ref` on (level, id) and reads
    every newer row of that level before reaching the cursor (60-120 ms by page 150 at 600,000 rows,
    growing with the page); the id-only scan skips them in the index, without row lookups.
    """
    ids = select(LogEntry.id)
    if filters.get("level"):
        ids = ids.where(LogEntry.level == filters["level"])
    if filters.get("server"):
        ids = ids.where(LogEntry.server_id == filters["server"])
    if filters.get("source"):
        ids = ids.where(LogEntry.source == filters["source"])
    if after is not None:
        ids = ids.where(LogEntry.id < after)
    page = ids.order_by(LogEntry.id.desc()).limit(PAGE_SIZE + 1).subquery("page")
    return select(*LIST_COLUMNS).join(page, page.c.id == LogEntry.id).order_by(LogEntry.id.desc())


def explorer_page(filters: dict[str, Any], after: int | None) -> tuple[list[Any], int | None]:
    """One page of the explorer and the next cursor (None on the last page).

    Stands in for the pages helper's `filtered(filters, user)` (admin view: no role fence) until merge.
    """
    rows = db.session.execute(page_query(filters, after)).all()
    more = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    return rows, (rows[-1].id if more else None)


def _rows_present(url: str, data_dir: Path) -> int:
    """How many entries an earlier run left (0 when the database or table is missing or behind)."""
    try:
        app = build_app(url, data_dir)
        with app.app_context():
            count = db.session.scalar(select(func.count()).select_from(LogEntry)) or 0
            db.engine.dispose()
    except Exception:  # noqa: BLE001 - no table yet: generate
        return 0
    return count


def _seed(app) -> None:
    now = utcnow()
    rng = random.Random(42)
    entries = []
    for i in range(SEED_ROWS):
        level = rng.choice(LEVELS)
        entries.append({
            "ts": now - timedelta(days=30) + timedelta(seconds=i * 259),
            "source": SOURCES[i % len(SOURCES)], "category": ("container.die", "auth.login_failed",
                                                              "task.finished", "ingest")[i % 4],
            "level": level, "server_id": rng.randint(1, 50), "workspace_id": 1 + i % 500,
            "username": f"user{i % 500}" if i % 3 else None, "host": f"host-{i % 50}",
            "message": f"=entry {i}: container slipway-ws-{i % 500} {level} <b>event</b> exit code {i % 256}",
            "fields": {"ip": f"198.51.100.{i % 250}", "exit_code": i % 256},
        })
    with app.app_context():
        for start in range(0, SEED_ROWS, 2000):
            add_entries(entries[start:start + 2000])
        db.session.commit()


def _secondary_indexes() -> list[tuple[str, list[str]]]:
    return [(index.name, [c.name for c in index.columns]) for index in LogEntry.__table__.indexes]


def _generate(app) -> float:
    """Fill log_entries up to ROWS rows; returns the seconds it took."""
    started = time.perf_counter()
    _seed(app)
    cols = ", ".join(COLUMNS)
    shifted = cols.replace("server_id", "1 + (server_id + 13) %% 50")  # %% for the driver's paramstyle
    with app.app_context():
        conn = db.session.connection()
        conn.exec_driver_sql("ALTER TABLE log_entries " + ", ".join(f"DROP INDEX {n}" for n, _ in
                                                                     _secondary_indexes()))
        total = SEED_ROWS
        while total < ROWS:
            step = min(total, ROWS - total)
            # column names and numbers of this module only
            sql = f"INSERT INTO log_entries ({cols}) SELECT {shifted} FROM log_entries"  # noqa: S608
            sql += f" ORDER BY id LIMIT {step}"
            conn.exec_driver_sql(sql)
            db.session.commit()
            conn = db.session.connection()
            total += step
            print(f"  {total:,} rows after {time.perf_counter() - started:.0f} s", flush=True)
            if time.perf_counter() - started > GENERATION_LIMIT:
                raise SystemExit(f"generation over {GENERATION_LIMIT} s; stopping")
        conn.exec_driver_sql("ALTER TABLE log_entries " + ", ".join(
            f"ADD INDEX {name} ({', '.join(columns)})" for name, columns in _secondary_indexes()))
        conn.exec_driver_sql("ANALYZE TABLE log_entries")
        db.session.commit()
    return time.perf_counter() - started


def _time(fn) -> list[float]:
    for _ in range(WARMUPS):
        fn()
    samples = []
    for _ in range(FETCHES):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def _counting(app):
    with app.app_context():
        engine = db.engine
    counter = {"n": 0}

    def bump(*_args: object) -> None:
        counter["n"] += 1

    event.listen(engine, "before_cursor_execute", bump)
    return counter, lambda: event.remove(engine, "before_cursor_execute", bump)


def _plan(filters: dict[str, Any], after: int | None) -> str:
    compiled = page_query(filters, after).compile(db.engine, compile_kwargs={"literal_binds": True})
    rows = db.session.execute(text(f"EXPLAIN {compiled}")).mappings().all()
    return "; ".join(f"{r['table']}: {r['type']} key={r['key']} rows={r['rows']} {r['Extra'] or ''}".strip()
                     for r in rows)


def _bench_pages(app) -> bool:
    template = app.jinja_env.from_string(PAGE_TEMPLATE)
    ok = True
    with app.test_request_context("/logs/"):
        def render(filters: dict[str, Any], after: int | None) -> int | None:
            rows, next_after = explorer_page(filters, after)
            html = template.render(rows=rows, next_after=next_after)
            assert rows and "<b>" not in html and "&lt;b&gt;" in html
            return next_after

        cursors: dict[str, int | None] = {}
        walk: dict[str, list[float]] = {}
        for name, filters in (("all", {}), ("error", {"level": "error"})):
            after, times = None, []
            for _ in range(999):
                start = time.perf_counter()
                after = render(filters, after)
                times.append((time.perf_counter() - start) * 1000)
                if after is None:
                    raise SystemExit(f"fewer than 1,000 pages of {name}: raise BENCH_ROWS")
            cursors[name], walk[name] = after, times
        cases = [
            ("first page", {}, None),
            ("filtered page (level=error, server=7)", {"level": "error", "server": 7}, None),
            ("page 1,000", {}, cursors["all"]),
            ("page 1,000 of level=error", {"level": "error"}, cursors["error"]),
        ]
        counter, stop_counting = _counting(app)
        for label, filters, after in cases:
            samples = _time(lambda f=filters, a=after: render(f, a))
            counter["n"] = 0
            render(filters, after)
            statements = counter["n"]
            median = statistics.median(samples)
            ok &= median < BAR_MS
            verdict = "ok" if median < BAR_MS else "OVER BAR"
            p90 = sorted(samples)[int(len(samples) * 0.9)]
            print(f"  {label:40s} median {median:6.1f} ms (p90 {p90:.1f}) "
                  f"{statements} SQL statement(s)  {verdict}")
            print(f"    plan: {_plan(filters, after)}")
        ok &= _bench_explorer_cases(app, render_rows=lambda rows: template.render(rows=rows, next_after=None),
                                    counter=counter)
        stop_counting()
        for name, times in walk.items():
            print(f"  walking pages 1-999 ({name}): median {statistics.median(times):.1f} ms, "
                  f"max {max(times):.1f} ms per page")
    return ok


def _bench_explorer_cases(app, render_rows, counter: dict[str, int]) -> bool:
    """The explorer's own `keyset_page` (admin, no fence) on the cases that once scanned the table."""
    with app.app_context():
        admin = db.session.scalar(select(User).where(User.username == "benchadmin"))
        oldest = db.session.scalar(select(func.min(LogEntry.ts)))
    since = oldest + timedelta(days=3)
    window = {"since": since.strftime(TIME), "until": (since + timedelta(hours=1)).strftime(TIME)}
    cases = [
        ("narrow old window (1 hour, 3 days in)", window),
        ("narrow old window, level=error", {**window, "level": "error"}),
        ("old day (since/until 1 day)", {**window, "until": (since + timedelta(days=1)).strftime(TIME)}),
        ("text matching nothing (q)", {"q": "no entry says this"}),
        ("text matching some (q=exit code 255)", {"q": "exit code 255"}),
    ]
    ok = True
    for label, args in cases:
        filters, problems = parse_filters(args)
        assert not problems, problems

        def one(f=filters) -> Page:
            page = keyset_page(f, admin, size=PAGE_SIZE)
            render_rows(page.entries)
            db.session.rollback()
            return page

        samples = _time(one)
        counter["n"] = 0
        page = one()
        median = statistics.median(samples)
        ok &= median < BAR_MS
        p90 = sorted(samples)[int(len(samples) * 0.9)]
        searched = (f"; searched ids {page.searched[0]:,}-{page.searched[1]:,}, older link "
                    f"before={page.older}" if page.searched else "")
        print(f"  {label:40s} median {median:6.1f} ms (p90 {p90:.1f}) {counter['n']} SQL statement(s) "
              f"{len(page.entries)} rows{searched}  {'ok' if median < BAR_MS else 'OVER BAR'}")
    return ok


def _rss_kb() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def _neutral(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@"):
        return "'" + value
    return value


def _export_rows(limit: int, samples: list[int]) -> Iterator[str]:
    """CSV of the newest `limit` entries, fetched in keyset batches: memory flat whatever the size."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow([c.key for c in LIST_COLUMNS])
    after, sent = None, 0
    while sent < limit:
        query = select(*LIST_COLUMNS).order_by(LogEntry.id.desc()).limit(min(EXPORT_BATCH, limit - sent))
        if after is not None:
            query = query.where(LogEntry.id < after)
        rows = db.session.execute(query).all()
        if not rows:
            break
        for row in rows:
            writer.writerow([_neutral(v) for v in row])
        sent += len(rows)
        after = rows[-1].id
        db.session.rollback()  # end the read transaction between batches; nothing is held
        chunk = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        if sent % 10_000 < EXPORT_BATCH:
            samples.append(_rss_kb())
        yield chunk


def _bench_export(app) -> bool:
    samples: list[int] = []

    @app.route("/bench/export.csv")
    def bench_export() -> Response:
        return Response(stream_with_context(_export_rows(EXPORT_ROWS, samples)), mimetype="text/csv")

    client = app.test_client()
    before = _rss_kb()
    start = time.perf_counter()
    response = client.get("/bench/export.csv", buffered=False)
    received = lines = 0
    first = b""
    for chunk in response.response:
        received += len(chunk)
        lines += chunk.count(b"\n")
        if not first:
            first = chunk[:400]
    response.close()
    elapsed = time.perf_counter() - start
    growth_mb = (max(samples) - before) / 1024
    ok = growth_mb < BAR_RSS_MB and lines >= EXPORT_ROWS + 1
    print(f"  export of {lines - 1:,} rows as CSV: {received / 1e6:.0f} MB in {elapsed:.1f} s; RSS before "
          f"{before / 1024:.0f} MB, highest {max(samples) / 1024:.0f} MB over {len(samples)} samples: growth "
          f"{growth_mb:.1f} MB (bar < {BAR_RSS_MB:.0f} MB)  {'ok' if ok else 'OVER BAR'}")
    neutralised = first.count(b",'=")
    print(f"  CSV cells starting with '=' neutralised in the first rows: {neutralised}")
    return ok


def main() -> int:
    """Generate the rows, time the pages and the export; exit 1 when a bar is missed."""
    data_dir = Path(tempfile.mkdtemp(prefix="slipway-bench-explorer-"))
    url = os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL)
    if not url.startswith("mysql"):
        print("this bench measures MariaDB; set BENCH_DATABASE_URL to a mysql+pymysql URL")
        return 1
    reused = REUSE and _rows_present(url, data_dir) >= ROWS
    if not reused:
        fresh_database(DEFAULT_URL, data_dir)
    app = build_app(url, data_dir)
    with app.app_context():
        upgrade()
    if reused:
        print(f"database: {url.split('@')[-1]}; BENCH_REUSE=1: its {ROWS:,}+ entries are kept")
    else:
        print(f"database: {url.split('@')[-1]}; generating {ROWS:,} entries "
              f"(load average {os.getloadavg()[0]:.1f})")
        seconds = _generate(app)
        print(f"generated in {seconds:.0f} s")
    with app.app_context():
        count = db.session.scalar(select(func.count()).select_from(LogEntry))
        if db.session.scalar(select(User.id).where(User.username == "benchadmin")) is None:
            make_user("benchadmin", role="admin")
    print(f"{count:,} entries; a text search scans {SEARCH_WINDOW:,} entries per page")
    print(f"pages ({FETCHES} fetches after {WARMUPS} warm-ups; query + render; load average "
          f"{os.getloadavg()[0]:.1f}):")
    pages_ok = _bench_pages(app)
    print("export:")
    export_ok = _bench_export(app)
    with app.app_context():
        db.engine.dispose()
    ok = pages_ok and export_ok
    print(f"bars: each page median < {BAR_MS:.0f} ms; export RSS growth < {BAR_RSS_MB:.0f} MB: "
          f"{'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
