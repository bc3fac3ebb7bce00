"""The web app's side of the edge protocol: the full table for signed requests only, the key file, pushes."""

from __future__ import annotations

import stat

from app.routing import sync
from app.routing.edge_server import key_file
from app.routing.push import PushResult
from app.routing.signing import SIGNATURE_HEADER, ensure_key_file, load_keys, sign
from tests.builders import make_server, make_user, make_workspace

PATH = "/workspaces/_edge/routes"


def test_the_full_table_is_served_to_signed_requests_only(app, client):
    with app.app_context():
        server = make_server()
        make_workspace(make_user("carol"), server, ports={"vscode": 40001, "jupyter": 40002})
        make_workspace(make_user("dave"), server, status="stopped")
        path = key_file(app.config)
    ensure_key_file(path)
    keys = load_keys(path)
    assert client.get(PATH).status_code == 401
    assert client.get(PATH, headers={SIGNATURE_HEADER: sign(["0" * 64], "GET", PATH)}).status_code == 401
    assert client.get(PATH, headers={SIGNATURE_HEADER: sign(keys, "POST", PATH)}).status_code == 401
    answer = client.get(PATH, headers={SIGNATURE_HEADER: sign(keys, "GET", PATH)})
    assert answer.status_code == 200 and answer.headers["Cache-Control"] == "no-store"
    lines = answer.get_data(as_text=True).splitlines()
    assert lines[0] == "replace" and "stop dave" in lines
    [carol] = [line for line in lines if line.startswith("put carol ")]
    assert carol.split()[3:5] == ["40001", "40002"]


def test_the_key_file_is_private_and_kept(tmp_path):
    path = tmp_path / "edge.key"
    ensure_key_file(path)
    first = path.read_text()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and len(load_keys(path)) == 1
    ensure_key_file(path)
    assert path.read_text() == first


def test_one_workspace_change_pushes_only_its_line(app, monkeypatch):
    pushed = []
    monkeypatch.setattr(sync, "push", lambda lines, urls, path: pushed.append((lines, urls)) or
                        PushResult(1, [], []))
    app.config["EDGE_ADMIN_URLS"] = "http://127.0.0.1:9001, http://10.0.0.2:9001/"
    with app.app_context():
        server = make_server()
        make_workspace(make_user("carol"), server, ports={"vscode": 40001, "jupyter": 40002})
        make_workspace(make_user("dave"), server)
        assert sync.regenerate(usernames=["carol", "gone"]) is True
    [(lines, urls)] = pushed
    assert urls == ["http://127.0.0.1:9001", "http://10.0.0.2:9001"]
    assert len(lines) == 2 and lines[0].startswith("put carol ") and lines[1] == "del gone"


def test_the_hand_off_sets_a_signed_edge_cookie_and_the_check_renews_it(app, client, auth):
    from app.routing.signing import edge_cookie_value
    from tests.workspace_helpers import HOST, cookie_of, exchange, open_app

    with app.app_context():
        make_workspace(make_user("alice"), make_server())
    auth.login("alice")
    _, token, _ = open_app(client)
    done = exchange(app, HOST.format("alice"), token)
    cookies = done.headers.getlist("Set-Cookie")
    [edge] = [c for c in cookies if c.startswith("slipway_edge=")]
    assert "HttpOnly" in edge and "Max-Age=600" in edge and "Domain" not in edge
    value = edge.split(";", 1)[0].split("=", 1)[1]
    user, sid, issued, expires = value.split(".")[1:5]
    assert user == "alice" and int(expires) - int(issued) == 600
    keys = load_keys(key_file(app.config))
    host = HOST.format("alice")
    # The same fields signed with the shared key for this host: what the edge recomputes.
    assert edge_cookie_value(keys, host, "alice", int(sid), 600).split(".")[1:3] == ["alice", sid]
    workspace_cookie = cookie_of(done)[0]
    checked = app.test_client(use_cookies=False).get(
        "/workspaces/_auth", headers={"Host": host, "Cookie": workspace_cookie})
    assert checked.status_code == 200
    assert checked.headers["X-Slipway-Edge-Cookie"].startswith("slipway_edge=v1.alice." + sid + ".")
    refused = app.test_client(use_cookies=False).get("/workspaces/_auth", headers={"Host": host})
    assert refused.status_code == 401 and "X-Slipway-Edge-Cookie" not in refused.headers


def test_logout_pushes_the_session_revocation_to_every_edge(app, client, auth, monkeypatch):
    pushed = []
    monkeypatch.setattr(sync, "push", lambda lines, urls, path: pushed.append(lines) or PushResult(1, [], []))
    with app.app_context():
        make_user("alice")
    auth.login("alice")
    auth.logout()
    assert len(pushed) == 1 and len(pushed[0]) == 1
    verb, user, sid = pushed[0][0].split()
    assert (verb, user) == ("revoke", "alice") and sid.isdigit()
