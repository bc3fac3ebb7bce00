"""Security headers on every response: a strict CSP, no framing, no sniffing, no banners.

Everything but static files is sent with `Cache-Control: no-store`: pages behind the login and
API answers carry private data, and a shared or back-button cache must not keep them.
"""

from __future__ import annotations

from flask import Flask, Response, current_app, request

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'; "
    "object-src 'none'"
)


def add_security_headers(response: Response) -> Response:
    """Set the hardening headers (HSTS only when served over HTTPS)."""
    headers = response.headers
    headers.setdefault("Content-Security-Policy", CSP)
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Referrer-Policy", "same-origin")
    if current_app.config.get("HTTPS"):
        headers.setdefault("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
    headers.pop("Server", None)
    if not _is_static():
        headers["Cache-Control"] = "no-store"
    return response


def _is_static() -> bool:
    """True for the app's static files and an extension's (e.g. `bootstrap.static`)."""
    endpoint = request.endpoint or ""
    return endpoint == "static" or endpoint.endswith(".static")


def init_security_headers(app: Flask) -> None:
    """Register the header hook on `app`."""
    app.after_request(add_security_headers)
