"""The agent's JSON envelope and its error type (never a stack trace on the wire)."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, jsonify
from werkzeug.exceptions import HTTPException

log = logging.getLogger("agent")


class AgentError(Exception):
    """An answer other than success: HTTP status plus a message safe to show the caller."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def bad_input(field: str, problem: str) -> AgentError:
    """A 400 whose message names the offending field."""
    return AgentError(400, f"{field}: {problem}")


def answer(
    data: Any = None, message: str = "ok", status: int = 200, success: bool = True
) -> tuple[Response, int]:
    """The `{"success", "message", "data"}` envelope."""
    return jsonify({"success": success, "message": message, "data": data if data is not None else {}}), status


def register_error_handlers(app: Flask) -> None:
    """Map AgentError, HTTP errors and anything unexpected to the JSON envelope."""

    @app.errorhandler(AgentError)
    def agent_error(exc: AgentError) -> tuple[Response, int]:
        """Answer an AgentError with its own status and message."""
        return answer(None, exc.message, exc.status, success=False)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> tuple[Response, int]:
        """Answer routing/method/size errors in the envelope."""
        return answer(None, exc.name, exc.code or 500, success=False)

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> tuple[Response, int]:
        """Log the traceback here; the caller only learns that something failed."""
        log.exception("unhandled error")
        return answer(None, "internal agent error", 500, success=False)
