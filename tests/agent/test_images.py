"""Images through the agent: list, inspect, build streams, push to and pull from the real registry, import,
delete."""

from __future__ import annotations

import base64
import hashlib
import io
import shutil
import tarfile

import pytest
import requests
from docker.errors import ImageNotFound

from agent.signing import signed_headers
from tests.agent.helpers import RUN_ID, TEST_LABEL, unique
from tests.support import require_service

pytestmark = pytest.mark.integration

REGISTRY = "127.0.0.1:5000"
REGISTRY_AUTH = {"username": "slipway", "password": "registry-test-password"}


def _registry_up() -> bool:
    try:
        return requests.get(f"http://{REGISTRY}/v2/", timeout=2).status_code == 401
    except requests.RequestException:
        return False


def _remove_image(docker_client, ref: str) -> None:
    try:
        docker_client.images.remove(ref, force=True)
    except ImageNotFound:
        pass


def test_list_and_inspect(agent, test_image) -> None:
    listed = agent.call("GET", "/api/images").json()["data"]
    assert any(test_image in item["tags"] for item in listed)
    item = next(i for i in listed if test_image in i["tags"])
    assert item["size"] > 0 and item["created"].startswith("20") and "slipway.build-hash" in item["labels"]
    inspected = agent.call("GET", f"/api/images/inspect?ref={test_image}")
    data = inspected.json()["data"]
    assert data["user"] == "1000:1000" and test_image in data["tags"] and data["history"]
    assert agent.call("GET", "/api/images/inspect?ref=slipway/nothing-here:none").status_code == 404
    assert agent.call("GET", "/api/images/inspect?ref=Bad%20Ref").status_code == 400


def test_build_streams_log_lines_and_steps(agent, docker_client, test_image) -> None:
    tag = f"slipway/test-build-{RUN_ID}:ok"
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w:gz") as tar:
        payload = b"hello from the context\n"
        info = tarfile.TarInfo("greeting.txt")
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    dockerfile = (
        f"FROM {test_image}\nCOPY greeting.txt /greeting.txt\nRUN echo built-marker-$((6*7))\n"
        "LABEL slipway.test=x\n"
    )
    events = agent.ndjson("/api/images/build", {
        "tag": tag, "dockerfile": dockerfile, "context_b64": base64.b64encode(context.getvalue()).decode(),
    })
    try:
        steps = [e for e in events if e["type"] == "step"]
        assert [s["step"] for s in steps] == [1, 2, 3, 4] and {s["total"] for s in steps} == {4}
        assert any(e["type"] == "log" and "built-marker-42" in e["line"] for e in events)
        result = events[-1]
        assert result["type"] == "result" and result["success"] is True, result
        assert result["data"]["tag"] == tag and result["data"]["id"].startswith("sha256:")
        out = docker_client.containers.run(tag, ["cat", "/greeting.txt"], remove=True)
        assert out == payload
    finally:
        _remove_image(docker_client, tag)


def test_failing_build_reports_the_failing_step(agent, docker_client, test_image) -> None:
    tag = f"slipway/test-build-{RUN_ID}:fail"
    events = agent.ndjson("/api/images/build", {
        "tag": tag,
        "dockerfile": f"FROM {test_image}\nRUN echo fine\nRUN echo about-to-fail && exit 3\nRUN true\n",
    })
    result = events[-1]
    assert result["type"] == "result" and result["success"] is False
    assert result["data"] == {"step": 3} and "step 3" in result["message"]
    assert any(e["type"] == "log" and "about-to-fail" in e["line"] for e in events)
    with pytest.raises(ImageNotFound):
        docker_client.images.get(tag)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"tag": "Bad Tag", "dockerfile": "FROM scratch\n"}, "tag"),
        ({"tag": "slipway/x:y", "dockerfile": ""}, "dockerfile"),
        ({"tag": "slipway/x:y", "dockerfile": "# syntax=docker/dockerfile:1\nFROM scratch\n"}, "dockerfile"),
        ({"tag": "slipway/x:y", "dockerfile": "FROM scratch\nADD http://example.com/x /x\n"}, "dockerfile"),
        ({"tag": "slipway/x:y", "dockerfile": "FROM scratch\nRUN --network=host true\n"}, "dockerfile"),
        ({"tag": "slipway/x:y", "dockerfile": "FROM scratch\n", "context_b64": "not base64!"}, "context_b64"),
        ({"tag": "slipway/x:y", "dockerfile": "FROM scratch\n", "buildargs": {"A": 1}}, "buildargs"),
    ],
)
def test_bad_build_request_is_a_plain_400(agent, body: dict, field: str) -> None:
    response = agent.call("POST", "/api/images/build", json_body=body)
    assert response.status_code == 400 and response.json()["message"].startswith(field)


def test_push_to_the_registry_and_pull_back(agent, docker_client, test_image) -> None:
    require_service("docker-registry on 127.0.0.1:5000", _registry_up())
    repository = f"{REGISTRY}/slipway-test-{RUN_ID}"
    docker_client.images.get(test_image).tag(repository, "v1")
    try:
        wrong = agent.ndjson("/api/images/push", {
            "repository": repository, "tag": "v1", "username": "slipway", "password": "wrong-password",
        })
        assert wrong[-1]["type"] == "result" and wrong[-1]["success"] is False
        events = agent.ndjson("/api/images/push", {"repository": repository, "tag": "v1", **REGISTRY_AUTH})
        assert events[-1]["success"] is True, events[-1]
        assert any(e["type"] == "progress" for e in events)
        _remove_image(docker_client, f"{repository}:v1")
        refused = agent.call("POST", "/api/images/pull", json_body={
            "repository": repository, "tag": "v1", "username": "slipway", "password": "wrong-password"})
        assert refused.status_code == 500 and "authentication required" in refused.json()["message"]
        assert "wrong-password" not in refused.text
        pulled = agent.ndjson("/api/images/pull", {"repository": repository, "tag": "v1", **REGISTRY_AUTH})
        assert pulled[-1]["success"] is True, pulled[-1]
        assert pulled[-1]["data"]["id"] == docker_client.images.get(test_image).id
        assert docker_client.images.get(f"{repository}:v1").id == docker_client.images.get(test_image).id
    finally:
        _remove_image(docker_client, f"{repository}:v1")
    missing = agent.call("POST", "/api/images/push", json_body={"repository": repository, "tag": "v1"})
    assert missing.status_code == 404


def _rootfs_tar() -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        busybox = shutil.which("busybox") or "/bin/busybox"
        tar.add(busybox, arcname="bin/busybox")
        for applet in ("sh", "echo", "cat"):
            link = tarfile.TarInfo(f"bin/{applet}")
            link.type, link.linkname = tarfile.SYMTYPE, "busybox"
            tar.addfile(link)
        note = b"imported-rootfs\n"
        info = tarfile.TarInfo("etc/slipway-note")
        info.size = len(note)
        tar.addfile(info, io.BytesIO(note))
    return out.getvalue()


def _import(agent, body: bytes, path: str, sign_body: bytes | None = None) -> requests.Response:
    headers = signed_headers(agent.token, "POST", path, body_sha256=hashlib.sha256(
        body if sign_body is None else sign_body).hexdigest())

    def chunks():
        for start in range(0, len(body), 65536):
            yield body[start:start + 65536]

    return requests.post(agent.base_url + path, data=chunks(), headers=headers, timeout=120)


def test_import_a_rootfs_tarball_run_it_and_delete_it(agent, docker_client) -> None:
    repository, tag = f"slipway/test-import-{RUN_ID}", "v1"
    path = f"/api/images/import?repository={repository}&tag={tag}"
    body = _rootfs_tar()
    tampered = _import(agent, body, path, sign_body=body + b"x")
    assert tampered.status_code == 401
    with pytest.raises(ImageNotFound):
        docker_client.images.get(f"{repository}:{tag}")
    response = _import(agent, body, path)
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert data["tag"] == f"{repository}:{tag}" and data["id"].startswith("sha256:")
    try:
        out = docker_client.containers.run(f"{repository}:{tag}", ["/bin/sh", "-c", "cat /etc/slipway-note"],
                                           remove=True, labels={TEST_LABEL: RUN_ID})
        assert out == b"imported-rootfs\n"
        deleted = agent.call("DELETE", f"/api/images/{repository}:{tag}")
        assert deleted.status_code == 200 and deleted.json()["data"] == {"ref": f"{repository}:{tag}"}
        assert agent.call("DELETE", f"/api/images/{repository}:{tag}").status_code == 404
    finally:
        _remove_image(docker_client, f"{repository}:{tag}")
    bad = agent.call("POST", "/api/images/import?repository=BAD&tag=x", body=b"x")
    assert bad.status_code == 400 and bad.json()["message"].startswith("repository")


def test_delete_image_in_use_is_409(agent, docker_client, test_image) -> None:
    ref = f"slipway/test-inuse-{RUN_ID}:v1"
    dockerfile = io.BytesIO(f"FROM {test_image}\nLABEL slipway.test-inuse={RUN_ID}\n".encode())
    docker_client.images.build(fileobj=dockerfile, tag=ref, rm=True)
    container = docker_client.containers.create(ref, name=unique("inuse"), labels={TEST_LABEL: RUN_ID})
    try:
        response = agent.call("POST", "/api/images/delete", json_body={"ref": ref, "force": False})
        assert response.status_code == 409, response.text
        assert docker_client.images.get(ref)
    finally:
        container.remove(force=True)
        _remove_image(docker_client, ref)
