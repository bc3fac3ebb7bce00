"""Images area pages without an agent: permissions, registries, policy, workspace images, build refusals."""

from __future__ import annotations

import io
import tarfile

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import AuditLog, BuildPolicy, Registry, Task, WorkspaceImage
from tests.builders import make_server
from tests.support import csrf_token, form_post

SECRET = "s3cret-Registry-pw-0987"


def _policy(app, bases=("slipway/test-workspace:*",), registries=()):
    with app.app_context():
        db.session.merge(BuildPolicy(id=1, allowed_bases=list(bases), allowed_registries=list(registries)))
        db.session.commit()


def _server(app) -> int:
    with app.app_context():
        return make_server("builder").id


def test_regular_gets_403_on_build_form_and_endpoint(client, auth):
    auth.as_role("regular")
    token = csrf_token(client)
    assert client.get("/images/build").status_code == 403
    assert client.post("/images/build", data={"csrf_token": token}).status_code == 403
    assert client.post("/images/push", data={"csrf_token": token}).status_code == 403
    assert client.post("/images/uploads", data={"csrf_token": token}).status_code == 403


def test_qvp_gets_403_on_delete_and_admin_pages(app, client, auth):
    server_id = _server(app)
    auth.as_role("qvp")
    token = csrf_token(client)
    response = client.post(f"/images/{server_id}/delete", data={"csrf_token": token, "ref": "x:1"})
    assert response.status_code == 403
    for url in ("/images/registries", "/images/policy", "/images/workspace-images"):
        assert client.get(url).status_code == 403, url
    assert client.get("/images/build").status_code == 200


def test_registry_password_is_encrypted_and_never_shown(app, client, auth):
    auth.as_role("admin")
    response = form_post(client, "/images/registries",
                         {"name": "local", "host": "127.0.0.1:5000", "username": "slipway",
                          "password": SECRET},
                         page="/images/registries", follow_redirects=True)
    assert response.status_code == 200
    assert SECRET not in response.get_data(as_text=True)
    with app.app_context():
        registry = db.session.scalar(select(Registry))
        assert registry.password_encrypted.startswith("v1:") and SECRET not in registry.password_encrypted
        assert registry.decrypted_password() == SECRET
        registry_id = registry.id
        audit_text = " ".join(str(a.details) for a in db.session.scalars(select(AuditLog)))
        assert SECRET not in audit_text
    edit = client.get(f"/images/registries/{registry_id}/edit").get_data(as_text=True)
    assert SECRET not in edit and "stored (never shown)" in edit
    # An empty password keeps the stored one.
    form_post(client, f"/images/registries/{registry_id}/edit",
              {"name": "local", "host": "127.0.0.1:5000", "username": "slipway", "password": ""},
              page="/images/registries")
    with app.app_context():
        assert db.session.get(Registry, registry_id).decrypted_password() == SECRET


def test_registry_bad_host_changes_nothing(app, client, auth):
    auth.as_role("admin")
    response = form_post(client, "/images/registries",
                         {"name": "bad", "host": "https://x/y", "username": "", "password": ""},
                         page="/images/registries")
    assert response.status_code == 400
    assert "host[:port] only" in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(select(Registry)) is None


def test_policy_and_workspace_images_are_saved(app, client, auth):
    auth.as_role("admin")
    form_post(client, "/images/policy", {"allowed_bases": "debian:12\n busybox:* \n",
                                         "allowed_registries": "127.0.0.1:5000"}, page="/images/policy")
    form_post(client, "/images/workspace-images",
              {"ref": "slipway/test-workspace:latest", "description": "test", "default_cpu": "0.5",
               "default_memory_mb": "512"}, page="/images/workspace-images")
    bad = form_post(client, "/images/workspace-images",
                    {"ref": "Not An Image", "default_cpu": "1", "default_memory_mb": "512"},
                    page="/images/workspace-images")
    assert bad.status_code == 400
    with app.app_context():
        policy = db.session.get(BuildPolicy, 1)
        assert policy.allowed_bases == ["debian:12", "busybox:*"]
        assert policy.allowed_registries == ["127.0.0.1:5000"]
        rows = db.session.scalars(select(WorkspaceImage)).all()
        assert [(r.ref, r.default_cpu, r.default_memory_mb) for r in rows] == [
            ("slipway/test-workspace:latest", 0.5, 512)]


@pytest.mark.parametrize(
    ("dockerfile", "rule"),
    [
        ("# syntax=docker/dockerfile:1\nFROM slipway/test-workspace:latest\n", "no-syntax-directive"),
        ("FROM ubuntu:22.04\n", "allowed-base"),
        ("FROM slipway/test-workspace:latest\nADD https://example.org/x /x\n", "no-add-url"),
        ("FROM slipway/test-workspace:latest\nRUN --network=host id\n", "no-network-host"),
    ],
)
def test_build_breaking_policy_is_refused_before_docker(app, client, auth, dockerfile, rule):
    _policy(app)
    server_id = _server(app)
    auth.as_role("qvp")
    response = form_post(client, "/images/build",
                         {"server_id": server_id, "repository": "team/app", "tag": "1",
                          "dockerfile": dockerfile}, page="/images/build")
    assert response.status_code == 400
    assert f"rule: {rule}" in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(select(Task)) is None
        assert db.session.scalar(select(AuditLog).where(AuditLog.action_type == "build_refused"))


def _tar(name: str, link: str | None = None) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        info = tarfile.TarInfo(name)
        if link:
            info.type, info.linkname = tarfile.SYMTYPE, link
            archive.addfile(info)
        else:
            info.size = 2
            archive.addfile(info, io.BytesIO(b"hi"))
    return buffer.getvalue()


@pytest.mark.parametrize("archive", [_tar("../escape"), _tar("l", "/etc/passwd"), b"plain text, no tar"])
def test_bad_build_context_is_refused_before_docker(app, client, auth, archive):
    _policy(app)
    server_id = _server(app)
    auth.as_role("qvp")
    response = form_post(client, "/images/build",
                         {"server_id": server_id, "repository": "team/app", "tag": "1",
                          "dockerfile": "FROM slipway/test-workspace:latest\nUSER 1000\n",
                          "context": (io.BytesIO(archive), "ctx.tar.gz")},
                         page="/images/build", content_type="multipart/form-data")
    assert response.status_code == 400
    assert "Build context refused" in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(select(Task)) is None


def test_valid_build_queues_a_task_with_root_warning(app, client, auth):
    _policy(app)
    server_id = _server(app)
    auth.as_role("qvp")
    response = form_post(client, "/images/build",
                         {"server_id": server_id, "repository": "team/app", "tag": "1",
                          "dockerfile": "FROM slipway/test-workspace:latest\nRUN echo hi\n",
                          "buildargs": "A=1"}, page="/images/build")
    assert response.status_code == 302 and "/tasks/" in response.headers["Location"]
    with app.app_context():
        task = db.session.scalar(select(Task))
        assert task.kind == "build" and task.payload["tag"] == "team/app:1"
        assert task.payload["buildargs"] == {"A": "1"} and task.payload["total_steps"] == 2
        assert any("runs-as-root" in w for w in task.payload["warnings"])


def test_image_settings_are_validated(tmp_path):
    from app.settings_checks import validate
    from config import TestingConfig

    settings, problems = TestingConfig.load({"SLIPWAY_DATA_DIR": str(tmp_path),
                                             "SLIPWAY_UPLOAD_MAX_BYTES": "lots",
                                             "SLIPWAY_DOCKERFILE_MAX_BYTES": "0"})
    problems += validate(settings)
    text = "\n".join(problems)
    assert "SLIPWAY_UPLOAD_MAX_BYTES must be an integer" in text
    assert "SLIPWAY_DOCKERFILE_MAX_BYTES must be positive" in text
    blocker = tmp_path / "file"
    blocker.write_text("x")
    settings, _ = TestingConfig.load({"SLIPWAY_DATA_DIR": str(tmp_path),
                                      "SLIPWAY_UPLOAD_DIR": str(blocker / "u")})
    assert any("SLIPWAY_UPLOAD_DIR" in p for p in validate(settings))


def test_empty_policy_is_refused(app, client, auth):
    auth.as_role("admin")
    response = form_post(client, "/images/policy", {"allowed_bases": " \n", "allowed_registries": ""},
                         page="/images/policy")
    assert response.status_code == 400
    assert "Allow at least one base image or registry" in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.get(BuildPolicy, 1) is None


def test_image_list_reports_offline_and_dead_agents_without_failing(app, client, auth):
    with app.app_context():
        offline = make_server("gone", status="offline").id
        dead = make_server("dead", agent_url="http://127.0.0.1:9").id
    auth.as_role("qvp")
    page = client.get(f"/images/?server={offline}")
    assert page.status_code == 200 and "gone is offline" in page.get_data(as_text=True)
    page = client.get(f"/images/?server={dead}")
    assert page.status_code == 200 and "The agent of dead did not answer" in page.get_data(as_text=True)


def test_build_without_csrf_token_is_refused(app, client, auth):
    _policy(app)
    server_id = _server(app)
    auth.as_role("qvp")
    response = client.post("/images/build", data={
        "server_id": server_id, "repository": "team/app", "tag": "1",
        "dockerfile": "FROM slipway/test-workspace:latest\n"})
    assert response.status_code == 400
    with app.app_context():
        assert db.session.scalar(select(Task)) is None


def test_push_target_names_the_image_under_the_registry():
    from app.images.handlers import push_target

    assert push_target("127.0.0.1:5000", "team/app") == "127.0.0.1:5000/team/app"
    assert push_target("127.0.0.1:5000", "127.0.0.1:5000/team/app") == "127.0.0.1:5000/team/app"
    assert push_target("127.0.0.1:5000", "registry.example.org/team/app") == "127.0.0.1:5000/team/app"


def test_pull_form_queues_a_pull_without_the_password(app, client, auth):
    server_id = _server(app)
    with app.app_context():
        registry = Registry(name="local", host="127.0.0.1:5000", username="slipway", created_by="boss")
        registry.set_password(SECRET)
        db.session.add(registry)
        db.session.commit()
        registry_id = registry.id
    auth.as_role("qvp")
    assert 'href="/images/pull"' in client.get("/images/").get_data(as_text=True)
    bad = form_post(client, "/images/pull", {"server_id": server_id, "registry_id": registry_id,
                                             "repository": "team/app", "tag": "no tags!"},
                    page="/images/pull")
    assert bad.status_code == 400
    response = form_post(client, "/images/pull", {"server_id": server_id, "registry_id": registry_id,
                                                  "repository": "team/app", "tag": "1"}, page="/images/pull")
    assert response.status_code == 302 and "/tasks/" in response.headers["Location"]
    with app.app_context():
        task = db.session.scalar(select(Task))
        assert task.kind == "pull" and task.payload == {"server_id": server_id, "registry_id": registry_id,
                                                        "repository": "team/app", "tag": "1"}
        audit = db.session.scalar(select(AuditLog).where(AuditLog.action_type == "pull_requested"))
        assert audit.details == {"server": "builder", "image": "team/app:1", "registry": "local"}
        assert SECRET not in str(task.payload) and SECRET not in str(audit.details)
