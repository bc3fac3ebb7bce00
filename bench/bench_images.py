"""Images benchmarks: build-log latency to the browser, and upload throughput with flat memory.

1. Build log latency. A real agent (`python -m agent`) builds a Dockerfile whose RUN step prints
   the wall-clock time (busybox `adjtimex`, microseconds) every 0.3 s. The web app runs on a
   real port; a WebSocket client (the browser's part) reads the task stream. For each line,
   latency = time received over the WebSocket - time printed inside the build. Bar: median < 500 ms.
2. Upload throughput. The web app runs in its own process; a client streams a 1 GB tarball
   (generated on the fly) as multipart/form-data to /images/uploads on loopback. Throughput =
   file bytes / request time; memory = peak RSS of the web process minus RSS before the upload
   (sampled every 20 ms). Bar: >= 200 MB/s with flat memory (< 50 MB growth).

Median of RUNS runs each. Needs Docker and the test image (`make images`).
Run: `.venv/bin/python bench/bench_images.py`.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from flask_migrate import upgrade  # noqa: E402
from simple_websocket import ConnectionClosed  # noqa: E402

from app.extensions import db  # noqa: E402
from app.models import BuildPolicy  # noqa: E402
from tests.builders import make_user  # noqa: E402
from tests.integration_helpers import (  # noqa: E402
    TEST_IMAGE,
    BrowserSocket,
    MultipartTarStream,
    RssSampler,
    RunnerThread,
    agent_server,
    remove_images,
    rss_bytes,
    web_process,
)
from tests.livesrv import login, serve  # noqa: E402
from tests.support import build_app  # noqa: E402

RUNS = int(os.environ.get("BENCH_RUNS", "3"))
LINES = 15
UPLOAD_BYTES = 1024**3
TS_RE = re.compile(r"TS (\d+\.\d{6})")


def _dockerfile(nonce: str) -> str:
    stamp = "adjtimex | awk '/tv_sec/{s=$2}/tv_usec/{u=$2}END{printf \"TS %d.%06d\\n\", s, u}'"
    return (f"FROM {TEST_IMAGE}\nRUN echo {nonce} && for i in $(seq 1 {LINES}); do {stamp}; sleep 0.3; done\n"
            "USER 1000\n")


def build_latency(app, server_id: int) -> list[float]:
    """Latencies (s) of every timestamp line of one build, as the WebSocket client saw them."""
    latencies: list[float] = []
    tag = f"slipway/bench-build-{secrets.token_hex(3)}:1"
    with serve(app) as base:
        session = login(base, "bench-qvp")
        html = session.get(f"{base}/images/build", timeout=10).text
        token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html).group(1)
        response = session.post(f"{base}/images/build", allow_redirects=False, timeout=10, data={
            "csrf_token": token, "server_id": server_id, "repository": tag.split(":")[0], "tag": "1",
            "dockerfile": _dockerfile(secrets.token_hex(8))})
        task_id = int(response.headers["Location"].rstrip("/").rsplit("/", 1)[1])
        ws = BrowserSocket.open(base, session, task_id)
        with RunnerThread(app):
            try:
                while True:
                    message = json.loads(ws.receive(timeout=120))
                    now = time.time()
                    for event in message["events"]:
                        match = TS_RE.search(event["message"])
                        if match:
                            latencies.append(now - float(match.group(1)))
                    if message["state"] in ("succeeded", "failed", "cancelled"):
                        break
            except ConnectionClosed:
                pass
    remove_images(tag)
    return latencies


def upload_run(database_url: str, data_dir: Path) -> tuple[float, float]:
    """One 1 GB upload: (MB/s, RSS growth in MB)."""
    with web_process(database_url, data_dir, upload_max_bytes=2 * UPLOAD_BYTES) as (base, pid):
        session = login(base, "bench-qvp")
        html = session.get(f"{base}/images/uploads", timeout=10).text
        token = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)
        body = MultipartTarStream(token, UPLOAD_BYTES)
        baseline = rss_bytes(pid)
        with RssSampler(pid) as sampler:
            started = time.perf_counter()
            response = session.post(f"{base}/images/uploads", data=body, allow_redirects=False,
                                    timeout=600, headers={"Content-Type": body.content_type})
            elapsed = time.perf_counter() - started
        assert response.status_code == 302, response.text[:300]
    for leftover in (data_dir / "uploads").iterdir():
        leftover.unlink()
    return body.file_bytes / elapsed / 1e6, (sampler.peak - baseline) / 1024**2


def main() -> int:
    """Run both benchmarks and print their figures; exit 1 when a bar is missed."""
    with tempfile.TemporaryDirectory(prefix="bench-images-") as tmp:
        tmp_path = Path(tmp)
        database_url = os.environ.get("BENCH_DATABASE_URL") or f"sqlite:///{tmp_path / 'bench.db'}"
        app = build_app(database_url, tmp_path / "data")
        with app.app_context():
            upgrade()
            make_user("bench-qvp", role="qvp")
            db.session.merge(BuildPolicy(id=1, allowed_bases=["slipway/test-workspace:*"],
                                         allowed_registries=[]))
            db.session.commit()
        app.config["MFA_REQUIRED_ROLES"] = ""
        ok = True
        with agent_server(app, tmp_path / "agent-ws") as (server_id, _agent):
            medians = []
            for _ in range(RUNS):
                latencies = build_latency(app, server_id)
                medians.append(statistics.median(latencies) * 1000)
                print(f"  build run: {len(latencies)} lines, median {medians[-1]:.0f} ms, "
                      f"max {max(latencies) * 1000:.0f} ms")
        median_ms = statistics.median(medians)
        print(f"build log latency (agent emits -> WebSocket client receives): median of {RUNS} runs "
              f"{median_ms:.0f} ms (bar < 500 ms)")
        ok &= median_ms < 500
        data_dir = tmp_path / "web"
        data_dir.mkdir()
        results = [upload_run(database_url, data_dir) for _ in range(RUNS)]
        for rate, growth in results:
            print(f"  upload run: {rate:.0f} MB/s, RSS growth {growth:.1f} MB")
        rate = statistics.median(r for r, _ in results)
        growth = max(g for _, g in results)
        print(f"upload 1 GB to disk over loopback: median {rate:.0f} MB/s (bar >= 200), "
              f"worst RSS growth {growth:.1f} MB (bar < 50)")
        ok &= rate >= 200 and growth < 50
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
