"""The OpenAPI document of /api/v1, kept as data: each area adds its paths with `add_path`."""

from __future__ import annotations

import copy
from typing import Any

ENVELOPE: dict[str, Any] = {
    "type": "object",
    "required": ["success", "message", "data"],
    "properties": {
        "success": {"type": "boolean"},
        "message": {"type": "string"},
        "data": {},
    },
}

DOCUMENT: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "Slipway API",
        "version": "1",
        "description": "Every answer is {success, message, data}. Authenticate with an API key "
        "created on /account/api-keys: 'Authorization: Bearer <key>'. Session cookies are not accepted.",
    },
    "servers": [{"url": "/api/v1"}],
    "components": {
        "securitySchemes": {"apiKey": {"type": "http", "scheme": "bearer"}},
        "schemas": {"Envelope": ENVELOPE},
        "responses": {
            "Unauthorized": {"description": "No valid, unexpired, unrevoked API key."},
            "Forbidden": {"description": "The key's scope or the user's role does not allow this."},
            "TooManyRequests": {"description": "Rate limited; see the Retry-After header."},
        },
    },
    "security": [{"apiKey": []}],
    "paths": {},
}


def add_path(path: str, method: str, operation: dict[str, Any], *, public: bool = False) -> None:
    """Describe `method path` (path relative to /api/v1); standard error responses are added."""
    op = copy.deepcopy(operation)
    responses = op.setdefault("responses", {})
    responses.setdefault("429", {"$ref": "#/components/responses/TooManyRequests"})
    if public:
        op["security"] = []
    else:
        responses.setdefault("401", {"$ref": "#/components/responses/Unauthorized"})
        responses.setdefault("403", {"$ref": "#/components/responses/Forbidden"})
    DOCUMENT["paths"].setdefault(path, {})[method.lower()] = op


def ok(description: str, data_schema: dict[str, Any] | None = None) -> dict[str, Any]:
    """A 200 response whose envelope's `data` follows `data_schema`."""
    schema: dict[str, Any] = {"allOf": [{"$ref": "#/components/schemas/Envelope"}]}
    if data_schema is not None:
        schema["allOf"].append({"type": "object", "properties": {"data": data_schema}})
    return {"200": {"description": description, "content": {"application/json": {"schema": schema}}}}
