"""The permission matrix: one case per (route, method, role) with the exact answer expected.

Every rule of app.url_map must have a row in ROUTES (a new route fails
`test_every_route_has_an_expectation` until it gets one). A case logs in as the role,
builds the objects the URL names with tests/builders.py, and sends the request (POSTs
with a valid CSRF token and no other fields). Anonymous pages redirect to the login,
the API answers 401; a role outside the allowed set gets 403; an allowed role gets the
route's own answer (always < 500); another user's object answers 404.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import pytest
from flask import Flask, url_for
from flask.testing import FlaskClient

from app.extensions import db
from app.models import User
from app.permissions import PERMISSIONS, can, permission_required
from tests.builders import (
    make_alert,
    make_alert_rule,
    make_api_key,
    make_ban,
    make_build_template,
    make_log_entry,
    make_registry,
    make_server,
    make_session,
    make_task,
    make_upload,
    make_user,
    make_workspace,
    make_workspace_image,
)
from tests.support import AuthActions, build_app, csrf_token

ROLES = ("anonymous", "regular", "qvp", "admin")
EVERYONE = frozenset(ROLES)
USERS = frozenset({"regular", "qvp", "admin"})
STAFF = frozenset({"qvp", "admin"})
ADMIN = frozenset({"admin"})
API = frozenset({"apikey"})  # a bearer API key; session cookies get 401 from the API


@dataclass(frozen=True)
class Expect:
    """Who may call a route, what they get, and whether a regular user may aim it at another's object."""

    allowed: frozenset[str]
    status: int
    others_get_404: bool = False
    signed_in: int | None = None  # what a logged-in caller gets from a public page, when it differs
    data: dict[str, str] | None = None  # form fields sent beside the CSRF token
    query: str = ""
    host: str | None = None  # workspace-host views answer only on a workspace host
    headers: dict[str, str] | None = None
    over_real_socket: bool = False  # the test client cannot complete it: allowed roles are proven live


WS_HOST = "tenant-vscode.ws.localhost:8080"
HANDSHAKE = {"Origin": "http://localhost", "Upgrade": "websocket", "Connection": "Upgrade",
             "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version": "13"}

# (endpoint, method) -> Expect. A POST without `data` carries the CSRF token only: one-button
# actions answer 302, a form with missing fields is shown again (200) or refused (400).
ROUTES: dict[tuple[str, str], Expect] = {
    ("main.index", "GET"): Expect(EVERYONE, 302),
    ("main.health", "GET"): Expect(EVERYONE, 200),
    ("static", "GET"): Expect(EVERYONE, 200),
    ("bootstrap.static", "GET"): Expect(EVERYONE, 200),
    ("auth.login", "GET"): Expect(EVERYONE, 200, signed_in=302),
    ("auth.login", "POST"): Expect(EVERYONE, 200, signed_in=302),
    ("auth.register", "GET"): Expect(EVERYONE, 200, signed_in=302),
    ("auth.register", "POST"): Expect(EVERYONE, 200, signed_in=302),
    ("auth.forgot_password", "GET"): Expect(EVERYONE, 200),
    ("auth.forgot_password", "POST"): Expect(EVERYONE, 200),
    ("auth.reset_password", "GET"): Expect(EVERYONE, 404),
    ("auth.reset_password", "POST"): Expect(EVERYONE, 404),
    ("auth.mfa_verify", "GET"): Expect(EVERYONE, 302),
    ("auth.mfa_verify", "POST"): Expect(EVERYONE, 302),
    ("auth.mfa_setup", "GET"): Expect(EVERYONE, 302),
    ("auth.mfa_setup", "POST"): Expect(EVERYONE, 302),
    ("auth.logout", "POST"): Expect(USERS, 302),
    ("auth.pending", "GET"): Expect(USERS, 302),
    ("users.home", "GET"): Expect(USERS, 302),  # old address of the workspace page
    ("main.menu", "GET"): Expect(USERS, 200),
    ("account.overview", "GET"): Expect(USERS, 200),
    ("account.change_password", "GET"): Expect(USERS, 200),
    ("account.change_password", "POST"): Expect(USERS, 200),
    ("account.mfa_setup", "GET"): Expect(USERS, 200),
    ("account.mfa_setup", "POST"): Expect(USERS, 200),
    ("account.mfa_disable", "POST"): Expect(USERS, 302),
    ("account.regenerate_codes", "POST"): Expect(USERS, 302),
    ("account.sessions", "GET"): Expect(USERS, 200),
    ("account.revoke_session", "POST"): Expect(USERS, 302, others_get_404=True),
    ("account.revoke_other_sessions", "POST"): Expect(USERS, 302),
    ("account.api_keys", "GET"): Expect(USERS, 200),
    ("account.api_keys", "POST"): Expect(USERS, 200),
    ("account.revoke_api_key", "POST"): Expect(USERS, 302, others_get_404=True),
    ("account.mail_preferences", "GET"): Expect(USERS, 200),
    ("account.mail_preferences", "POST"): Expect(USERS, 302),
    ("workspaces.home", "GET"): Expect(USERS, 200),
    ("workspaces.lifecycle", "POST"): Expect(USERS, 302),
    ("workspaces.open_app", "GET"): Expect(USERS, 302),
    ("connections.index", "GET"): Expect(USERS, 200),  # admins see everyone's, others their own
    ("connections.keep_running", "POST"): Expect(USERS, 302, data={"keep": "on"}),
    ("workspace_edge.check", "GET"): Expect(EVERYONE, 401, host=WS_HOST),
    ("workspace_edge.edge_routes", "GET"): Expect(EVERYONE, 401),  # edges sign their requests
    ("workspace_edge.exchange", "GET"): Expect(EVERYONE, 400, host=WS_HOST),
    ("workspace_edge.login", "GET"): Expect(EVERYONE, 302, host=WS_HOST),
    ("workspace_edge.forbidden", "GET"): Expect(EVERYONE, 403, host=WS_HOST),
    ("workspace_edge.stopped", "GET"): Expect(EVERYONE, 302, host=WS_HOST),  # the workspace runs
    ("tasks.index", "GET"): Expect(STAFF, 200),
    ("tasks.detail", "GET"): Expect(USERS, 200, others_get_404=True),
    ("tasks.cancel", "POST"): Expect(USERS, 302, others_get_404=True),
    ("tasks.retry", "POST"): Expect(USERS, 302, others_get_404=True),
    ("tasks.stream", "GET"): Expect(
        USERS, 101, others_get_404=True, headers=HANDSHAKE, over_real_socket=True
    ),
    ("admin.dashboard", "GET"): Expect(STAFF, 200),
    ("admin.approvals", "GET"): Expect(ADMIN, 200),
    ("admin.audit_log", "GET"): Expect(ADMIN, 200),
    ("admin.users", "GET"): Expect(ADMIN, 200),
    ("admin.user_detail", "GET"): Expect(ADMIN, 200),
    ("admin.approve", "POST"): Expect(ADMIN, 302),
    ("admin.reject", "POST"): Expect(ADMIN, 302),
    ("admin.delete_user", "POST"): Expect(ADMIN, 302),
    ("admin.reset_password", "POST"): Expect(ADMIN, 302),
    ("admin.change_role", "POST"): Expect(ADMIN, 302, data={"role": "qvp"}),
    ("admin.suspend_user", "POST"): Expect(ADMIN, 302),
    ("admin.reinstate_user", "POST"): Expect(ADMIN, 302),
    ("security_admin.overview", "GET"): Expect(ADMIN, 200),
    ("security_admin.ban_ip", "POST"): Expect(
        ADMIN, 302, data={"ip_address": "198.51.100.77", "reason": "matrix", "hours": "1"}
    ),
    ("security_admin.unban", "POST"): Expect(ADMIN, 302),
    ("security_admin.mfa_policy", "POST"): Expect(
        ADMIN, 302, data={"admin": "optional", "qvp": "optional", "regular": "optional"}
    ),
    ("security_admin.end_user_sessions", "POST"): Expect(ADMIN, 302),
    ("security_admin.unlock_user", "POST"): Expect(ADMIN, 302),
    ("workspace_admin.index", "GET"): Expect(ADMIN, 200),
    ("workspace_admin.lifecycle", "POST"): Expect(ADMIN, 302),
    ("workspace_admin.provision", "GET"): Expect(ADMIN, 200),
    ("workspace_admin.provision", "POST"): Expect(ADMIN, 302),
    ("workspace_admin.reconcile", "POST"): Expect(ADMIN, 303),
    ("servers.index", "GET"): Expect(STAFF, 200),
    ("servers.detail", "GET"): Expect(STAFF, 200),
    ("servers.add", "GET"): Expect(ADMIN, 200),
    ("servers.add", "POST"): Expect(ADMIN, 200),
    ("servers.edit", "GET"): Expect(ADMIN, 200),
    ("servers.edit", "POST"): Expect(ADMIN, 302),
    ("servers.test_connection", "POST"): Expect(ADMIN, 302),
    ("servers.delete", "POST"): Expect(ADMIN, 302),
    ("images.index", "GET"): Expect(STAFF, 200),
    ("images.detail", "GET"): Expect(STAFF, 302, query="ref=slipway/test-workspace:latest"),
    ("images.delete", "POST"): Expect(ADMIN, 302),
    ("images.build", "GET"): Expect(STAFF, 200),
    ("images.build", "POST"): Expect(STAFF, 400),
    ("images.push", "GET"): Expect(STAFF, 200),
    ("images.push", "POST"): Expect(STAFF, 400),
    ("images.pull", "GET"): Expect(STAFF, 200),
    ("images.pull", "POST"): Expect(STAFF, 400),
    ("images.uploads", "GET"): Expect(STAFF, 200),
    ("images.upload", "POST"): Expect(STAFF, 400),
    ("images.import_upload", "POST"): Expect(STAFF, 302),
    ("images.delete_upload", "POST"): Expect(ADMIN, 302),
    ("images.policy", "GET"): Expect(ADMIN, 200),
    ("images.policy", "POST"): Expect(ADMIN, 400),
    ("images.workspace_images", "GET"): Expect(ADMIN, 200),
    ("images.workspace_images", "POST"): Expect(ADMIN, 400),
    ("images.delete_workspace_image", "POST"): Expect(ADMIN, 302),
    ("images.templates", "GET"): Expect(ADMIN, 200),
    ("images.new_template", "GET"): Expect(ADMIN, 200),
    ("images.new_template", "POST"): Expect(ADMIN, 400),
    ("images.edit_template", "GET"): Expect(ADMIN, 200),
    ("images.edit_template", "POST"): Expect(ADMIN, 302),  # the saved values are kept
    ("images.delete_template_view", "POST"): Expect(ADMIN, 302),
    ("images.registries", "GET"): Expect(ADMIN, 200),
    ("images.registries", "POST"): Expect(ADMIN, 400),
    ("images.edit_registry", "GET"): Expect(ADMIN, 200),
    ("images.edit_registry", "POST"): Expect(ADMIN, 302, data={"name": "local", "host": "127.0.0.1:5000"}),
    ("images.test_registry", "POST"): Expect(ADMIN, 302),
    ("images.delete_registry", "POST"): Expect(ADMIN, 302),
    ("logs.rules", "GET"): Expect(ADMIN, 200),
    ("logs.rule_new", "GET"): Expect(ADMIN, 200),
    ("logs.rule_new", "POST"): Expect(ADMIN, 200),
    ("logs.rule_edit", "GET"): Expect(ADMIN, 200),
    ("logs.rule_edit", "POST"): Expect(ADMIN, 200),
    ("logs.rule_toggle", "POST"): Expect(ADMIN, 302),
    ("logs.rule_delete", "POST"): Expect(ADMIN, 302),
    ("traffic.index", "GET"): Expect(ADMIN, 200),
    ("logs.index", "GET"): Expect(STAFF, 200),
    ("logs.live", "GET"): Expect(STAFF, 200),
    ("logs.entry", "GET"): Expect(USERS, 200, others_get_404=True),  # one's own entries, or view_logs
    ("logs.export_csv", "GET"): Expect(STAFF, 200),
    ("logs.export_ndjson", "GET"): Expect(STAFF, 200),
    ("logs.stream", "GET"): Expect(STAFF, 101, headers=HANDSHAKE, over_real_socket=True),
    ("logs.alerts_index", "GET"): Expect(STAFF, 200),
    ("logs.alert_detail", "GET"): Expect(STAFF, 200),
    ("logs.alert_acknowledge", "POST"): Expect(ADMIN, 302),
    ("logs.alert_resolve", "POST"): Expect(ADMIN, 302),
    ("admin.audit_export_csv", "GET"): Expect(ADMIN, 200),
    ("metrics.metrics", "GET"): Expect(EVERYONE, 404),  # no token or allow-list configured
    ("metrics.ready", "GET"): Expect(EVERYONE, 503),  # no worker heartbeat in the matrix app
    ("api.index", "GET"): Expect(EVERYONE | API, 200),
    ("api.openapi_document", "GET"): Expect(EVERYONE | API, 200),
    ("api.me", "GET"): Expect(API, 200),
    ("api.revoke_key", "POST"): Expect(API, 200),
    ("api.ingest_logs", "POST"): Expect(API, 403),  # the matrix's key has scope write, not logs:write
}

# URL values for rules whose arguments are not objects of the world.
PLAIN_VALUES = {
    ("static", "filename"): "css/app.css",
    ("bootstrap.static", "filename"): "css/bootstrap.min.css",
    ("workspaces.lifecycle", "action"): "stop",
    ("workspace_admin.lifecycle", "action"): "stop",
    ("workspaces.open_app", "app"): "vscode",
    ("auth.reset_password", "token"): "no-such-token",
}


def _cases() -> list[Any]:
    cases = []
    for (endpoint, method), expect in ROUTES.items():
        callers = ROLES + (("apikey",) if endpoint.startswith("api.") else ())
        for role in callers:
            if expect.over_real_socket and role in expect.allowed:
                continue  # tests/test_task_pages.py streams to the owner over a live server
            cases.append(pytest.param(endpoint, method, role, id=f"{endpoint}-{method}-{role}"))
        if expect.others_get_404:
            cases.append(pytest.param(endpoint, method, "other", id=f"{endpoint}-{method}-other"))
    return cases


def _world(app: Flask, me_id: int | None, owner_name: str | None) -> dict[str, int]:
    """Build every object a URL can name; owned objects belong to the user named `owner_name`."""
    with app.app_context():
        server = make_server()
        target = make_user("target", status="pending")
        target_ws = make_workspace(make_user("tenant"), server)
        owner = db.session.get(User, me_id) if owner_name is None and me_id else None
        if owner_name is not None:
            owner = make_user(owner_name)
        ids = {
            "server_id": server.id,
            "user_id": target.id,
            "ws_id": target_ws.id,
            "ban_id": make_ban().id,
            "registry_id": make_registry().id,
            "upload_id": make_upload("builder").id,
            "image_id": make_workspace_image().id,
            "template_id": make_build_template().id,
            "rule_id": make_alert_rule().id,
        }
        if owner is not None:
            if me_id is not None and owner.id == me_id:
                make_workspace(owner, server)
            ids["task_id"] = make_task(owner.username).id
            ids["session_id"] = make_session(owner).id
            ids["key_id"] = make_api_key(owner, scope="write")[0].id
            ids["entry_id"] = make_log_entry(owner.username).id
            ids["alert_id"] = make_alert(owner.username).id
        else:
            ids.update(task_id=99999, session_id=99999, key_id=99999, entry_id=99999, alert_id=99999)
        return ids


def _url(app: Flask, endpoint: str, ids: dict[str, int]) -> str:
    [rule] = [r for r in app.url_map.iter_rules() if r.endpoint == endpoint]
    values = {arg: PLAIN_VALUES.get((endpoint, arg), ids.get(arg)) for arg in rule.arguments}
    assert None not in values.values(), f"no value for an argument of {rule.rule}"
    with app.test_request_context():
        # a WebSocket rule builds an absolute ws:// URL; the handshake is a GET to its path
        return urlsplit(url_for(endpoint, **values)).path


@pytest.fixture(scope="module")
def matrix_app(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flask]:
    """One app for the whole matrix (building one per case would compile every template again)."""
    yield build_app(database_url, tmp_path_factory.mktemp("matrix"))


@pytest.fixture
def app(matrix_app: Flask) -> Iterator[Flask]:
    """The module's app, with every table emptied after each case."""
    yield matrix_app
    with matrix_app.app_context():
        for table in reversed(db.metadata.sorted_tables):
            db.session.execute(table.delete())
        db.session.commit()


def test_every_route_has_an_expectation(app: Flask) -> None:
    served = {(r.endpoint, m) for r in app.url_map.iter_rules() for m in r.methods - {"HEAD", "OPTIONS"}}
    assert sorted(served - ROUTES.keys()) == [], "add these routes to ROUTES"
    assert sorted(ROUTES.keys() - served) == [], "ROUTES names routes that no longer exist"


@pytest.mark.parametrize(("endpoint", "method", "role"), _cases())
def test_route_answers_each_role(
    app: Flask, client: FlaskClient, endpoint: str, method: str, role: str
) -> None:
    expect = ROUTES[(endpoint, method)]
    headers: dict[str, str] = {}
    me_id = None
    if role in USERS:
        me_id = AuthActions(client).as_role(role).id
    elif role == "other":
        me_id = AuthActions(client).as_role("regular").id
    elif role == "apikey":
        with app.app_context():
            keyholder = make_user("keyholder")
            headers["Authorization"] = f"Bearer {make_api_key(keyholder, scope='write')[1]}"
            me_id = keyholder.id
    ids = _world(app, me_id, "someone" if role == "other" else None)
    url = _url(app, endpoint, ids) + (f"?{expect.query}" if expect.query else "")
    headers.update(expect.headers or {})
    if expect.host:
        headers["Host"] = expect.host
    if method == "POST":
        token = csrf_token(client, "/login" if role in ("anonymous", "apikey") else "/account/")
        response = client.post(url, data={**(expect.data or {}), "csrf_token": token}, headers=headers)
    else:
        response = client.get(url, headers=headers)
    status, where = response.status_code, response.headers.get("Location")
    assert status < 500 or status == expect.status, response.get_data(as_text=True)[:300]
    if role == "other":
        assert status == 404
    elif role in expect.allowed:
        wanted = expect.signed_in if expect.signed_in and role in USERS else expect.status
        assert status == wanted, where
    elif endpoint.startswith("api."):
        assert status == 401 and response.get_json()["success"] is False
    elif role == "anonymous":
        assert status == 302 and where.startswith("/login"), where
    else:
        assert status == 403, where


def test_forbidden_json_client_gets_json(client: FlaskClient, auth: Any) -> None:
    auth.as_role("regular")
    response = client.get("/admin/users", headers={"Accept": "application/json"})
    assert response.status_code == 403
    assert response.get_json() == {
        "success": False,
        "message": "You do not have permission to do that.",
        "data": None,
    }


def test_unknown_permission_fails_when_applied() -> None:
    with pytest.raises(KeyError):
        permission_required("manage_usres")
    with pytest.raises(KeyError):
        can(object(), "nope")


def test_matrix_matches_design() -> None:
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
