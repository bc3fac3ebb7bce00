"""A real threaded HTTP server for the app on a free 127.0.0.1 port (WebSocket tests)."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import requests
from flask import Flask
from werkzeug.serving import make_server

from tests.builders import PASSWORD


@contextmanager
def serve(app: Flask) -> Iterator[str]:
    """Serve `app` in a thread; yields its base URL and stops it afterwards."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(5)


def login(base_url: str, username: str, password: str = PASSWORD) -> requests.Session:
    """A requests session logged in through the real login form."""
    session = requests.Session()
    html = session.get(f"{base_url}/login", timeout=5).text
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html).group(1)
    response = session.post(f"{base_url}/login", timeout=5, allow_redirects=False,
                            data={"username": username, "password": password, "csrf_token": token})
    assert response.status_code == 302, response.text
    return session


def cookie_header(session: requests.Session) -> str:
    """The Cookie header value a browser would send."""
    return "; ".join(f"{c.name}={c.value}" for c in session.cookies)
