"""Dockerfile templates, the default build policy, and image requests through the images service."""

from __future__ import annotations

import html

from sqlalchemy import func, select

from app.extensions import db
from app.models import AuditLog, BuildPolicy, BuildTemplate, Task, WorkspaceImage
from tests.builders import make_server
from tests.support import csrf_token, form_post

GOOD = "FROM slipway/test-workspace:latest\nRUN echo templated\nUSER 1000\n"


def _server(app) -> int:
    with app.app_context():
        return make_server("builder").id


def _build(client, server_id: int, dockerfile: str):
    return form_post(client, "/images/build", {"server_id": server_id, "repository": "team/app", "tag": "1",
                                                "dockerfile": dockerfile}, page="/images/build")


def _tasks(app) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count(Task.id)))


def test_fresh_install_policy_allows_the_images_the_install_uses(app, client, auth):
    with app.app_context():
        db.session.add(WorkspaceImage(ref="team/workspace:2", description="", default_cpu=1,
                                      default_memory_mb=512))
        db.session.commit()
        assert db.session.get(BuildPolicy, 1) is None
    server_id = _server(app)
    auth.as_role("qvp")
    page = client.get("/images/build").get_data(as_text=True)
    assert "slipway/test-workspace:latest, team/workspace:2" in page
    assert "only an administrator can change what is allowed" in page
    assert "<code>type=cache</code>" in page and "<code>type=secret</code>" not in page
    assert _build(client, server_id, GOOD).status_code == 302
    assert _build(client, server_id, "FROM team/workspace:2\nUSER 1000\n").status_code == 302
    refused = _build(client, server_id, "FROM debian:12\nUSER 1000\n")
    assert refused.status_code == 400 and "rule: allowed-base" in refused.get_data(as_text=True)
    assert _tasks(app) == 2


def test_a_saved_policy_replaces_the_default(app, client, auth):
    with app.app_context():
        db.session.add(BuildPolicy(id=1, allowed_bases=["debian:12"], allowed_registries=[]))
        db.session.commit()
    server_id = _server(app)
    auth.as_role("qvp")
    assert _build(client, server_id, GOOD).status_code == 400
    assert _tasks(app) == 0


def test_admin_adds_edits_and_deletes_a_template(app, client, auth):
    auth.as_role("admin")
    response = form_post(client, "/images/templates/new",
                         {"name": "python", "description": "Python tools", "dockerfile": GOOD},
                         page="/images/templates/new")
    assert response.status_code == 302
    with app.app_context():
        template = db.session.scalar(select(BuildTemplate))
        assert (template.name, template.description, template.dockerfile) == ("python", "Python tools", GOOD)
        assert template.updated_by
        template_id = template.id
        actions = list(db.session.scalars(select(AuditLog.action_type)))
        assert "build_template_added" in actions
    assert "python" in client.get("/images/templates").get_data(as_text=True)
    changed = GOOD.replace("templated", "changed")
    form_post(client, f"/images/templates/{template_id}/edit",
              {"name": "python3", "description": "", "dockerfile": changed}, page="/images/templates")
    with app.app_context():
        template = db.session.get(BuildTemplate, template_id)
        assert (template.name, template.dockerfile) == ("python3", changed)
    form_post(client, f"/images/templates/{template_id}/delete", {}, page="/images/templates")
    with app.app_context():
        assert db.session.get(BuildTemplate, template_id) is None
        assert db.session.scalar(select(AuditLog).where(AuditLog.action_type == "build_template_deleted"))


def test_a_template_the_policy_refuses_is_not_saved(app, client, auth):
    auth.as_role("admin")
    for dockerfile, rule in (("FROM ubuntu:22.04\n", "allowed-base"),
                             ("FROM slipway/test-workspace:latest\nRUN --mount=type=secret,id=k id\n",
                              "mount-type")):
        response = form_post(client, "/images/templates/new",
                             {"name": "bad", "description": "", "dockerfile": dockerfile},
                             page="/images/templates/new")
        assert response.status_code == 400
        assert f"rule: {rule}" in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(select(BuildTemplate)) is None


def test_a_template_name_is_unique(app, client, auth):
    auth.as_role("admin")
    for _ in range(2):
        response = form_post(client, "/images/templates/new", {"name": "base", "dockerfile": GOOD},
                             page="/images/templates/new")
    assert response.status_code == 400 and "exists already" in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(select(func.count(BuildTemplate.id))) == 1


def test_build_form_offers_templates_and_fills_the_dockerfile_without_javascript(app, client, auth):
    with app.app_context():
        row = BuildTemplate(name="python", description="Python tools", dockerfile=GOOD)
        db.session.add(row)
        db.session.commit()
        template_id = row.id
    auth.as_role("qvp")
    plain = client.get("/images/build").get_data(as_text=True)
    assert f'<option value="{template_id}"' in plain and "Python tools" in plain
    assert "RUN echo templated" not in plain
    filled = html.unescape(client.get(f"/images/build?template={template_id}").get_data(as_text=True))
    assert GOOD.strip() in filled.replace("\r\n", "\n")
    missing = client.get("/images/build?template=9999", follow_redirects=True).get_data(as_text=True)
    assert "That template no longer exists." in missing


def test_only_admins_manage_templates(app, client, auth):
    with app.app_context():
        row = BuildTemplate(name="python", description="", dockerfile=GOOD)
        db.session.add(row)
        db.session.commit()
        template_id = row.id
    auth.as_role("qvp")
    token = csrf_token(client, "/images/build")
    for url in ("/images/templates", "/images/templates/new", f"/images/templates/{template_id}/edit"):
        assert client.get(url).status_code == 403, url
    deleted = client.post(f"/images/templates/{template_id}/delete", data={"csrf_token": token})
    assert deleted.status_code == 403
    assert client.post("/images/templates/new",
                       data={"csrf_token": token, "name": "x", "dockerfile": GOOD}).status_code == 403
    with app.app_context():
        assert db.session.get(BuildTemplate, template_id) is not None


def test_template_delete_needs_the_csrf_token(app, client, auth):
    with app.app_context():
        row = BuildTemplate(name="python", description="", dockerfile=GOOD)
        db.session.add(row)
        db.session.commit()
        template_id = row.id
    auth.as_role("admin")
    assert client.post(f"/images/templates/{template_id}/delete").status_code == 400
    with app.app_context():
        assert db.session.get(BuildTemplate, template_id) is not None


def test_delete_request_is_refused_while_a_workspace_uses_the_image(app, client, auth):
    from app.models.server import Server
    from tests.builders import make_user, make_workspace

    server_id = _server(app)
    with app.app_context():
        ws = make_workspace(make_user(username="alice"), db.session.get(Server, server_id))
        ws.image = "team/app:1"
        db.session.commit()
    auth.as_role("admin")
    response = form_post(client, f"/images/{server_id}/delete", {"ref": "team/app:1"},
                         page="/images/templates", follow_redirects=True)
    assert "in use by the workspace of alice" in response.get_data(as_text=True)
    assert _tasks(app) == 0
    form_post(client, f"/images/{server_id}/delete", {"ref": "team/other:1"}, page="/images/templates")
    with app.app_context():
        task = db.session.scalar(select(Task))
        assert task.kind == "delete_image" and task.payload == {"server_id": server_id, "ref": "team/other:1"}
        assert db.session.scalar(select(AuditLog).where(AuditLog.action_type == "image_delete_requested"))
