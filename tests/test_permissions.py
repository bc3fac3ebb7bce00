"""The permission matrix: every protected route for every role, and no route left unguarded."""

from __future__ import annotations

import pytest

from app.permissions import PERMISSIONS, can, permission_required
from tests.conftest import csrf_token

PUBLIC_ENDPOINTS = {
    "static",
    "bootstrap.static",
    "main.index",
    "main.health",
    "auth.login",
    "auth.register",
    "api.index",
    # workspace hosts (via nginx): authorised by the hand-off token or the workspace cookie
    "workspace_edge.check",
    "workspace_edge.exchange",
    "workspace_edge.login",
    "workspace_edge.forbidden",
    "workspace_edge.stopped",
    "api.openapi_document",
    # the second login step: reachable only with a half-logged-in session (tests/test_mfa.py)
    "auth.mfa_verify",
    "auth.mfa_setup",
}
# A user's own security pages: any logged-in user, for their own account only.
ACCOUNT_ENDPOINTS = {
    "account.overview",
    "account.change_password",
    "account.mfa_setup",
    "account.mfa_disable",
    "account.regenerate_codes",
    "account.sessions",
    "account.revoke_session",
    "account.revoke_other_sessions",
    "account.api_keys",
    "account.revoke_api_key",
}
LOGIN_ONLY_ENDPOINTS = ACCOUNT_ENDPOINTS | {
    "auth.logout",
    "auth.pending",
    "users.home",
    # a user's own workspace only
    "workspaces.home",
    "workspaces.lifecycle",
    "workspaces.open_app",
    # a task is visible to whoever asked for it (others get 404) and to view_tasks holders
    "tasks.detail",
    "tasks.cancel",
    "tasks.retry",
    "tasks.stream",
    # the navbar's areas as a page, for browsers without JavaScript
    "main.menu",
    # one log entry: its reader's own (404 otherwise) or within the view_logs fence (tests/test_logs_pages.py)
    "logs.entry",
    # the live log stream checks Origin, session and view_logs before the upgrade (tests/test_logs_live.py)
    "logs.stream",
}


def protected_routes(app):
    """(method, url, permission) for every view guarded by permission_required."""
    routes = []
    for rule in app.url_map.iter_rules():
        view = app.view_functions[rule.endpoint]
        permission = getattr(view, "required_permission", None)
        if permission is None:
            continue
        url = rule.rule
        for arg in rule.arguments:
            url = url.replace(f"<int:{arg}>", "99999").replace(f"<{arg}>", "missing")
        method = "POST" if "POST" in rule.methods else "GET"
        routes.append((method, url, permission))
    return routes


def test_every_route_is_public_login_only_or_permission_guarded(app):
    for rule in app.url_map.iter_rules():
        view = app.view_functions[rule.endpoint]
        guarded = hasattr(view, "required_permission") or hasattr(view, "required_scope")
        known = rule.endpoint in PUBLIC_ENDPOINTS | LOGIN_ONLY_ENDPOINTS
        assert guarded or known, f"{rule.endpoint} declares no permission"


@pytest.mark.parametrize("role", ["anonymous", "regular", "qvp", "admin"])
def test_permission_matrix(app, client, auth, role):
    if role != "anonymous":
        auth.as_role(role)
    token = csrf_token(client)
    routes = protected_routes(app)
    assert len(routes) >= 10
    for method, url, permission in routes:
        if method == "POST":
            response = client.post(url, data={"csrf_token": token})
        else:
            response = client.get(url)
        if url.startswith("/api/"):
            assert response.status_code == 401, (role, url)  # the API ignores session cookies
        elif role == "anonymous":
            assert response.status_code == 302 and "/login" in response.headers["Location"], url
        elif permission in PERMISSIONS[role]:
            assert response.status_code not in (302, 401, 403), (role, url, response.status_code)
        else:
            assert response.status_code == 403, (role, url, response.status_code)


def _urls(app, endpoints):
    for rule in app.url_map.iter_rules():
        if rule.endpoint in endpoints:
            url = rule.rule
            for arg in rule.arguments:
                url = url.replace(f"<int:{arg}>", "99999").replace(f"<{arg}>", "missing")
            yield ("POST" if "POST" in rule.methods else "GET"), url


def test_account_pages_need_a_login(app, client):
    token = csrf_token(client)
    urls = list(_urls(app, ACCOUNT_ENDPOINTS))
    assert len(urls) == len(ACCOUNT_ENDPOINTS)
    for method, url in urls:
        response = client.post(url, data={"csrf_token": token}) if method == "POST" else client.get(url)
        assert response.status_code == 302 and "/login" in response.headers["Location"], url


@pytest.mark.parametrize("role", ["regular", "qvp", "admin"])
def test_api_scoped_routes_refuse_a_session_cookie(app, client, auth, role):
    auth.as_role(role)
    views = app.view_functions
    scoped = {r.endpoint for r in app.url_map.iter_rules() if hasattr(views[r.endpoint], "required_scope")}
    assert "api.me" in scoped
    for method, url in _urls(app, scoped):
        response = client.post(url) if method == "POST" else client.get(url)
        assert response.status_code == 401, url
        assert response.get_json()["success"] is False


def test_forbidden_json_client_gets_json(app, client, auth):
    auth.as_role("regular")
    response = client.get("/admin/users", headers={"Accept": "application/json"})
    assert response.status_code == 403
    assert response.get_json() == {
        "success": False,
        "message": "You do not have permission to do that.",
        "data": None,
    }


def test_unknown_permission_fails_when_applied():
    with pytest.raises(KeyError):
        permission_required("manage_usres")
    with pytest.raises(KeyError):
        can(object(), "nope")


def test_matrix_matches_design():
    assert PERMISSIONS["qvp"] == {
        "view_dashboard",
        "view_servers",
        "view_images",
        "build_images",
        "push_images",
        "view_tasks",
        "view_logs",
    }
    assert PERMISSIONS["regular"] == frozenset()
    assert PERMISSIONS["qvp"] < PERMISSIONS["admin"]


# Images area: forms whose GET the matrix above does not reach (it POSTs to GET+POST rules).
IMAGE_ROUTES = [
    ("GET", "/images/", {"qvp": 200, "admin": 200, "regular": 403}),
    ("GET", "/images/build", {"qvp": 200, "admin": 200, "regular": 403}),
    ("POST", "/images/build", {"qvp": 400, "admin": 400, "regular": 403}),
    ("GET", "/images/push", {"qvp": 200, "admin": 200, "regular": 403}),
    ("GET", "/images/uploads", {"qvp": 200, "admin": 200, "regular": 403}),
    ("POST", "/images/99999/delete", {"qvp": 403, "admin": 404, "regular": 403}),
    ("POST", "/images/uploads/99999/delete", {"qvp": 403, "admin": 404, "regular": 403}),
    ("GET", "/images/registries", {"qvp": 403, "admin": 200, "regular": 403}),
    ("GET", "/images/policy", {"qvp": 403, "admin": 200, "regular": 403}),
    ("GET", "/images/workspace-images", {"qvp": 403, "admin": 200, "regular": 403}),
]


@pytest.mark.parametrize("role", ["regular", "qvp", "admin"])
def test_images_routes_by_role(client, auth, role):
    auth.as_role(role)
    token = csrf_token(client)
    for method, url, expected in IMAGE_ROUTES:
        if method == "POST":
            response = client.post(url, data={"csrf_token": token})
        else:
            response = client.get(url)
        assert response.status_code == expected[role], (role, method, url, response.status_code)
