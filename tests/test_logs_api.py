"""POST /api/v1/logs: logs:write keys of admins only, limits answered 413, partial accept, answer shape."""

from __future__ import annotations

import io
import json
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import ApiKey, LogEntry
from app.services import api_keys
from app.timeutil import utcnow
from tests.builders import make_user
from tests.support import KEY_RE, form_post

NDJSON = "application/x-ndjson"


def new_key(app, role="admin", scope="logs:write", username=None) -> str:
    with app.app_context():
        user = make_user(username, role=role)
        if scope == "logs:write" and role != "admin":
            # Created while the user was an admin, then demoted: the row exists, the role no longer fits.
            user.role = "admin"
            value = api_keys.create(user, "ship", scope, None).value
            user.role = role
            db.session.commit()
            return value
        return api_keys.create(user, "ship", scope, None).value


def post(app, key, body: bytes, content_type=NDJSON, **headers):
    all_headers = {"Content-Type": content_type, **headers}
    if key:
        all_headers["Authorization"] = f"Bearer {key}"
    return app.test_client().post("/api/v1/logs", data=body, headers=all_headers)


def line(**overrides) -> str:
    entry = {"ts": (utcnow() - timedelta(seconds=5)).isoformat() + "Z", "source": "syslog",
             "host": "db-2", "level": "warning", "message": "disk almost full", "fields": {"pct": 91}}
    entry.update(overrides)
    return json.dumps(entry)


def stored(app) -> list[LogEntry]:
    """The entries shipped through the API (the audit feed's own entries aside)."""
    with app.app_context():
        shipped = select(LogEntry).where(LogEntry.category == "ingest").order_by(LogEntry.id)
        rows = db.session.scalars(shipped).all()
        db.session.expunge_all()
        return rows


def test_a_good_batch_is_stored_in_one_commit_with_the_answer_shape(app):
    key = new_key(app)
    body = "\n".join([line(), line(message="<script>alert(1)</script>", level="error")]) + "\n"
    response = post(app, key, body.encode())
    assert response.status_code == 200
    assert response.get_json() == {"success": True, "message": "2 lines stored.",
                                   "data": {"accepted": 2, "rejected": []}}
    rows = stored(app)
    assert [(r.source, r.category, r.host, r.level, r.message) for r in rows] == [
        ("syslog", "ingest", "db-2", "warning", "disk almost full"),
        ("syslog", "ingest", "db-2", "error", "<script>alert(1)</script>"),
    ]
    assert rows[0].fields == {"pct": 91} and rows[0].risk_score == 0 and rows[0].rule_ids == []
    assert rows[0].username is None and rows[0].server_id is None


def test_bad_lines_are_listed_while_the_good_ones_are_stored(app):
    key = new_key(app)
    body = "\n".join([line(message="one"), "{broken", line(user="x"), "", line(message="two"),
                      line(ts="2099-01-01T00:00:00Z")])
    response = post(app, key, body.encode())
    answer = response.get_json()
    assert response.status_code == 200 and answer["success"] is False
    assert answer["data"]["accepted"] == 2
    assert [r["line"] for r in answer["data"]["rejected"]] == [2, 3, 6]
    assert "unknown key(s): user" in answer["data"]["rejected"][1]["reason"]
    assert "future" in answer["data"]["rejected"][2]["reason"]
    assert "2 lines stored, 3 rejected" in answer["message"]
    assert [r.message for r in stored(app)] == ["one", "two"]


def test_a_batch_with_no_good_line_stores_nothing_and_answers_400(app):
    key = new_key(app)
    response = post(app, key, b"{x\n[]\n")
    assert response.status_code == 400
    assert response.get_json()["data"] == {
        "accepted": 0,
        "rejected": [{"line": 1, "reason": "not valid JSON (UTF-8, one object per line)"},
                     {"line": 2, "reason": "a line must be a JSON object"}],
    }
    empty = post(app, key, b"\n\n")
    assert empty.status_code == 400 and empty.get_json()["message"] == "The batch holds no lines."
    assert stored(app) == []


@pytest.mark.parametrize("scope", ["read", "write"])
def test_read_and_write_keys_cannot_ship_logs(app, scope):
    key = new_key(app, scope=scope)
    response = post(app, key, line().encode())
    assert response.status_code == 403
    assert response.get_json()["message"] == (
        f"Shipping logs needs an API key with the logs:write scope; this key's scope is {scope}."
    )
    assert stored(app) == []


def test_a_logs_key_does_nothing_else_and_no_key_gets_401(app):
    key = new_key(app)
    me = app.test_client().get("/api/v1/me", headers={"Authorization": f"Bearer {key}"})
    assert me.status_code == 403 and "may only post log batches" in me.get_json()["message"]
    assert post(app, None, line().encode()).status_code == 401
    assert post(app, "slw_not-a-key", line().encode()).status_code == 401


def test_a_logs_key_of_a_non_admin_is_refused(app):
    key = new_key(app, role="qvp")
    response = post(app, key, line().encode())
    assert response.status_code == 403 and "Only an admin's logs:write key" in response.get_json()["message"]
    assert stored(app) == []


def test_wrong_content_type_or_compression_answers_415(app):
    key = new_key(app)
    assert post(app, key, line().encode(), content_type="application/json").status_code == 415
    assert post(app, key, line().encode(), **{"Content-Encoding": "gzip"}).status_code == 415
    assert post(app, key, line().encode(), content_type="application/ndjson").status_code == 200


def test_a_batch_over_the_byte_limit_answers_413_naming_it(app):
    app.config["LOGS_INGEST_MAX_BYTES"] = 1000
    key = new_key(app)
    body = ("\n".join([line()] * 20)).encode()
    assert len(body) > 1000
    response = post(app, key, body)
    assert response.status_code == 413
    assert response.get_json() == {"success": False,
                                   "message": "A batch may hold at most 1000 bytes; split it.",
                                   "data": {"accepted": 0, "rejected": []}}
    assert stored(app) == []


def test_a_chunked_batch_over_the_byte_limit_is_cut_off_at_the_limit(app):
    app.config["LOGS_INGEST_MAX_BYTES"] = 1000
    key = new_key(app)
    body = ("\n".join([line()] * 20)).encode()
    response = app.test_client().post(
        "/api/v1/logs", input_stream=io.BytesIO(body),
        headers={"Content-Type": NDJSON, "Authorization": f"Bearer {key}", "Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input_terminated": True},  # what a server sets for a chunked body
    )
    assert response.status_code == 413 and "1000 bytes" in response.get_json()["message"]
    assert stored(app) == []


def test_a_batch_over_the_line_limit_answers_413_naming_it(app):
    app.config["LOGS_INGEST_MAX_LINES"] = 3
    key = new_key(app)
    response = post(app, key, ("\n".join([line()] * 4)).encode())
    assert response.status_code == 413
    assert response.get_json()["message"] == "A batch may hold at most 3 lines; split it."
    assert stored(app) == []
    assert post(app, key, ("\n".join([line()] * 3)).encode()).status_code == 200


def test_a_field_over_its_byte_limit_rejects_that_line(app):
    app.config["LOGS_INGEST_FIELD_MAX_BYTES"] = 50
    key = new_key(app)
    response = post(app, key, "\n".join([line(message="m" * 51), line(message="short")]).encode())
    assert response.get_json()["data"]["rejected"] == [
        {"line": 1, "reason": "message is longer than 50 bytes"}
    ]
    assert [r.message for r in stored(app)] == ["short"]


def test_the_openapi_document_describes_the_endpoint_and_its_policy(app):
    document = app.test_client().get("/api/v1/openapi.json").get_json()
    operation = document["paths"]["/logs"]["post"]
    assert "Partial accept" in operation["description"]
    assert {"200", "400", "401", "403", "413", "415"} <= set(operation["responses"])


def test_only_admins_can_create_logs_write_keys_on_the_account_page(app, client, auth):
    auth.as_role("regular")
    page = client.get("/account/api-keys").get_data(as_text=True)
    assert 'value="logs:write"' not in page and "only ships log batches" not in page
    form = {"name": "ship", "scope": "logs:write", "expires_on": ""}
    refused = form_post(client, "/account/api-keys", form, page="/account/api-keys").get_data(as_text=True)
    assert KEY_RE.search(refused) is None
    with app.app_context():
        assert db.session.scalar(select(func.count(ApiKey.id))) == 0
    auth.logout()
    auth.as_role("admin")
    admin_page = client.get("/account/api-keys").get_data(as_text=True)
    assert 'value="logs:write"' in admin_page and "only ships log batches" in admin_page
    created = form_post(client, "/account/api-keys", form, page="/account/api-keys").get_data(as_text=True)
    key = KEY_RE.search(created).group(1)
    assert post(app, key, line().encode()).status_code == 200


def test_the_service_refuses_logs_write_for_a_non_admin(app):
    with app.app_context():
        user = make_user(role="qvp")
        with pytest.raises(api_keys.ApiKeyError, match="Only admins may create logs:write keys"):
            api_keys.create(user, "ship", "logs:write", None)
        assert db.session.scalar(select(func.count(ApiKey.id))) == 0


def test_stored_rows_read_back_the_same_on_every_database(app):
    """On MariaDB add_entries bypasses SQLAlchemy's bind processing: the JSON and times must survive."""
    key = new_key(app)
    when = (utcnow() - timedelta(hours=1)).replace(microsecond=250_000)
    local = (when + timedelta(hours=1)).isoformat() + "+01:00"
    fields = {"k": "é\"'\\ <b>", "n": 1.5, "t": True, "z": None}
    assert post(app, key, line(ts=local, fields=fields).encode()).status_code == 200
    row = stored(app)[0]
    assert row.fields == fields and row.rule_ids == []
    # MariaDB DATETIME keeps whole seconds
    assert row.ts.replace(microsecond=0) == when.replace(microsecond=0)


def test_mariadb_connections_turn_index_merge_intersection_off(app):
    with app.app_context():
        if db.engine.dialect.name != "mysql":
            pytest.skip("a MariaDB optimizer setting")
        switch = db.session.connection().exec_driver_sql("SELECT @@SESSION.optimizer_switch").scalar()
    assert "index_merge_intersection=off" in switch
