"""Error pages for the browser and `{"success", "message", "data"}` bodies for the API."""

from __future__ import annotations

import re
import secrets

from flask import Flask, Response, current_app, g, jsonify, redirect, render_template, request, url_for
from flask_wtf.csrf import CSRFError
from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from werkzeug.exceptions import HTTPException

REQUEST_ID_HEADER = "X-Request-Id"
# An id set by the edge or a load balancer is kept when it looks like one (no header injection, bounded).
_INCOMING_ID = re.compile(r"[A-Za-z0-9._-]{8,64}")
# The driver could not reach the database or lost it: an outage, answered 503 rather than 500.
DATABASE_UNAVAILABLE = (OperationalError, InterfaceError, DisconnectionError, PoolTimeoutError)
RETRY_AFTER_SECONDS = 5

MESSAGES = {
    400: "The request could not be understood.",
    401: "Please log in to continue.",
    403: "You do not have permission to do that.",
    404: "There is nothing here.",
    405: "That action is not allowed on this page.",
    413: "What you sent is too large.",
    429: "Too many requests. Please wait a moment and try again.",
    500: "Something went wrong on our side. It has been logged.",
    503: "Slipway cannot reach its database right now. Please try again in a moment.",
}


def wants_json() -> bool:
    """API paths and clients that prefer JSON get JSON errors; browsers get pages."""
    if request.path.startswith("/api/"):
        return True
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "application/json"


def json_response(success: bool, message: str, data: object = None, status: int = 200) -> Response:
    """The one JSON envelope the API and the health check answer with."""
    response = jsonify({"success": success, "message": message, "data": data})
    response.status_code = status
    return response


def error_response(status: int, message: str | None = None) -> Response | tuple[str, int]:
    """Render an error as a page or JSON, whichever the client asked for."""
    text = message or MESSAGES.get(status, "Error")
    if status >= 500:
        text = f"{text} Reference: {request_id()}."
    if wants_json():
        return json_response(False, text, status=status)
    if status >= 500:
        # Rendering runs Flask-Login's context processor, which loads the user from the database:
        # the page for a server error (maybe the database itself) must not depend on it.
        from app.extensions import login_manager

        if "_login_user" not in g:
            g._login_user = login_manager.anonymous_user()
    return render_template("errors/error.html", status=status, message=text), status


def _handle_http(exc: HTTPException) -> Response | tuple[str, int]:
    status = exc.code or 500
    if status == 401 and not wants_json():
        return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
    message = MESSAGES.get(status)
    # An explicit description passed to abort() says more than the generic text.
    if exc.description and exc.description != type(exc).description:
        message = exc.description
    response = error_response(status, message)
    if status == 429 and getattr(exc, "retry_after", None):
        response = _with_header(response, "Retry-After", str(exc.retry_after))
    return response


def _with_header(response: Response | tuple[str, int], name: str, value: str) -> Response:
    from flask import make_response

    made = make_response(response)
    made.headers[name] = value
    return made


def _handle_csrf(exc: CSRFError) -> Response | tuple[str, int]:
    return error_response(
        400,
        "The form expired or was sent without its security token "
        f"({exc.description}). Go back, reload the page and try again.",
    )


def _rollback_quietly() -> None:
    from app.extensions import db

    try:
        db.session.rollback()
    except SQLAlchemyError:
        current_app.logger.warning("rollback failed after an error (request %s)", request_id(), exc_info=True)


def _handle_unexpected(exc: Exception) -> Response | tuple[str, int]:
    # app.logger writes to the WSGI error stream: gunicorn's error log in production.
    _rollback_quietly()
    if isinstance(exc, DATABASE_UNAVAILABLE):
        # An outage, not a bug: one line per request, no traceback flood while it lasts.
        cause = getattr(exc, "orig", None) or exc
        current_app.logger.error("database unavailable: %s %s (request %s, %s %s)", type(exc).__name__,
                                 cause, request_id(), request.method, request.path)
        return _with_header(error_response(503), "Retry-After", str(RETRY_AFTER_SECONDS))
    current_app.logger.error("unexpected error (request %s, %s %s)", request_id(), request.method,
                             request.path, exc_info=exc)
    return error_response(500)


def request_id() -> str:
    """This request's id (made on first use): logged with its errors, sent as X-Request-Id."""
    if "request_id" not in g:
        incoming = request.headers.get(REQUEST_ID_HEADER, "")
        g.request_id = incoming if _INCOMING_ID.fullmatch(incoming) else secrets.token_hex(8)
    return g.request_id


def _assign_request_id() -> None:
    request_id()


def _echo_request_id(response: Response) -> Response:
    response.headers[REQUEST_ID_HEADER] = request_id()
    return response


def _end_session_quietly(_exc: BaseException | None) -> None:
    from app.extensions import db

    try:
        db.session.remove()
    except SQLAlchemyError as exc:
        # The connection died mid-transaction (a database restart): the pool has dropped it, and
        # the answer already made must still reach the client rather than become a bare 500.
        current_app.logger.warning("could not end the database session (request %s): %s",
                                   g.get("request_id", "-"), getattr(exc, "orig", None) or exc)
        db.session.registry.clear()


def register_error_handlers(app: Flask) -> None:
    """Install the handlers on `app`; unexpected errors never show a stack trace."""
    app.before_request_funcs.setdefault(None, []).insert(0, _assign_request_id)
    app.after_request(_echo_request_id)
    # Registered after Flask-SQLAlchemy's own teardown, so it runs first and leaves that one nothing to do.
    app.teardown_appcontext(_end_session_quietly)
    app.register_error_handler(CSRFError, _handle_csrf)
    app.register_error_handler(HTTPException, _handle_http)
    if not app.debug:
        app.register_error_handler(Exception, _handle_unexpected)
