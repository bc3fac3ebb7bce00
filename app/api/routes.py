"""JSON API: `{"success", "message", "data"}` answers; authentication is by bearer API key only."""

from __future__ import annotations

from flask import Blueprint, abort, current_app, g, jsonify
from flask_login import current_user
from werkzeug.wrappers import Response

from app.api import openapi
from app.api.auth import api_scope, authenticate_request
from app.errors import json_response
from app.extensions import csrf, db, limiter
from app.models import ApiKey
from app.security import clock
from app.services import audit

bp = Blueprint("api", __name__, url_prefix="/api/v1")
# The API authenticates with bearer keys, never session cookies, so CSRF does not apply.
csrf.exempt(bp)
bp.before_request(authenticate_request)
limiter.limit(lambda: current_app.config["RATELIMIT_API"], error_message="Too many API requests.")(bp)

USER_SCHEMA = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "username": {"type": "string"},
        "email": {"type": "string"},
        "role": {"type": "string", "enum": ["admin", "qvp", "regular"]},
        "mfa_enabled": {"type": "boolean"},
        "key": {
            "type": "object",
            "properties": {
                "prefix": {"type": "string"},
                "scope": {"type": "string", "enum": ["read", "write"]},
            },
        },
    },
}


@bp.route("/")
def index() -> Response:
    """Name and version of the API."""
    return json_response(True, "Slipway API", {"version": 1})


@bp.route("/openapi.json")
def openapi_document() -> Response:
    """The OpenAPI 3.1 document describing this API (plain, not wrapped in the envelope)."""
    return jsonify(openapi.DOCUMENT)


@bp.route("/me")
@api_scope("read")
def me() -> Response:
    """The user the API key belongs to."""
    key = g.api_key
    return json_response(
        True,
        "ok",
        {
            "id": current_user.id,
            "username": current_user.username,
            "email": current_user.email,
            "role": current_user.role,
            "mfa_enabled": current_user.mfa_enabled,
            "key": {"prefix": key.prefix, "scope": key.scope},
        },
    )


@bp.route("/keys/<int:key_id>/revoke", methods=["POST"])
@api_scope("write")
def revoke_key(key_id: int) -> Response:
    """Revoke one of your own API keys (another user's answers 404)."""
    key = db.session.get(ApiKey, key_id)
    if key is None or key.user_id != current_user.id:
        abort(404)
    if key.revoked_at is None:
        key.revoked_at = clock.now()
        audit.record(
            "api_key_revoked", current_user.username, {"prefix": key.prefix, "via": "api"}, source="api"
        )
        db.session.commit()
    return json_response(True, "revoked", {"id": key.id, "prefix": key.prefix})


openapi.add_path(
    "/", "get", {"summary": "API name and version", "responses": openapi.ok("Version")}, public=True
)
openapi.add_path(
    "/openapi.json",
    "get",
    {"summary": "This document", "responses": {"200": {"description": "OpenAPI"}}},
    public=True,
)
openapi.add_path(
    "/me", "get", {"summary": "The key's user", "responses": openapi.ok("The user", USER_SCHEMA)}
)
openapi.add_path(
    "/keys/{key_id}/revoke",
    "post",
    {
        "summary": "Revoke one of your API keys (write scope)",
        "parameters": [{"name": "key_id", "in": "path", "required": True, "schema": {"type": "integer"}}],
        "responses": {**openapi.ok("Revoked"), "404": {"description": "No such key of yours"}},
    },
)
