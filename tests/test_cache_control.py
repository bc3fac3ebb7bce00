"""Pages behind the login and API answers are never stored by a cache; static files may be."""

from __future__ import annotations

import pytest

from tests.test_api_keys import bearer, create_key
from tests.test_permissions import LOGIN_ONLY_ENDPOINTS, PERMISSIONS, _urls, protected_routes


@pytest.mark.parametrize("role", ["regular", "qvp", "admin"])
def test_every_page_a_role_can_open_is_no_store(app, client, auth, role):
    auth.as_role(role)
    pages = [url for method, url, permission in protected_routes(app)
             if method == "GET" and permission in PERMISSIONS[role] and not url.startswith("/api/")]
    pages += [url for method, url in _urls(app, LOGIN_ONLY_ENDPOINTS) if method == "GET"]
    assert len(pages) >= 5
    for url in pages:
        response = client.get(url)
        assert response.status_code < 500, url
        assert response.headers.get("Cache-Control") == "no-store", (role, url, response.status_code)


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
