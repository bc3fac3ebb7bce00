"""`flask create-api-key`: prints a working key once, audited from the CLI, same rules as the page."""

from __future__ import annotations

import json
from datetime import timedelta

from sqlalchemy import func, select

from app.extensions import db
from app.models import ApiKey, AuditLog
from app.timeutil import utcnow
from tests.builders import make_user


def invoke(app, *args: str):
    # click keeps stdout (the key alone) and stderr (the notice) apart in the result
    return app.test_cli_runner().invoke(args=["create-api-key", *args])


def test_prints_a_logs_key_once_that_ships_logs_and_is_audited(app):
    with app.app_context():
        make_user("chief", role="admin")
    result = invoke(app, "--username", "chief", "--scope", "logs:write", "--days", "7")
    assert result.exit_code == 0, result.output
    value = result.stdout.strip().splitlines()[-1]
    assert value.startswith("slw_") and value[:12] in result.stderr
    assert "shown only this once" in result.stderr and value not in result.stderr
    with app.app_context():
        key = db.session.scalar(select(ApiKey))
        assert key.scope == "logs:write" and key.key_hash != value and key.prefix == value[:12]
        assert timedelta(days=6, hours=23) < key.expires_at - utcnow() <= timedelta(days=7)
        audit = db.session.scalar(select(AuditLog).where(AuditLog.action_type == "api_key_created"))
        assert audit.source == "cli" and audit.username == "chief" and audit.details["scope"] == "logs:write"
    line = json.dumps({"ts": utcnow().isoformat() + "Z", "source": "app", "level": "info", "message": "hi"})
    response = app.test_client().post(
        "/api/v1/logs", data=line, headers={"Content-Type": "application/x-ndjson",
                                            "Authorization": f"Bearer {value}"}
    )
    assert response.status_code == 200 and response.get_json()["data"]["accepted"] == 1


def test_refuses_unknown_users_bad_scopes_and_logs_keys_for_non_admins(app):
    with app.app_context():
        make_user("reg", role="regular")
        make_user("waiting", role="admin", status="pending")
    cases = [
        (("--username", "nobody", "--scope", "read"), "no approved account named 'nobody'"),
        (("--username", "waiting", "--scope", "read"), "no approved account named 'waiting'"),
        (("--username", "reg", "--scope", "admin"), "Unknown scope 'admin'"),
        (("--username", "reg", "--scope", "logs:write"), "Only admins may create logs:write keys"),
        (("--username", "reg", "--scope", "read", "--days", "0"), "Invalid value for '--days'"),
    ]
    for args, message in cases:
        result = invoke(app, *args)
        assert result.exit_code != 0 and message in result.output, (args, result.output)
    with app.app_context():
        assert db.session.scalar(select(func.count(ApiKey.id))) == 0


def test_respects_the_per_user_cap(app):
    app.config["API_KEYS_MAX"] = 2
    with app.app_context():
        make_user("capped", role="regular")
    assert invoke(app, "--username", "capped", "--scope", "read").exit_code == 0
    assert invoke(app, "--username", "capped", "--scope", "write").exit_code == 0
    third = invoke(app, "--username", "capped", "--scope", "read")
    assert third.exit_code == 1 and "already have 2 active API keys" in third.stderr
    with app.app_context():
        assert db.session.scalar(select(func.count(ApiKey.id))) == 2
