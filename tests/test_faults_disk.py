"""Disk full while an upload streams: a small tmpfs as the upload directory.

The answer says the server ran out of space (507), the partial file is removed and no upload
is recorded; the next upload that fits is stored normally.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tarfile

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import Upload
from tests.support import csrf_token, require_service

pytestmark = pytest.mark.integration
TMPFS_BYTES = 1024 * 1024


def _tar(size: int) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        info = tarfile.TarInfo("rootfs/blob")
        info.size = size
        archive.addfile(info, io.BytesIO(os.urandom(size)))
    return buffer.getvalue()


def _post(client, data: bytes, name: str):
    token = csrf_token(client, "/images/uploads")
    return client.post("/images/uploads", data={"csrf_token": token, "file": (io.BytesIO(data), name)},
                       content_type="multipart/form-data")


@pytest.fixture
def full_disk(tmp_path):
    """A 1 MB tmpfs mounted for the test (needs root), unmounted afterwards."""
    require_service("tmpfs mount (root)", os.geteuid() == 0 and shutil.which("mount") is not None)
    mount = tmp_path / "small-disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={TMPFS_BYTES},mode=0700", "tmpfs", str(mount)],
                   check=True, timeout=30)
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True, timeout=30)


def test_disk_full_during_an_upload_is_a_clear_error_and_leaves_nothing(app, client, auth, full_disk):
    app.config["UPLOAD_DIR"] = str(full_disk)
    auth.as_role("qvp")
    response = _post(client, _tar(3 * TMPFS_BYTES), "big-rootfs.tar")
    body = response.get_data(as_text=True)
    assert response.status_code == 507, body[:500]
    assert "no space left" in body and "Traceback" not in body
    assert list(full_disk.iterdir()) == []
    with app.app_context():
        assert db.session.scalar(select(Upload)) is None
    fits = _post(client, _tar(100_000), "small.tar")
    assert fits.status_code == 302
    with app.app_context():
        assert db.session.scalar(select(Upload.original_name)) == "small.tar"
