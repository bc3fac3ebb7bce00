"""A 2 GB upload through a real web process: streamed to disk, memory stays flat, hash is right."""

from __future__ import annotations

import re
import shutil

import pytest
import requests
from sqlalchemy import select

from app.extensions import db
from app.models import Upload
from tests.builders import make_user
from tests.integration_helpers import MultipartTarStream, RssSampler, rss_bytes, web_process
from tests.support import require_service

pytestmark = pytest.mark.integration

TWO_GB = 2 * 1024**3
MAX_GROWTH = 50 * 1024**2


def _login(base: str, username: str) -> tuple[requests.Session, str]:
    session = requests.Session()
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"',
                      session.get(f"{base}/login", timeout=10).text).group(1)
    session.post(f"{base}/login", data={"username": username, "password": "correct horse battery",
                                        "csrf_token": token}, timeout=10)
    html = session.get(f"{base}/images/uploads", timeout=10).text
    return session, re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def test_two_gigabyte_upload_keeps_memory_flat(app, database_url, tmp_path):
    require_service("4 GB of free disk", shutil.disk_usage(tmp_path).free >= TWO_GB * 2)
    with app.app_context():
        make_user("uploader", role="qvp")
    data_dir = tmp_path / "web"
    data_dir.mkdir()
    try:
        with web_process(database_url, data_dir, upload_max_bytes=3 * 1024**3) as (base, pid):
            session, token = _login(base, "uploader")
            baseline = rss_bytes(pid)
            body = MultipartTarStream(token, TWO_GB)
            with RssSampler(pid) as sampler:
                response = session.post(f"{base}/images/uploads", data=body, allow_redirects=False,
                                        timeout=600, headers={"Content-Type": body.content_type})
            assert response.status_code == 302, response.text[:500]
            growth = sampler.peak - baseline
            assert growth < MAX_GROWTH, f"RSS grew by {growth / 1024**2:.1f} MB"
        with app.app_context():
            row = db.session.scalar(select(Upload))
            assert row.size == body.file_bytes
            assert row.sha256 == body.file_sha256()
            stored = data_dir / "uploads" / row.stored_name
        assert stored.stat().st_size == body.file_bytes
    finally:
        shutil.rmtree(data_dir / "uploads", ignore_errors=True)  # never keep 2 GB around


def test_over_limit_stream_is_413_and_leaves_no_file(app, database_url, tmp_path):
    with app.app_context():
        make_user("uploader", role="qvp")
    data_dir = tmp_path / "web"
    data_dir.mkdir()
    with web_process(database_url, data_dir, upload_max_bytes=10 * 1024**2) as (base, _pid):
        session, token = _login(base, "uploader")
        # The body fits the request limit (limit + form overhead); the file is just over the limit.
        body = MultipartTarStream(token, 10 * 1024**2)
        assert body.file_bytes > 10 * 1024**2 and len(body) < 10 * 1024**2 + 64 * 1024
        try:
            response = session.post(f"{base}/images/uploads", data=body, allow_redirects=False, timeout=60,
                                    headers={"Content-Type": body.content_type})
            assert response.status_code == 413
        except requests.ConnectionError:
            pass  # the server may answer 413 and close before the client finished sending
    assert [p.name for p in (data_dir / "uploads").iterdir()] == []
    with app.app_context():
        assert db.session.scalar(select(Upload)) is None
