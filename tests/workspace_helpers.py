"""Helpers for the workspace hand-off tests: open a link, exchange its token, run the owner check."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

HOST = "{}-vscode.ws.localhost"


def open_app(client, app_name="vscode", **query):
    response = client.get(f"/workspaces/open/{app_name}", query_string=query)
    assert response.status_code == 302, response.get_data(as_text=True)
    location = response.headers["Location"]
    parts = urlsplit(location)
    return parts, parse_qs(parts.query)["token"][0], response


def exchange(app, host, token):
    edge = app.test_client(use_cookies=False)
    return edge.get("/workspaces/edge/exchange", query_string={"token": token}, headers={"Host": host})


def cookie_of(response):
    header = response.headers["Set-Cookie"]
    return header.split(";", 1)[0], header


def check_auth(app, host, cookie=None):
    edge = app.test_client(use_cookies=False)
    headers = {"Host": host, **({"Cookie": cookie} if cookie else {})}
    return edge.get("/workspaces/_auth", headers=headers).status_code
