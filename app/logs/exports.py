"""Exports of the explorer's filtered view as CSV and NDJSON, streamed in keyset batches.

Memory stays flat whatever the size: rows are read as plain tuples, a batch at a time after the
last id written, and each line is handed to the server as soon as it is encoded. The export is
audited with its filter before the first byte is sent.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any

from flask import Flask, Response, current_app, request
from flask_login import current_user
from sqlalchemy import Select

from app.extensions import db
from app.logs.query import filtered, filters_or_400
from app.logs.routes import bp
from app.models import LogEntry
from app.permissions import permission_required
from app.services import audit
from app.timeutil import utcnow

BATCH = 1000
# A spreadsheet runs a cell that starts with one of these as a formula.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
ENTRY_COLUMNS = ("id", "ts", "received_at", "source", "category", "level", "server_id", "workspace_id",
                 "username", "host", "risk_score", "rule_ids", "message", "fields")


def csv_safe(value: Any) -> Any:
    """A cell a spreadsheet shows as text: formula starts get a leading apostrophe."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%S.%f")
    return value


def csv_lines(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> Iterator[str]:
    """`header` then each row as one CSV line, every string cell neutralised, JSON values as JSON text."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    yield buffer.getvalue()
    for row in rows:
        buffer.seek(0)
        buffer.truncate()
        cells = [json.dumps(v, default=str) if isinstance(v, dict | list) else _plain(v) for v in row]
        writer.writerow([csv_safe(cell) for cell in cells])
        yield buffer.getvalue()


def ndjson_lines(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> Iterator[str]:
    """Each row as one JSON object per line (no neutralising: NDJSON is read by programs)."""
    for row in rows:
        yield json.dumps(dict(zip(header, map(_plain, row), strict=True)), default=str) + "\n"


def keyset_rows(app: Flask, stmt: Select, id_column: Any,
                batch: int | None = None) -> Iterator[Sequence[Any]]:
    """The rows of `stmt` (its first column must be `id_column`) by id ascending, `batch` per query.

    Each batch runs in its own app context (its own session, closed before the rows are yielded), so
    nothing of the request's session is held while the client reads, and no snapshot lasts the export.
    """
    batch = batch or BATCH
    last = 0
    while True:
        with app.app_context():
            rows = db.session.execute(stmt.where(id_column > last).order_by(id_column).limit(batch)).all()
        yield from rows
        if len(rows) < batch:
            return
        last = rows[-1][0]


def streamed(lines: Iterator[str], mimetype: str, filename: str) -> Response:
    """A streamed download of `lines`."""
    response = Response(lines, mimetype=mimetype)
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def _export(fmt: str, encode: Callable[[Sequence[str], Iterable[Sequence[Any]]], Iterator[str]],
            mimetype: str) -> Response:
    filters = filters_or_400(request.args)
    audit.record("logs_exported", current_user.username, {"format": fmt, "filters": filters.args})
    db.session.commit()
    columns = [getattr(LogEntry, name) for name in ENTRY_COLUMNS]
    stmt = filtered(filters, current_user, *columns)
    rows = keyset_rows(current_app._get_current_object(), stmt, LogEntry.id)
    stamp = utcnow().strftime("%Y%m%d-%H%M%S")
    return streamed(encode(ENTRY_COLUMNS, rows), mimetype, f"slipway-logs-{stamp}.{fmt}")


@bp.route("/export.csv")
@permission_required("view_logs")
def export_csv() -> Response:
    """The filtered entries as CSV, oldest first, streamed; the export is audited with its filter."""
    return _export("csv", csv_lines, "text/csv")


@bp.route("/export.ndjson")
@permission_required("view_logs")
def export_ndjson() -> Response:
    """The filtered entries as NDJSON, oldest first, streamed; the export is audited with its filter."""
    return _export("ndjson", ndjson_lines, "application/x-ndjson")
