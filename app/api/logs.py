"""`POST /api/v1/logs`: log shippers post NDJSON batches with a `logs:write` key.

A batch is accepted partly: the good lines are stored in one commit and each bad line is listed
with its line number and reason (200). When no line is good nothing is stored (400). A batch
over the byte or line limit is refused whole before any line is parsed (413). Rules are not run
here: the worker evaluates new entries after its cursor.
"""

from __future__ import annotations

from datetime import timedelta

from flask import abort, current_app, request
from flask_login import current_user
from werkzeug.wrappers import Response

from app.api import openapi
from app.api.auth import LOGS_SCOPE, api_scope
from app.api.routes import bp
from app.errors import json_response
from app.extensions import db
from app.logs import ndjson
from app.logs.store import add_entries
from app.permissions import can
from app.timeutil import utcnow

CONTENT_TYPES = ("application/x-ndjson", "application/ndjson")


def _limits() -> ndjson.Limits:
    config = current_app.config
    return ndjson.Limits(
        max_lines=config["LOGS_INGEST_MAX_LINES"],
        field_max_bytes=config["LOGS_INGEST_FIELD_MAX_BYTES"],
        max_age=timedelta(days=config["LOGS_INGEST_MAX_AGE_DAYS"]),
        max_future=timedelta(seconds=config["LOGS_INGEST_MAX_FUTURE_SECONDS"]),
    )


def _refuse(status: int, message: str) -> Response:
    return json_response(False, message, {"accepted": 0, "rejected": []}, status)


def _body(max_bytes: int) -> bytes | None:
    """The request body, or None when it is larger than `max_bytes` (read no further than that)."""
    if request.content_length is not None and request.content_length > max_bytes:
        return None
    request.max_content_length = max(max_bytes, request.max_content_length or 0)
    body = request.stream.read(max_bytes + 1)
    return None if len(body) > max_bytes else body


@bp.route("/logs", methods=["POST"])
@api_scope(LOGS_SCOPE)
def ingest_logs() -> Response:
    """Store the good lines of an NDJSON batch; list the bad ones with their line numbers."""
    if not can(current_user, "ship_logs"):
        abort(403, "Only an admin's logs:write key may ship logs (they are visible organisation-wide).")
    mimetype = request.mimetype
    if mimetype not in CONTENT_TYPES:
        sent = mimetype or "nothing"
        return _refuse(415, f"Send the batch as Content-Type: application/x-ndjson, not {sent}.")
    if request.headers.get("Content-Encoding", "identity").lower() != "identity":
        return _refuse(415, "Compressed bodies are not accepted; send the NDJSON uncompressed.")
    max_bytes = current_app.config["LOGS_INGEST_MAX_BYTES"]
    body = _body(max_bytes)
    if body is None:
        return _refuse(413, f"A batch may hold at most {max_bytes} bytes; split it.")
    try:
        parsed = ndjson.parse_batch(body, utcnow(), _limits())
    except ndjson.TooManyLines as exc:
        return _refuse(413, f"{str(exc).capitalize()}; split it.")
    data = {"accepted": len(parsed.entries), "rejected": parsed.rejected}
    if not parsed.entries:
        message = "No line was accepted; nothing stored." if parsed.rejected else "The batch holds no lines."
        return json_response(False, message, data, 400)
    add_entries(parsed.entries)
    db.session.commit()
    if parsed.rejected:
        message = f"{len(parsed.entries)} lines stored, {len(parsed.rejected)} rejected (listed)."
        return json_response(False, message, data)
    return json_response(True, f"{len(parsed.entries)} lines stored.", data)


INGEST_RESULT = {
    "type": "object",
    "properties": {
        "accepted": {"type": "integer", "description": "lines stored"},
        "rejected": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"line": {"type": "integer"}, "reason": {"type": "string"}},
            },
        },
    },
}

openapi.add_path(
    "/logs",
    "post",
    {
        "summary": "Ship a batch of log lines (logs:write scope, admins' keys only)",
        "description": (
            "The body is NDJSON: one JSON object per line with `ts` (RFC 3339 with a zone, or epoch "
            "seconds; at most 5 minutes ahead and no older than the ingest age limit), `source` "
            "(1-64 of letters, digits, `._-`; `slipway`, `agent`, `audit` and `task` are reserved), "
            "`level` (debug, info, warning, error, critical), `message`, and optionally `host` and "
            "`fields` (a flat object of strings, numbers, booleans or null). Other keys are refused. "
            "Stored entries get the category `ingest`. Partial accept: the good lines are stored in "
            "one commit and each bad line is listed with its 1-based line number and reason; the "
            "answer is 200 with `success` true only when every line was stored. When no line is good "
            "nothing is stored and the answer is 400. A batch over the byte or line limit (default "
            "5 MiB, 10,000 lines) answers 413 naming the limit and stores nothing; a field over its "
            "byte limit (default 4000) rejects that line. Rules run later in the worker."
        ),
        "requestBody": {
            "required": True,
            "content": {"application/x-ndjson": {"schema": {"type": "string"}}},
        },
        "responses": {
            **openapi.ok("Stored (every line, or some with the rest listed)", INGEST_RESULT),
            "400": {"description": "No line was accepted (the reasons are listed); nothing stored"},
            "413": {"description": "Over the byte or line limit of one batch; nothing stored"},
            "415": {"description": "Not application/x-ndjson, or compressed"},
        },
    },
)
