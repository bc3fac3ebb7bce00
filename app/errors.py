"""Error pages for the browser and `{"success", "message", "data"}` bodies for the API."""

from __future__ import annotations

from flask import Flask, Response, jsonify, redirect, render_template, request, url_for
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

MESSAGES = {
    400: "The request could not be understood.",
    401: "Please log in to continue.",
    403: "You do not have permission to do that.",
    404: "There is nothing here.",
    405: "That action is not allowed on this page.",
    413: "What you sent is too large.",
    429: "Too many requests. Please wait a moment and try again.",
    500: "Something went wrong on our side. It has been logged.",
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
    if wants_json():
        return json_response(False, text, status=status)
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


def _handle_unexpected(exc: Exception) -> Response | tuple[str, int]:
    from app.extensions import db

    db.session.rollback()
    return error_response(500)


def register_error_handlers(app: Flask) -> None:
    """Install the handlers on `app`; unexpected errors never show a stack trace."""
    app.register_error_handler(CSRFError, _handle_csrf)
    app.register_error_handler(HTTPException, _handle_http)
    if not app.debug:
        app.register_error_handler(Exception, _handle_unexpected)
