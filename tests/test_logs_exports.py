"""Exports: CSV and NDJSON of the filtered view and the audit CSV, streamed, neutralised, audited."""

from __future__ import annotations

import csv
import io
import json

import pytest
from sqlalchemy import select

from app.extensions import db
from app.logs import exports
from app.models import AuditLog
from app.services import audit
from tests.logkit import add_logs
from tests.support import StatementCounter

HOSTILE = ["=HYPERLINK(\"http://evil\")", "+1+cmd|' /C calc'!A0", "-2+3", "@SUM(A1)", "\tTAB", "\rCR",
           "<script>alert(1)</script>", "plain"]


def exports_audited(app, action):
    """The details of each audit row `action` so far."""
    with app.app_context():
        return [row.details for row in db.session.scalars(
            select(AuditLog).where(AuditLog.action_type == action).order_by(AuditLog.id))]


def test_csv_export_neutralises_formula_cells_and_keeps_the_text(app, client, auth):
    auth.as_role("admin")
    add_logs(app, *({"message": text, "source": "csvtest", "username": "=cmd"} for text in HOSTILE),
             {"message": "=not mine", "source": "other"})
    response = client.get("/logs/export.csv?source=csvtest")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert response.is_streamed and "attachment" in response.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert [row["message"] for row in rows] == [
        "'=HYPERLINK(\"http://evil\")", "'+1+cmd|' /C calc'!A0", "'-2+3", "'@SUM(A1)", "'\tTAB", "'\rCR",
        "<script>alert(1)</script>", "plain"]
    assert {row["username"] for row in rows} == {"'=cmd"}
    assert all(not cell.startswith(("=", "+", "-", "@", "\t", "\r")) for row in rows for cell in row.values())
    assert exports_audited(app, "logs_exported") == [{"format": "csv", "filters": {"source": "csvtest"}}]


def test_ndjson_export_is_one_object_per_line_with_the_filter_audited(app, client, auth):
    auth.as_role("admin")
    ids = add_logs(app, {"message": "<script>x</script>", "level": "error", "fields": {"ip": "10.0.0.1"}},
                   {"message": "quiet", "level": "info"})
    response = client.get("/logs/export.ndjson?level=error&q=script")
    lines = response.get_data(as_text=True).splitlines()
    assert response.mimetype == "application/x-ndjson" and len(lines) == 1
    entry = json.loads(lines[0])
    assert entry["id"] == ids[0] and entry["message"] == "<script>x</script>"
    assert entry["fields"] == {"ip": "10.0.0.1"} and entry["level"] == "error"
    assert exports_audited(app, "logs_exported") == [
        {"format": "ndjson", "filters": {"level": "error", "q": "script"}}]


def test_export_reads_in_keyset_batches_and_streams_them(app, client, auth, monkeypatch):
    auth.as_role("admin")
    ids = add_logs(app, *({"message": f"row {i}"} for i in range(30)))
    with app.app_context():
        engine = db.engine

    def export() -> tuple[list[int], int, int]:
        with StatementCounter(engine) as counter:
            # only the test's rows: each export also writes an audit row, which the feed mirrors
            response = client.get("/logs/export.ndjson?source=slipway")
            chunks = list(response.response)  # the body is produced as it is read
        text = "".join(c.decode() if isinstance(c, bytes) else c for c in chunks)
        return [json.loads(line)["id"] for line in text.splitlines()], len(chunks), counter.count

    whole, _, one_batch = export()
    monkeypatch.setattr(exports, "BATCH", 7)
    got, chunks, batched = export()
    assert whole == got == ids  # oldest first, none lost or repeated across batch edges
    assert batched - one_batch == 4  # 30 rows in batches of 7: five reads instead of one
    assert chunks == 30  # a chunk per line, handed on as it is made


def test_audit_export_uses_the_audit_page_filters_and_is_audited(app, client, auth):
    auth.as_role("admin")
    with app.app_context():
        audit.record("login_failed", "=cmd|calc", {"why": "@bad"})
        audit.record("login_failed", "bob", {})
        audit.record("user_approved", "bob", {})
        db.session.commit()
    response = client.get("/admin/audit/export.csv?action=login_failed")
    assert response.status_code == 200 and response.is_streamed
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert [row["username"] for row in rows] == ["'=cmd|calc", "bob"]
    assert json.loads(rows[0]["details"]) == {"why": "@bad"}
    assert exports_audited(app, "audit_exported") == [
        {"format": "csv", "filters": {"action": "login_failed"}}]
    # the export's own audit row is in the next export
    again = client.get("/admin/audit/export.csv?action=audit_exported").get_data(as_text=True)
    assert "audit_exported" in again


@pytest.mark.parametrize("args", ["date_from=yesterday", "date_to=2024-02-30", "user=" + "x" * 300])
def test_audit_export_refuses_a_bad_filter(app, client, auth, args):
    auth.as_role("admin")
    response = client.get(f"/admin/audit/export.csv?{args}")
    assert response.status_code == 400 and "Bad filter" in response.get_data(as_text=True)
    assert exports_audited(app, "audit_exported") == []


def test_audit_export_is_for_audit_readers_only(client, auth):
    auth.as_role("qvp")
    assert client.get("/admin/audit/export.csv").status_code == 403
