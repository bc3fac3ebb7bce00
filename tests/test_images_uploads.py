"""Guest OS uploads through the test client: stored safely, typed, hashed, limited, CSRF-checked."""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path

import pytest
from sqlalchemy import select

from app.extensions import db
from app.images.uploads import STORED_NAME_RE, UploadRefused, sniff_tar
from app.models import Upload
from tests.support import csrf_token


def rootfs_tar(gz: bool = False, size: int = 4096) -> bytes:
    """A small tarball with one file."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz" if gz else "w") as archive:
        info = tarfile.TarInfo("bin/hello")
        info.size = size
        archive.addfile(info, io.BytesIO(b"x" * size))
    return buffer.getvalue()


def upload_dir(app) -> Path:
    return Path(app.config["DATA_DIR"]) / "uploads"


def files_left(app) -> list[str]:
    directory = upload_dir(app)
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


def post_file(client, data: bytes, name: str, *, token: str | None = None):
    token = csrf_token(client, "/images/uploads") if token is None else token
    return client.post("/images/uploads", data={"csrf_token": token, "file": (io.BytesIO(data), name)},
                       content_type="multipart/form-data")


@pytest.mark.parametrize("gz", [False, True])
def test_upload_is_stored_under_a_server_name_with_its_sha256(app, client, auth, gz):
    auth.as_role("qvp")
    data = rootfs_tar(gz=gz, size=300_000)
    response = post_file(client, data, "../../etc/passwd")
    assert response.status_code == 302, response.get_data(as_text=True)
    with app.app_context():
        row = db.session.scalar(select(Upload))
        assert row.original_name == "passwd"
        assert STORED_NAME_RE.match(row.stored_name)
        assert row.size == len(data) and row.sha256 == hashlib.sha256(data).hexdigest()
        assert row.compression == ("gzip" if gz else "none")
        stored = upload_dir(app) / row.stored_name
    assert stored.read_bytes() == data
    assert files_left(app) == [row.stored_name]
    page = client.get("/images/uploads").get_data(as_text=True)
    assert row.sha256 in page and "passwd" in page


def test_non_tarball_is_refused_and_nothing_is_left(app, client, auth):
    auth.as_role("qvp")
    response = post_file(client, b"MZ\x90\x00 this is not a tar archive" * 100, "evil.tar")
    assert response.status_code == 415
    assert "not a tar archive" in response.get_data(as_text=True)
    assert files_left(app) == []
    with app.app_context():
        assert db.session.scalar(select(Upload)) is None


def test_over_the_limit_is_413_and_nothing_is_left(app, client, auth):
    app.config["UPLOAD_MAX_BYTES"] = 50_000
    auth.as_role("qvp")
    response = post_file(client, rootfs_tar(size=200_000), "big.tar")
    assert response.status_code == 413
    assert files_left(app) == []
    with app.app_context():
        assert db.session.scalar(select(Upload)) is None


def test_missing_csrf_token_stores_nothing(app, client, auth):
    auth.as_role("qvp")
    response = post_file(client, rootfs_tar(), "a.tar", token="forged")
    assert response.status_code == 400
    assert files_left(app) == []


def test_regular_user_cannot_upload_and_qvp_cannot_delete(app, client, auth):
    auth.as_role("qvp")
    assert post_file(client, rootfs_tar(), "a.tar").status_code == 302
    with app.app_context():
        upload_id = db.session.scalar(select(Upload.id))
    token = csrf_token(client, "/images/uploads")
    assert client.post(f"/images/uploads/{upload_id}/delete", data={"csrf_token": token}).status_code == 403
    auth.logout()
    auth.as_role("admin")
    token = csrf_token(client, "/images/uploads")
    assert client.post(f"/images/uploads/{upload_id}/delete", data={"csrf_token": token}).status_code == 302
    assert files_left(app) == []


def test_sniff_tar_recognises_compressions():
    assert sniff_tar(rootfs_tar()[:2048]) == "none"
    assert sniff_tar(rootfs_tar(gz=True)) == "gzip"
    with pytest.raises(UploadRefused):
        sniff_tar(b"\x1f\x8b" + b"garbage" * 100)
