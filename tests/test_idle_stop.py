"""Idle stop decisions, the owner's page and the "keep running" switch (no Docker: stops are only queued)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from app.connections.idle import check_idle
from app.extensions import db
from app.models import AuditLog, Server, Task, Workspace
from app.services import workspaces as service
from app.timeutil import utcnow
from tests.builders import make_server, make_user, make_workspace
from tests.support import AuthActions, form_post


def _settings(app: Flask, **overrides: Any) -> dict[str, Any]:
    return {**app.config, "IDLE_STOP_MINUTES": 30, **overrides}


def _workspace(app: Flask, name: str, *, active_minutes_ago: int | None, running_minutes: int = 120,
               keep: bool = False) -> None:
    with app.app_context():
        server = db.session.scalar(select(Server)) or make_server()
        ws = make_workspace(make_user(name), server)
        now = utcnow()
        ws.running_since = now - timedelta(minutes=running_minutes)
        if active_minutes_ago is not None:
            ws.last_activity_at = now - timedelta(minutes=active_minutes_ago)
        ws.keep_running = keep
        db.session.commit()


def _check(app: Flask, **overrides: Any) -> list[str]:
    with app.app_context():
        return check_idle(utcnow(), _settings(app, **overrides))


def test_only_workspaces_idle_past_the_limit_are_stopped(app: Flask) -> None:
    _workspace(app, "busy", active_minutes_ago=5)
    _workspace(app, "idle", active_minutes_ago=45)
    _workspace(app, "never", active_minutes_ago=None, running_minutes=40)  # no traffic since it started
    _workspace(app, "fresh", active_minutes_ago=None, running_minutes=10)
    assert sorted(_check(app)) == ["idle", "never"]
    with app.app_context():
        tasks = db.session.scalars(select(Task).order_by(Task.id)).all()
        actor = service.IDLE_STOP_ACTOR
        assert [(t.kind, t.target, t.requested_by) for t in tasks] == [
            ("stop", "workspace:idle", actor), ("stop", "workspace:never", actor)]
        audits = db.session.scalars(
            select(AuditLog).where(AuditLog.action_type == "workspace_idle_stopped")).all()
        assert sorted(a.details["user"] for a in audits) == ["idle", "never"]
        assert all(a.details["idle_minutes"] == 30 for a in audits)
        assert db.session.scalar(select(Workspace.idle_stopped_at).where(Workspace.username == "idle"))
    assert _check(app) == []  # the stop is in flight: not queued twice


def test_off_per_image_and_keep_running(app: Flask) -> None:
    _workspace(app, "keeper", active_minutes_ago=500, keep=True)
    _workspace(app, "other", active_minutes_ago=500)
    assert _check(app, IDLE_STOP_MINUTES=0) == []
    image = "slipway/test-workspace:latest"
    assert _check(app, IDLE_STOP_IMAGE_MINUTES={image: 0}) == []  # this image never stops
    assert _check(app, IDLE_KEEP_RUNNING_ALLOWED=True) == ["other"]
    assert _check(app, IDLE_STOP_MINUTES=0, IDLE_STOP_IMAGE_MINUTES={image: 60}) == ["keeper"]  # not allowed


def test_a_never_seen_running_workspace_counts_from_now(app: Flask) -> None:
    _workspace(app, "newcomer", active_minutes_ago=None)
    with app.app_context():
        db.session.execute(Workspace.__table__.update().values(running_since=None))
        db.session.commit()
    assert _check(app) == []
    with app.app_context():
        assert db.session.scalar(select(Workspace.running_since)) is not None


def test_the_owner_page_says_why_until_the_next_start(
    app: Flask, client: FlaskClient, auth: AuthActions
) -> None:
    _workspace(app, "idle", active_minutes_ago=45)
    assert _check(app) == ["idle"]
    with app.app_context():
        db.session.execute(Workspace.__table__.update().values(status="stopped"))
        finished = {"state": "succeeded", "finished_at": utcnow(), "active_lock": None}
        db.session.execute(Task.__table__.update().values(**finished))
        db.session.commit()
    app.config["IDLE_STOP_MINUTES"] = 30
    auth.login("idle")
    page = client.get("/workspaces/").get_data(as_text=True)
    assert 'id="idle-stopped"' in page and "no activity for 30 minutes" in page
    assert "Stops automatically after 30 minutes without activity." in page
    started = form_post(client, "/workspaces/start", {}, page="/workspaces/", follow_redirects=True)
    assert "will start in a moment" in started.get_data(as_text=True), started.get_data(as_text=True)[-3000:]
    assert 'id="idle-stopped"' not in client.get("/workspaces/").get_data(as_text=True)


def test_keep_running_only_where_allowed_and_audited(
    app: Flask, client: FlaskClient, auth: AuthActions
) -> None:
    _workspace(app, "owner", active_minutes_ago=1)
    app.config["IDLE_STOP_MINUTES"] = 30
    auth.login("owner")
    refused = form_post(client, "/workspaces/keep-running", {"keep": "on"}, page="/workspaces/",
                        follow_redirects=True)
    assert "not allowed here" in refused.get_data(as_text=True)
    app.config["IDLE_KEEP_RUNNING_ALLOWED"] = True
    sideways = form_post(client, "/workspaces/keep-running", {"keep": "sideways"}, page="/workspaces/")
    assert sideways.status_code == 400
    page = form_post(client, "/workspaces/keep-running", {"keep": "on"}, page="/workspaces/",
                     follow_redirects=True).get_data(as_text=True)
    assert "keeps running while idle" in page and "Let it stop when idle" in page
    with app.app_context():
        assert db.session.scalar(select(Workspace.keep_running)) is True
        assert db.session.scalar(select(AuditLog.action_type).where(
            AuditLog.action_type.like("workspace_keep_running%"))) == "workspace_keep_running_set"


def test_idle_settings_parse_and_refuse_bad_values(tmp_path) -> None:
    from app.settings_checks import validate
    from config import DevelopmentConfig

    settings, problems = DevelopmentConfig.load({
        "SLIPWAY_DATA_DIR": str(tmp_path), "SLIPWAY_IDLE_STOP_MINUTES": "45",
        "SLIPWAY_IDLE_STOP_IMAGE_MINUTES": "slipway/workspace:latest=120, registry:5000/big:1=0"})
    assert problems == []
    assert settings["IDLE_STOP_MINUTES"] == 45
    assert settings["IDLE_STOP_IMAGE_MINUTES"] == {"slipway/workspace:latest": 120, "registry:5000/big:1": 0}
    bad, problems = DevelopmentConfig.load({
        "SLIPWAY_DATA_DIR": str(tmp_path), "SLIPWAY_IDLE_STOP_MINUTES": "-1",
        "SLIPWAY_IDLE_STOP_IMAGE_MINUTES": "slipway/workspace:latest"})
    problems += validate(bad)
    assert any("SLIPWAY_IDLE_STOP_MINUTES" in p for p in problems)
    assert any("SLIPWAY_IDLE_STOP_IMAGE_MINUTES" in p for p in problems)
