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
