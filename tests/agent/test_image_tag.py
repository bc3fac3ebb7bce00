"""The agent's signed `tag` call, and its own refusal of secret and ssh build mounts (real Docker daemon)."""

from __future__ import annotations

import contextlib

import pytest
from docker.errors import ImageNotFound

from tests.agent.helpers import RUN_ID

pytestmark = pytest.mark.integration

TARGET = f"127.0.0.1:5000/slipway-tag-test-{RUN_ID}"


@pytest.fixture
def cleanup_tags(docker_client):
    """Remove the names a test gave (never the source image)."""
    names: list[str] = []
    yield names
    for name in names:
        with contextlib.suppress(ImageNotFound):
            docker_client.images.remove(name)


def test_tag_names_the_image_under_a_registry(agent, docker_client, test_image, cleanup_tags) -> None:
    cleanup_tags.append(f"{TARGET}:one")
    response = agent.call("POST", "/api/images/tag",
                          json_body={"source": test_image, "repository": TARGET, "tag": "one"})
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    source_id = docker_client.images.get(test_image).id
    assert data == {"source": test_image, "ref": f"{TARGET}:one", "id": source_id}
    assert docker_client.images.get(f"{TARGET}:one").id == source_id
    again = agent.call("POST", "/api/images/tag",
                       json_body={"source": test_image, "repository": TARGET, "tag": "one"})
    assert again.status_code == 200  # idempotent: the client retries it


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"source": "slipway/test-workspace:latest", "repository": "slipway/no-registry", "tag": "x"},
         "repository"),
        ({"source": "slipway/test-workspace:latest", "repository": "127.0.0.1:5000/UPPER", "tag": "x"},
         "repository"),
        ({"source": "slipway/test-workspace:latest", "repository": TARGET, "tag": "bad tag"}, "tag"),
        ({"source": "slipway/test-workspace:latest", "repository": TARGET, "tag": "-x"}, "tag"),
        ({"source": "Bad Source", "repository": TARGET, "tag": "x"}, "source"),
        ({"source": "slipway/test-workspace:latest", "repository": TARGET, "tag": "x" * 129}, "tag"),
        ({"source": "slipway/test-workspace:latest", "repository": TARGET + "/a" * 100, "tag": "x"},
         "repository"),
    ],
)
def test_bad_names_are_refused_and_nothing_is_tagged(agent, docker_client, test_image, body, field) -> None:
    response = agent.call("POST", "/api/images/tag", json_body=body)
    assert response.status_code == 400
    assert response.json()["message"].startswith(f"{field}:")
    names = {tag for image in docker_client.images.list() for tag in image.tags}
    assert f"{body['repository']}:{body['tag']}" not in names


def test_missing_source_is_404(agent) -> None:
    response = agent.call("POST", "/api/images/tag",
                          json_body={"source": "slipway/nothing-here:none", "repository": TARGET, "tag": "x"})
    assert response.status_code == 404


def test_unsigned_tag_is_refused(agent, docker_client, test_image) -> None:
    response = agent.call("POST", "/api/images/tag", sign=False,
                          json_body={"source": test_image, "repository": TARGET, "tag": "unsigned"})
    assert response.status_code == 401
    with pytest.raises(ImageNotFound):
        docker_client.images.get(f"{TARGET}:unsigned")


def test_name_of_a_managed_containers_image_is_not_moved(agent, spec, docker_client, test_image,
                                                         cleanup_tags) -> None:
    cleanup_tags.append(f"{TARGET}:fenced")
    first = agent.call("POST", "/api/images/tag",
                       json_body={"source": test_image, "repository": TARGET, "tag": "fenced"})
    assert first.status_code == 200
    body = spec(image=f"{TARGET}:fenced")
    created = agent.call("POST", "/api/containers", json_body=body)
    assert created.status_code == 201, created.text
    try:
        response = agent.call("POST", "/api/images/tag",
                              json_body={"source": test_image, "repository": TARGET, "tag": "fenced"})
        assert response.status_code == 409, response.text
        assert docker_client.images.get(f"{TARGET}:fenced").id == docker_client.images.get(test_image).id
    finally:
        agent.call("POST", f"/api/containers/{body['name']}/delete", json_body={"remove_workspace": True})



@pytest.mark.parametrize(
    "run",
    ["RUN --mount=type=secret,id=k cat /run/secrets/k", "RUN --mount=type=ssh true",
     "RUN --MOUNT=id=k,TYPE=SECRET true", "RUN --mount type=secret,id=k true",
     "RUN --mount=\"type=ssh\" true"],
)
def test_build_with_a_secret_or_ssh_mount_is_refused(agent, run: str) -> None:
    response = agent.call("POST", "/api/images/build",
                          json_body={"tag": "slipway/x:y", "dockerfile": f"FROM scratch\n{run}\n"})
    assert response.status_code == 400 and response.json()["message"].startswith("dockerfile")


def test_build_with_a_cache_mount_is_not_refused_by_the_mount_rule(agent) -> None:
    events = agent.ndjson("/api/images/build", {
        "tag": f"slipway/test-mount-{RUN_ID}:ok",
        "dockerfile": "FROM scratch\nRUN --mount=type=cache,target=/c true\n"})
    assert events[-1]["type"] == "result"  # the build ran (FROM scratch has no shell: it fails in Docker)
    assert "not allowed" not in str(events)
