"""Memory of the production processes: gunicorn master + web workers, and `flask worker`.

    BENCH_DATABASE_URL=mysql+pymysql://slipway:...@127.0.0.1/slipway_test_x BENCH_MEMORY_USERS=100 \
        python bench/bench_memory.py

How it is measured: a fresh MariaDB database (`BENCH_DATABASE_URL`, default
`slipway_test_ops_bench` on 127.0.0.1; `sqlite` for a file) is migrated and `USERS` approved
users are created. gunicorn starts with gunicorn.conf.py (the production settings: 2 workers x
`SLIPWAY_GUNICORN_THREADS` (16) threads, preload as configured; `SLIPWAY_GUNICORN_PRELOAD=false`
to compare) beside `flask --app wsgi worker`, both with `MALLOC_ARENA_MAX` as in production (2;
0 for glibc's default). Figures are read from /proc after start-up (idle `SETTLE` s), two thirds
into `SECONDS` of traffic and after it: `USERS` threads, each logged in through the form, loading
their pages. Per process, PSS is split by kind of mapping: malloc's main heap, other anonymous
memory (Python's object arenas, other threads' malloc arenas, stacks), shared libraries, files.
- RSS counts every page a process maps, shared or not (what `ps` and `top` show); summed
  over forked processes it counts shared pages several times.
- PSS divides each shared page among the processes sharing it: the sum is the real total.
Goal (issue: production bundle): web + worker < 250 MB at 100 users. Measured 2026-11-30 (2 cores
shared with other jobs, load average 15-70), PSS after traffic: 352 MB before (median of 3), 257 MB
now (median of 6: 253-260; master 48, web workers 65-70 each, task worker 75). README
"Operations" has the table and where the rest goes; bench/import_memory.py the imports by package.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import requests  # noqa: E402
from flask_migrate import upgrade  # noqa: E402

from app.extensions import db  # noqa: E402
from bench.benchdb import fresh_database  # noqa: E402
from tests.builders import PASSWORD, make_user  # noqa: E402
from tests.gunicorn_run import gunicorn  # noqa: E402
from tests.support import build_app  # noqa: E402

DEFAULT_URL = "mysql+pymysql://slipway:slipway-test-password@127.0.0.1/slipway_test_ops_bench"
USERS = int(os.environ.get("BENCH_MEMORY_USERS", "20"))
SECONDS = float(os.environ.get("BENCH_MEMORY_SECONDS", "30"))
THREADS = int(os.environ.get("SLIPWAY_GUNICORN_THREADS", "16"))  # per web worker, as in production
SETTLE = 3.0
PAGES = ("/workspaces/", "/account/", "/menu", "/account/api-keys")
CSRF = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')


def memory_mb(pid: int) -> tuple[float, float]:
    """(RSS, PSS) of one process in MB, from /proc/<pid>/smaps_rollup."""
    fields = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in ("Rss", "Pss"):
            fields[name] = int(rest.split()[0]) / 1024
    return fields["Rss"], fields["Pss"]


def breakdown(pid: int) -> dict[str, float]:
    """PSS in MB of one process by kind of mapping: malloc heap, other anonymous memory (glibc
    arenas of threads, big allocations, thread stacks), shared libraries (.so), other files."""
    kinds: dict[str, float] = {}
    kind = "anon"
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        head = line.split(None, 5)
        if "-" in head[0] and not head[0].endswith(":"):
            path = head[5] if len(head) > 5 else ""
            kind = ("heap" if path == "[heap]" else "anon" if not path or path.startswith("[stack")
                    else "libs" if ".so" in path else "other" if path.startswith("[") else "files")
        elif head[0] == "Pss:":
            kinds[kind] = kinds.get(kind, 0.0) + int(head[1]) / 1024
    return kinds


def children(pid: int) -> list[int]:
    """The direct children of `pid` (gunicorn's workers)."""
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return [int(item) for item in text.split()]


def snapshot(label: str, master: int, worker: int) -> None:
    """Print RSS and PSS per process and the web + worker totals."""
    rows = [("web master", master)] + [(f"web worker {n}", pid) for n, pid in enumerate(children(master), 1)]
    rows.append(("task worker", worker))
    total_rss = total_pss = 0.0
    print(f"-- {label}")
    for name, pid in rows:
        rss, pss = memory_mb(pid)
        total_rss, total_pss = total_rss + rss, total_pss + pss
        kinds = breakdown(pid)
        detail = "  ".join(f"{kind} {kinds.get(kind, 0.0):5.1f}" for kind in ("heap", "anon", "libs",
                                                                                 "files"))
        print(f"   {name:14s} pid {pid:7d}  RSS {rss:6.1f} MB  PSS {pss:6.1f} MB  ({detail})")
    print(f"   {'web + worker':14s}              RSS {total_rss:6.1f} MB  PSS {total_pss:6.1f} MB")


def user_traffic(base: str, username: str, stop: threading.Event, counts: list[int]) -> None:
    """Log in through the form, then load the user's pages until `stop`."""
    with requests.Session() as session:
        token = CSRF.search(session.get(f"{base}/login", timeout=30).text).group(1)
        response = session.post(f"{base}/login", data={"username": username, "password": PASSWORD,
                                                        "csrf_token": token}, timeout=30)
        assert response.status_code == 200, response.status_code
        n = 0
        while not stop.is_set():
            assert session.get(f"{base}{PAGES[n % len(PAGES)]}", timeout=30).status_code == 200
            n += 1
        counts.append(n)


def main() -> None:
    """Start the processes, measure idle, drive traffic, measure again."""
    tmp = Path(tempfile.mkdtemp(prefix="slipway-bench-memory-"))
    url = fresh_database(DEFAULT_URL, tmp)
    app = build_app(url, tmp / "migrate")
    with app.app_context():
        upgrade()
        names = [make_user(f"mem{n}").username for n in range(USERS)]
        db.engine.dispose()
    # The production processes' setting (docker/*.Dockerfile, scripts/run.sh); 0 = glibc's default.
    arenas = os.environ.get("MALLOC_ARENA_MAX", "2")
    env = {**os.environ, "SLIPWAY_ENV": "testing", "DATABASE_URL": url,
           "SLIPWAY_DATA_DIR": str(tmp / "worker"), "MALLOC_ARENA_MAX": arenas}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    with open(tmp / "worker.log", "wb") as log:
        worker = subprocess.Popen([sys.executable, "-m", "flask", "--app", "wsgi", "worker"], cwd=ROOT,
                                  env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        web_env = {"MALLOC_ARENA_MAX": arenas}
        with gunicorn(url, tmp / "web", workers=2, threads=THREADS, env=web_env) as (base, master):
            preload = os.environ.get("SLIPWAY_GUNICORN_PRELOAD", "default (true)")
            print(f"gunicorn 2 workers x {THREADS} threads, preload {preload}, MALLOC_ARENA_MAX={arenas}; "
                  f"database {url.split('@')[-1]}")
            time.sleep(SETTLE)
            snapshot("after start-up", master.pid, worker.pid)
            stop, counts = threading.Event(), []
            threads = [threading.Thread(target=user_traffic, args=(base, name, stop, counts))
                       for name in names]
            for thread in threads:
                thread.start()
            time.sleep(SECONDS * 2 / 3)
            snapshot(f"during traffic ({USERS} users, at {SECONDS * 2 / 3:g} s)", master.pid, worker.pid)
            time.sleep(SECONDS / 3)
            stop.set()
            for thread in threads:
                thread.join(60)
            print(f"-- traffic: {USERS} logged-in users, {sum(counts)} page loads in {SECONDS:g} s")
            snapshot(f"after traffic ({USERS} users)", master.pid, worker.pid)
    finally:
        worker.terminate()
        worker.wait(30)
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
