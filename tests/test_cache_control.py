"""Pages behind the login and API answers are never stored by a cache; static files may be."""

from __future__ import annotations

import pytest

from tests.support import bearer, create_key

STATIC_ENDPOINTS = {"static", "bootstrap.static"}
PROBES = {"main.health", "metrics.ready", "metrics.metrics"}  # for load balancers and Prometheus


def _plain_get_pages(app) -> list[str]:
    """Every GET page without URL parameters (the API and WebSocket routes aside)."""
    return sorted(
        rule.rule for rule in app.url_map.iter_rules()
        if "GET" in rule.methods and not rule.arguments and rule.endpoint not in STATIC_ENDPOINTS | PROBES
        and not rule.rule.startswith("/api/") and "stream" not in rule.endpoint
    )


@pytest.mark.parametrize("role", ["regular", "qvp", "admin"])
def test_every_page_behind_the_login_is_no_store(app, client, auth, role):
    auth.as_role(role)
    pages = _plain_get_pages(app)
    assert len(pages) >= 20
    opened = 0
    for url in pages:
        response = client.get(url)
        assert response.status_code < 500, url
        assert response.headers.get("Cache-Control") == "no-store", (role, url, response.status_code)
        opened += response.status_code == 200
    assert opened >= 5


def test_api_answers_are_no_store(app, client, auth):
    auth.as_role("regular", username="kim")
    key = create_key(client)
    api = app.test_client()
    for headers in (bearer(key), {}):
        response = api.get("/api/v1/me", headers=headers)
        assert response.status_code in (200, 401)
        assert response.headers.get("Cache-Control") == "no-store", response.status_code


def test_static_files_stay_cacheable(client):
    response = client.get("/static/css/app.css")
    assert response.status_code == 200
    assert "no-store" not in response.headers.get("Cache-Control", "")
