"""Instructions per request of the edge and of plain nginx, counted by valgrind's callgrind.

Requests/s on a shared machine move by ±15 % from round to round; instruction counts do not. This
tool is for finding where the edge's per-request work goes, before and after a change (it is not a
bar, and `make bench` does not run it): `python bench/profile_edge.py [--annotate N]`.

How: the same two nginx configurations bench_edge_throughput compares — the edge as `start_edge`
writes it, and nginx with a keep-alive `upstream` and no check — each run as one process
(`master_process off`) under callgrind, over one static 1 KiB upstream. Both get the same request
(the owner's Host and edge cookie). After WARM requests the count is switched on for REQUESTS
keep-alive requests over 4 connections, then off. Only user-space instructions are counted: the
system calls (the same for both: two reads, two writes, two epoll waits per request) are not.
`--annotate N` prints each one's N most costly functions, callees included.
"""

from __future__ import annotations

import argparse
import http.client
import logging
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.routing.edge_server import write_main_config  # noqa: E402
from app.routing.push import push  # noqa: E402
from app.routing.signing import edge_cookie_value, ensure_key_file, load_keys  # noqa: E402
from bench.bench_edge_throughput import PLAIN_BODY, UPSTREAM_BODY, nginx_conf, start_nginx, wait_port  # noqa: E402
from tests.agent.helpers import free_port  # noqa: E402
from tests.edgekit import NGINX_BIN, edge_dir  # noqa: E402

WARM = 1000
REQUESTS = 4000
HOST = "alice-vscode.ws.localhost"


def send(port: int, cookie: str, count: int) -> None:
    """`count` GETs over 4 keep-alive connections in turn; every answer must be 200."""
    connections = [http.client.HTTPConnection("127.0.0.1", port, timeout=60) for _ in range(4)]
    for n in range(count):
        connection = connections[n % 4]
        connection.request("GET", "/", headers={"Host": HOST, "Cookie": cookie})
        answer = connection.getresponse()
        answer.read()
        if answer.status != 200:
            raise RuntimeError(f"port {port} answered {answer.status}")


def single_process(conf: Path) -> Path:
    """A copy of nginx configuration `conf` that runs as one process (what callgrind can follow)."""
    text = re.sub(r"^worker_processes \S+;", "worker_processes 1;\nmaster_process off;", conf.read_text(),
                  count=1, flags=re.M)
    copy = conf.with_name(conf.stem + "-single.conf")
    copy.write_text(text)
    return copy


def count(conf: Path, port: int, cookie: str, out: Path,
          before_counting: Callable[[], None] | None = None) -> int:
    """Instructions per request of nginx `conf` (listening on `port`) under callgrind."""
    valgrind = subprocess.Popen(
        ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", "--instr-atstart=no",
         NGINX_BIN, "-p", str(conf.parent), "-c", str(conf)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        if before_counting is None:
            wait_port(port, HOST, cookie)
        else:
            before_counting()
        send(port, cookie, WARM)
        subprocess.run(["callgrind_control", "-i", "on", str(valgrind.pid)], capture_output=True, check=True)
        send(port, cookie, REQUESTS)
        subprocess.run(["callgrind_control", "-i", "off", str(valgrind.pid)], capture_output=True, check=True)
        subprocess.run(["callgrind_control", "-d", str(valgrind.pid)], capture_output=True, check=True)
    finally:
        valgrind.send_signal(3)  # nginx's graceful quit
        valgrind.wait(60)
    totals = re.search(r"^totals: (\d+)", out.with_name(out.name + ".1").read_text(), re.M)
    return int(totals.group(1)) // REQUESTS


def annotate(dump: Path, lines: int) -> str:
    """The `lines` most costly functions of a callgrind dump, callees included."""
    text = subprocess.run(["callgrind_annotate", "--inclusive=yes", str(dump)], capture_output=True,
                          text=True, check=True).stdout
    rows = [row for row in text.splitlines() if re.match(r"^\s*[\d,]+ \(", row) and "0x0000" not in row]
    return "\n".join(rows[:lines])


def main() -> int:
    """Count both and print instructions per request, the edge's extra and, when asked, the profiles."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--annotate", type=int, default=0, metavar="N")
    args = parser.parse_args()
    logging.getLogger("app.routing.push").setLevel(logging.ERROR)  # "unreachable" while callgrind starts
    if not (shutil.which("valgrind") and shutil.which("callgrind_control")):
        print("profile_edge: valgrind is needed (apt-get install valgrind)")
        return 2
    procs = []
    with tempfile.TemporaryDirectory(prefix="slipway-profile-") as tmp, edge_dir() as run:
        up, plain, plain_map, edge_port, admin_port = (free_port() for _ in range(5))
        (run / "www").mkdir()
        (run / "www" / "index.html").write_text("x" * 1024)
        procs.append(start_nginx(nginx_conf(run, "upstream", UPSTREAM_BODY, up=up)))
        plain_conf = single_process(nginx_conf(run, "plain", PLAIN_BODY, up=up, plain=plain,
                                               plain_map=plain_map))
        key_file = run / "edge.key"
        ensure_key_file(key_file)
        settings = {"EDGE_DIR": run / "edge", "EDGE_BIND": "127.0.0.1", "EDGE_PORT": edge_port,
                    "EDGE_ADMIN_PORT": admin_port, "EDGE_KEY_FILE": key_file, "EDGE_SYNC_SECONDS": 3600,
                    "NGINX_BIN": NGINX_BIN, "LISTEN_HOST": "127.0.0.1", "LISTEN_PORT": free_port(),
                    "WORKSPACE_DOMAIN": "ws.localhost:8080"}
        edge_conf = single_process(write_main_config(settings, workers=1).main_conf)
        cookie = f"slipway_edge={edge_cookie_value(load_keys(key_file), HOST, 'alice', 1, 3600)}"

        def load_route() -> None:
            """Push alice's route once the edge (slow under callgrind) listens."""
            deadline = time.monotonic() + 60
            while push(["replace", f"put alice 127.0.0.1 {up} {up} -"], [f"http://127.0.0.1:{admin_port}"],
                       key_file).changed != 1:
                if time.monotonic() > deadline:
                    raise RuntimeError("the edge under callgrind took no route within 60 s")
                time.sleep(0.2)

        try:
            out = Path(tmp)
            plain_ir = count(plain_conf, plain, cookie, out / "plain.out")
            edge_ir = count(edge_conf, edge_port, cookie, out / "edge.out", load_route)
            print(f"instructions per request (callgrind, user space, {REQUESTS} keep-alive requests after "
                  f"{WARM}, the same request to both):")
            print(f"   nginx, keep-alive upstream, no check  {plain_ir:8,d}")
            print(f"   the edge (route, owner check, log)    {edge_ir:8,d}  (+{edge_ir - plain_ir:,d}; "
                  f"plain/edge {plain_ir / edge_ir:.2f})")
            for name in ("plain", "edge") if args.annotate else ():
                dump = out / f"{name}.out.1"
                print(f"\n{name}: instructions over the {REQUESTS} requests")
                print(annotate(dump, args.annotate))
        finally:
            for proc in procs:
                proc.terminate()
                proc.wait(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
