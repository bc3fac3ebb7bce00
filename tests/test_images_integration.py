"""The real flow: forms → tasks → the real agent over Docker → the real registry, with live logs."""

from __future__ import annotations

import io
import json
import re
import secrets
import tarfile
from pathlib import Path

import pytest
from simple_websocket import ConnectionClosed
from sqlalchemy import select

from app.extensions import db
from app.models import AuditLog, BuildPolicy, Registry, Task, TaskEvent, Upload
from tests.builders import make_user
from tests.integration_helpers import (
    REGISTRY,
    REGISTRY_PASSWORD,
    REGISTRY_USER,
    TEST_IMAGE,
    BrowserSocket,
    RunnerThread,
    agent_server,
    ensure_test_image,
    registry_up,
    remove_images,
    wait_task,
)
from tests.livesrv import login, serve
from tests.support import csrf_token, form_post, require_service

pytestmark = pytest.mark.integration
RUN = secrets.token_hex(3)


@pytest.fixture
def server_id(app, tmp_path):
    """A real agent registered as a server, the test image present, builds allowed from it."""
    ensure_test_image()
    with app.app_context():
        db.session.add(BuildPolicy(id=1, allowed_bases=["slipway/test-workspace:*"], allowed_registries=[]))
        db.session.commit()
    with agent_server(app, tmp_path / "agent-ws") as (sid, _agent):
        yield sid


def _csrf(session, url: str) -> str:
    html = session.get(url, timeout=10).text
    return re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html).group(1)


def test_qvp_builds_from_the_form_and_sees_lines_live(app, server_id):
    repository = f"slipway/images-test-{RUN}"
    tag = f"{repository}:live"
    dockerfile = (f"FROM {TEST_IMAGE}\nRUN echo first-line && sleep 2 && echo after-sleep\n"
                  "RUN echo second-step\nUSER 1000\n")
    app.config["STREAM_POLL_SECONDS"] = 0.05
    with app.app_context():
        make_user("builder", role="qvp")
    try:
        with serve(app) as base:
            session = login(base, "builder")
            response = session.post(f"{base}/images/build", timeout=10, allow_redirects=False, data={
                "csrf_token": _csrf(session, f"{base}/images/build"), "server_id": server_id,
                "repository": repository, "tag": "live", "dockerfile": dockerfile})
            assert response.status_code == 302, response.text
            task_id = int(response.headers["Location"].rstrip("/").rsplit("/", 1)[1])
            ws = BrowserSocket.open(base, session, task_id)
            live_lines: list[str] = []
            final = None
            with RunnerThread(app):
                try:
                    for _ in range(2000):
                        message = json.loads(ws.receive(timeout=60))
                        if message["state"] == "running":
                            live_lines += [e["message"] for e in message["events"]]
                        final = message
                except ConnectionClosed:
                    pass
            assert any("first-line" in line for line in live_lines), live_lines
            assert final is not None and final["state"] == "succeeded" and final["progress"] == 100
            page = session.get(f"{base}/images/?server={server_id}", timeout=10).text
            assert repository in page
            detail = session.get(f"{base}/tasks/{task_id}", timeout=10).text
            assert "after-sleep" in detail and "second-step" in detail
        with app.app_context():
            entry = db.session.scalar(select(AuditLog).where(AuditLog.action_type == "build_finished"))
            assert entry.username == "builder" and entry.details["ok"] is True
    finally:
        remove_images(tag)


def test_failing_dockerfile_reports_its_step(app, client, auth, server_id):
    auth.as_role("qvp")
    response = form_post(client, "/images/build", {
        "server_id": server_id, "repository": f"slipway/images-fail-{RUN}", "tag": "x",
        "dockerfile": f"FROM {TEST_IMAGE}\nRUN echo fine\nRUN echo about-to-fail && exit 3\nUSER 1000\n",
    }, page="/images/build")
    task_id = int(response.headers["Location"].rstrip("/").rsplit("/", 1)[1])
    with RunnerThread(app):
        task = wait_task(app, task_id)
    assert task.state == "failed"
    assert "step 3" in task.message, task.message
    assert any("about-to-fail" in line for line in task.loaded_events)
    page = client.get(f"/tasks/{task_id}").get_data(as_text=True)
    assert "step 3" in page


def _push(client, app, server_id: int, registry_id: int, repository: str) -> Task:
    response = form_post(client, "/images/push", {"server_id": server_id, "registry_id": registry_id,
                                                  "repository": repository, "tag": "1"}, page="/images/push")
    assert response.status_code == 302, response.get_data(as_text=True)
    task_id = int(response.headers["Location"].rstrip("/").rsplit("/", 1)[1])
    with RunnerThread(app):
        return wait_task(app, task_id, timeout=180)


def test_push_wrong_then_right_password_and_pull_back(app, client, auth, server_id):
    require_service("docker-registry on 127.0.0.1:5000", registry_up())
    import docker

    docker_client = docker.from_env(timeout=120)
    repository = f"slipway/images-push-{RUN}"
    docker_client.images.get(TEST_IMAGE).tag(repository, "1")
    wrong = "not-the-password-" + RUN
    try:
        auth.as_role("admin")
        form_post(client, "/images/registries", {"name": "test", "host": REGISTRY, "username": REGISTRY_USER,
                                                 "password": wrong}, page="/images/registries")
        with app.app_context():
            registry_id = db.session.scalar(select(Registry.id))
        task = _push(client, app, server_id, registry_id, repository)
        assert task.state == "failed"
        refused = re.search(r"unauthorized|authentication required|no basic auth", task.message, re.I)
        assert refused, task.message
        form_post(client, f"/images/registries/{registry_id}/edit",
                  {"name": "test", "host": REGISTRY, "username": REGISTRY_USER,
                   "password": REGISTRY_PASSWORD},
                  page="/images/registries")
        tested = form_post(client, f"/images/registries/{registry_id}/test", {}, page="/images/registries",
                           follow_redirects=True)
        assert "login accepted" in tested.get_data(as_text=True)
        task = _push(client, app, server_id, registry_id, repository)
        assert task.state == "succeeded", (task.message, task.loaded_events)
        remote = f"{REGISTRY}/{repository}"
        # Named for the registry by the agent's tag call (a build would log steps instead).
        lines = list(task.loaded_events)
        assert any(line.startswith(f"tagged {repository}:1 as {remote}:1 (sha256:") for line in lines), lines
        assert not any("Step 1/" in line for line in lines), lines
        remove_images(f"{remote}:1")
        credentials = {"username": REGISTRY_USER, "password": REGISTRY_PASSWORD}
        pulled = docker_client.images.pull(remote, tag="1", auth_config=credentials)
        assert pulled.id == docker_client.images.get(TEST_IMAGE).id
        # The password never shows: not in task events, results, audit rows or pages.
        with app.app_context():
            texts = [e.message for e in db.session.scalars(select(TaskEvent))]
            texts += [f"{t.message} {t.payload} {t.result}" for t in db.session.scalars(select(Task))]
            texts += [str(a.details) for a in db.session.scalars(select(AuditLog))]
        for url in ("/images/registries", f"/images/registries/{registry_id}/edit", f"/tasks/{task.id}",
                    "/tasks/"):
            texts.append(client.get(url).get_data(as_text=True))
        blob = "\n".join(texts)
        assert REGISTRY_PASSWORD not in blob and wrong not in blob
    finally:
        remove_images(f"{repository}:1", f"{REGISTRY}/{repository}:1")


def _busybox_rootfs() -> bytes:
    buffer = io.BytesIO()
    busybox = Path("/bin/busybox") if Path("/bin/busybox").exists() else Path("/usr/bin/busybox")
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        archive.add(busybox, arcname="bin/busybox")
        link = tarfile.TarInfo("bin/sh")
        link.type, link.linkname = tarfile.SYMTYPE, "busybox"
        archive.addfile(link)
    return buffer.getvalue()


def test_uploaded_rootfs_imports_as_a_runnable_image(app, client, auth, server_id):
    import docker

    repository = f"slipway/images-import-{RUN}"
    auth.as_role("qvp")
    token = csrf_token(client, "/images/uploads")
    response = client.post("/images/uploads", content_type="multipart/form-data", data={
        "csrf_token": token, "file": (io.BytesIO(_busybox_rootfs()), "guest.tar.gz")})
    assert response.status_code == 302
    with app.app_context():
        upload_id = db.session.scalar(select(Upload.id))
    response = form_post(client, f"/images/uploads/{upload_id}/import",
                         {"server_id": server_id, "repository": repository, "tag": "1"},
                         page="/images/uploads")
    task_id = int(response.headers["Location"].rstrip("/").rsplit("/", 1)[1])
    try:
        with RunnerThread(app):
            task = wait_task(app, task_id)
        assert task.state == "succeeded", task.message
        output = docker.from_env(timeout=60).containers.run(
            f"{repository}:1", ["/bin/busybox", "echo", "imported-ok"], remove=True)
        assert output.strip() == b"imported-ok"
    finally:
        remove_images(f"{repository}:1")


def test_delete_refused_while_in_use_then_deleted(app, client, auth, server_id):
    import docker
    from app.models import Server
    from tests.builders import make_workspace

    docker_client = docker.from_env(timeout=60)
    ref = f"slipway/images-del-{RUN}:1"
    docker_client.images.get(TEST_IMAGE).tag(ref)
    try:
        with app.app_context():
            make_workspace(make_user("carol"), db.session.get(Server, server_id))
        auth.as_role("admin")
        detail = client.get(f"/images/{server_id}/detail", query_string={"ref": TEST_IMAGE})
        text = detail.get_data(as_text=True)
        assert detail.status_code == 200 and "carol" in text and "slipway.build-hash" in text
        missing = client.get(f"/images/{server_id}/detail", query_string={"ref": "nope/none:1"})
        assert missing.status_code == 404
        refused = form_post(client, f"/images/{server_id}/delete", {"ref": TEST_IMAGE},
                            page=f"/images/?server={server_id}", follow_redirects=True)
        assert "in use by the workspace of carol" in refused.get_data(as_text=True)
        with app.app_context():
            assert db.session.scalar(select(Task).where(Task.kind == "delete_image")) is None
        response = form_post(client, f"/images/{server_id}/delete", {"ref": ref},
                             page=f"/images/?server={server_id}")
        task_id = int(response.headers["Location"].rstrip("/").rsplit("/", 1)[1])
        with RunnerThread(app):
            task = wait_task(app, task_id)
        assert task.state == "succeeded", task.message
        assert not any(ref in (image.tags or []) for image in docker_client.images.list())
        with app.app_context():
            entry = db.session.scalar(select(AuditLog).where(AuditLog.action_type == "image_deleted"))
            assert entry.details["ok"] is True and entry.details["ref"] == ref
    finally:
        remove_images(ref)


def test_cancel_stops_a_running_build(app, client, auth, server_id):
    import time

    auth.as_role("qvp")
    repository = f"slipway/images-cancel-{RUN}"
    response = form_post(client, "/images/build", {
        "server_id": server_id, "repository": repository, "tag": "x",
        # A silent step: cancel must not wait for Docker's next line.
        "dockerfile": f"FROM {TEST_IMAGE}\nRUN echo tick-start && sleep 60 && echo tick-end\n",
    }, page="/images/build")
    task_id = int(response.headers["Location"].rstrip("/").rsplit("/", 1)[1])
    try:
        with RunnerThread(app):
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                with app.app_context():
                    ticks = db.session.scalar(select(TaskEvent.id).where(
                        TaskEvent.task_id == task_id, TaskEvent.message == "tick-start").limit(1))
                if ticks:
                    break
                time.sleep(0.1)
            assert ticks, "the build never started logging"
            form_post(client, f"/tasks/{task_id}/cancel", {}, page=f"/tasks/{task_id}")
            started = time.monotonic()
            task = wait_task(app, task_id, timeout=30)
            assert time.monotonic() - started < 10
        assert task.state == "cancelled", task.message
        assert "tick-end" not in task.loaded_events
    finally:
        remove_images(f"{repository}:x")


def test_build_with_an_uploaded_context(app, client, auth, server_id):
    import docker

    payload = b"hello from the context\n"
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        info = tarfile.TarInfo("greeting.txt")
        info.size = len(payload)
        archive.addfile(info, io.BytesIO(payload))
    repository = f"slipway/images-ctx-{RUN}"
    auth.as_role("qvp")
    response = form_post(client, "/images/build", {
        "server_id": server_id, "repository": repository, "tag": "1", "buildargs": "GREETING=hi",
        "dockerfile": f"FROM {TEST_IMAGE}\nARG GREETING\nCOPY greeting.txt /greeting.txt\n"
                      "RUN echo arg-$GREETING\nUSER 1000\n",
        "context": (io.BytesIO(buffer.getvalue()), "ctx.tar.gz"),
    }, page="/images/build", content_type="multipart/form-data")
    assert response.status_code == 302, response.get_data(as_text=True)
    task_id = int(response.headers["Location"].rstrip("/").rsplit("/", 1)[1])
    try:
        with RunnerThread(app):
            task = wait_task(app, task_id)
        assert task.state == "succeeded", task.message
        assert "arg-hi" in task.loaded_events
        output = docker.from_env(timeout=60).containers.run(f"{repository}:1", ["cat", "/greeting.txt"],
                                                            remove=True)
        assert output == payload
        assert list((Path(app.config["DATA_DIR"]) / "build-contexts").iterdir()) == []
    finally:
        remove_images(f"{repository}:1")
