"""The web side's AgentClient against the real agent: its signing of encoded queries and streamed uploads."""

from __future__ import annotations

import io
import shutil
import tarfile

import pytest

from tests.agent.helpers import RUN_ID, TEST_LABEL

pytestmark = pytest.mark.integration


@pytest.fixture
def client(agent):
    """The web app's client for the session agent."""
    from app.agent_client.client import AgentClient

    return AgentClient(agent.base_url, agent.token, read_timeout=60, retries=0)


def test_client_lifecycle_with_label_filter(client, spec) -> None:
    body = spec()
    created = client.create_container(body)
    assert set(created["ports"]) == {"vscode", "jupyter"}
    listed = client.list_containers({TEST_LABEL: RUN_ID, "slipway.managed": "true"})
    assert created["id"] in {c["id"] for c in listed}
    assert client.container_ports(body["name"]) == created["ports"]
    assert client.stop_container(created["id"])["status"] == "exited"
    assert client.delete_container(created["id"], remove_workspace=True)["removed_workspace"] is True


def test_client_import_inspect_and_delete(client, docker_client, tmp_path) -> None:
    from app.agent_client.client import AgentNotFound

    rootfs = tmp_path / "rootfs.tar"
    with tarfile.open(rootfs, "w") as tar:
        tar.add(shutil.which("busybox") or "/bin/busybox", arcname="bin/busybox")
        info = tarfile.TarInfo("etc/marker")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"ok\n"))
    repository = f"127.0.0.1:5000/slipway-interop-{RUN_ID}"
    imported = client.import_image(rootfs, repository=repository, tag="v1")
    assert imported["tag"] == f"{repository}:v1"
    try:
        inspected = client.inspect_image(f"{repository}:v1")
        assert inspected["id"] == imported["id"]
        client.delete_image(f"{repository}:v1")
        with pytest.raises(AgentNotFound):
            client.delete_image(f"{repository}:v1")
    finally:
        if docker_client.images.list(name=repository):
            docker_client.images.remove(f"{repository}:v1", force=True)
