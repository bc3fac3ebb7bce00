"""Schemathesis hooks for `make security`: how to send the NDJSON body of POST /api/v1/logs."""

from __future__ import annotations

import json
from typing import Any

import schemathesis


@schemathesis.serializer("application/x-ndjson")
def ndjson(_context: Any, value: Any) -> bytes:
    """The schema's body is a string of NDJSON lines: send it as is (anything else as one JSON line)."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8", "surrogatepass")
    return json.dumps(value).encode()
