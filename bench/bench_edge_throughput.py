"""Proxied throughput: owner-checked edge nginx vs the same nginx unchecked vs configurable-http-proxy.

How it is measured (one run, same machine, same upstream, same wrk settings):
- upstream: a static 1 KiB page served by its own one-worker nginx (so the upstream is not the limit,
  and no proxy shares a worker with it); every proxy below runs one worker too;
- checked: the Slipway edge (route from its shared-memory table, loaded from the real web app in a
  threaded Werkzeug server; the owner's signed edge cookie checked in Lua, no call to the web app;
  keep-alive upstream chosen by balancer_by_lua; its JSON access log);
- unchecked, same routing: the same nginx build, the same map + `proxy_pass http://$variable`
  shape as the edge, no auth_request (the like-for-like comparison);
- unchecked, keepalive upstream: a fixed `upstream` block with keepalive and no access log (the
  best case, and the bar's reference), and the same with the edge's JSON access log line and
  buffering (what logging alone costs; shown, not the bar);
- CHP: configurable-http-proxy (JupyterHub's proxy, checks nothing), installed with npm into a
  cache folder on first use; skipped with a message when npm is unavailable.
Every proxy runs in its own session, as `start_edge` runs the edge: Linux's autogroup scheduler
shares CPU between sessions, so on a busy machine a proxy left in wrk's session (as the plain
nginx once was) ran up to twice as fast as the same configuration in a session of its own.
Every proxy gets the same request: the owner's Host and Cookie headers (a browser sends them
whatever the proxy; the unchecked ones pass the cookies on unread, like the edge).
`wrk -t2 -c32 -d4s` against each (after a 1 s warm-up), ROUNDS rounds taken in turn; medians of
requests/s compared, every round printed, and beside them each proxy's own CPU time per request
(its processes' user + system time over the run / requests served), which other load moves far
less than requests/s. Bars: checked ≥ 0.8× unchecked keep-alive (no log) and
≥ 3× CHP. Two runs of this script are not comparable on a loaded machine; the proxies of one run
are, and the load average is printed beside them.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from werkzeug.serving import make_server  # noqa: E402

from app.extensions import db  # noqa: E402
from app.models import UserSession  # noqa: E402
from app.routing.edge_server import ACCESS_LOG_BUFFERING, key_file, start_edge, stop_edge  # noqa: E402
from app.routing.signing import edge_cookie_value, ensure_key_file, load_keys  # noqa: E402
from app.security.tokens import Grant, cookie_name, cookie_value  # noqa: E402
from app.timeutil import utcnow  # noqa: E402
from bench.bench_workspaces import migrated_sqlite  # noqa: E402
from tests.agent.helpers import free_port  # noqa: E402
from tests.builders import make_server as make_server_row  # noqa: E402
from tests.builders import make_user, make_workspace  # noqa: E402
from tests.edgekit import NGINX_BIN, edge_dir, get  # noqa: E402
from tests.support import build_app  # noqa: E402

WRK = ["wrk", "-t2", "-c32", "-d4s"]
ROUNDS = 7
CHECKED = "checked (edge cookie in Lua)"
SAME_ROUTING = "unchecked, same map routing"
PLAIN = "unchecked, keepalive upstream"
PLAIN_WITH_LOG = "unchecked, keepalive upstream, edge's JSON log"
CHP_DIR = Path.home() / ".cache" / "slipway-bench" / "chp"
NGINX_COMMON = """
worker_processes {workers}; daemon off; pid {d}/{name}.pid; error_log {d}/{name}-error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off; server_tokens off;
  client_body_temp_path {d}/tb; proxy_temp_path {d}/tp; fastcgi_temp_path {d}/tf;
  uwsgi_temp_path {d}/tu; scgi_temp_path {d}/ts;
{body}
}}
"""
# The upstream runs in its own nginx, apart from every proxy measured, as the workspace does.
UPSTREAM_BODY = "  server {{ listen 127.0.0.1:{up}; root {d}/www; }}"
PLAIN_BODY = """
  upstream up {{ server 127.0.0.1:{up}; keepalive 32; }}
  server {{ listen 127.0.0.1:{plain}; location / {{ proxy_pass http://up; proxy_http_version 1.1;
           proxy_set_header Connection ""; }} }}
  map $host $target {{ default "127.0.0.1:{up}"; }}
  server {{ listen 127.0.0.1:{plain_map};
           location / {{ proxy_pass http://$target; proxy_http_version 1.1; }} }}
"""
# The keep-alive proxy again, writing the edge's own JSON access-log line with the same buffering.
PLAIN_LOG_BODY = """
  upstream up {{{{ server 127.0.0.1:{{up}}; keepalive 32; }}}}
{log}
  server {{{{ listen 127.0.0.1:{{plain_log}}; access_log {{d}}/plain-access.json slipway_json {buffering};
           location / {{{{ set $slipway_user ""; proxy_pass http://up; proxy_http_version 1.1;
           proxy_set_header Connection ""; }}}} }}}}
"""


def edge_log_format() -> str:
    """The edge's `log_format slipway_json`, copied from its template."""
    text = (ROOT / "docker" / "nginx" / "edge.conf.j2").read_text()
    log_format = re.search(r"^ *log_format slipway_json .*?';$", text, re.S | re.M)
    if not log_format:
        raise RuntimeError("edge.conf.j2 has no slipway_json log_format")
    return log_format.group(0).replace("{", "{{").replace("}", "}}")


def plain_log_body() -> str:
    """PLAIN_LOG_BODY with the edge's log format and buffering filled in."""
    return PLAIN_LOG_BODY.format(log=edge_log_format(), buffering=ACCESS_LOG_BUFFERING)


def nginx_conf(run: Path, name: str, body: str, workers: int = 1, **ports: int) -> Path:
    """Write an nginx configuration `name`.conf under `run` (one worker unless told)."""
    conf = run / f"{name}.conf"
    conf.write_text(NGINX_COMMON.format(d=run, name=name, workers=workers, body=body.format(d=run, **ports)))
    return conf


def start_nginx(conf: Path) -> subprocess.Popen:
    """nginx with `conf`, in a session of its own like the edge (see the module docstring)."""
    return subprocess.Popen([NGINX_BIN, "-p", str(conf.parent), "-c", str(conf)], start_new_session=True)


def start_chp(chp: Path, port: int, target: int) -> subprocess.Popen:
    """configurable-http-proxy on `port` sending everything to 127.0.0.1:`target`, in its own session."""
    return subprocess.Popen([str(chp), "--ip", "127.0.0.1", "--port", str(port), "--api-ip", "127.0.0.1",
                             "--api-port", str(free_port()), "--default-target", f"http://127.0.0.1:{target}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process `pid` and its children (an nginx master and its workers)."""
    pids = [pid] + [int(each) for each in subprocess.run(["pgrep", "-P", str(pid)], capture_output=True,
                                                         text=True, check=False).stdout.split()]
    ticks = 0
    for each in pids:
        try:
            fields = Path(f"/proc/{each}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def wrk(port: int, host: str, cookie: str = "", pid: int | None = None, path: str = "/",
        extra: tuple[str, ...] = ()) -> tuple[float, float | None]:
    """Requests/s that wrk reports for http://127.0.0.1:port`path` with these headers (`extra`: more;
    after a 1 s warm-up), and the CPU µs per request of process `pid` (the proxy) over the run when given."""
    headers = ["-H", f"Host: {host}"] + (["-H", f"Cookie: {cookie}"] if cookie else [])
    headers += [arg for header in extra for arg in ("-H", header)]
    url = f"http://127.0.0.1:{port}{path}"
    warm = [arg if not arg.startswith("-d") else "-d1s" for arg in WRK]
    subprocess.run([*warm, *headers, url], capture_output=True, check=True, timeout=60)
    before = cpu_seconds(pid) if pid else 0.0
    out = subprocess.run([*WRK, *headers, url], capture_output=True, text=True, check=True, timeout=60).stdout
    used = cpu_seconds(pid) - before if pid else None
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non2xx:
        raise RuntimeError(f"{non2xx.group(1)} failed responses on port {port}:\n{out}")
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    cpu_us = used / requests * 1e6 if used is not None and requests else None
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)), cpu_us


Target = tuple[int, str, str, int]  # port, Host header, Cookie header, the proxy's pid
Runs = dict[str, list[tuple[float, float | None]]]  # per target, per round: requests/s, CPU µs/request


def compare(targets: dict[str, Target], rounds: int = ROUNDS) -> Runs:
    """wrk against every target in turn, `rounds` times: (requests/s, proxy CPU µs/request) per round.

    Taken in turn so that a burst of load from elsewhere hits every proxy alike; each round is
    printed with the load average. CPU per request moves far less with other load than
    requests/s do: it says what each proxy itself costs.
    """
    runs: Runs = {name: [] for name in targets}
    for number in range(1, rounds + 1):
        for name, (port, host, cookie, pid) in targets.items():
            runs[name].append(wrk(port, host, cookie, pid))
        done = ", ".join(f"{name} {values[-1][0]:.0f}" for name, values in runs.items())
        print(f"   round {number}: {done} req/s; load average {os.getloadavg()[0]:.1f}", flush=True)
    return runs


def report(runs: Runs, checked: str = CHECKED, plain: str = PLAIN) -> bool:
    """Print the medians with checked/each ratios; True when both bars hold (CHP's only when run)."""
    medians = {name: statistics.median(rps for rps, _ in values) for name, values in runs.items()}
    for name, rps in medians.items():
        cpu = [us for _, us in runs[name] if us is not None]
        cost = f", {statistics.median(cpu):5.1f} µs CPU/request" if cpu else ""
        print(f"   {name:<48} {rps:9.0f} req/s median  (checked/this = {medians[checked] / rps:.2f}{cost})")
    met = medians[checked] >= 0.8 * medians[plain]
    pairs = zip(runs[checked], runs[plain], strict=True)
    each = ", ".join(f"{mine / theirs:.2f}" for (mine, _), (theirs, _) in pairs)
    print(f"   bar: checked >= 0.8x {plain}: {medians[checked] / medians[plain]:.2f}x of the medians "
          f"(round by round {each}), " + ("met" if met else "MISSED"))
    if "configurable-http-proxy" in medians:
        times = medians[checked] / medians["configurable-http-proxy"]
        chp_met = times >= 3
        print(f"   bar: checked >= 3x configurable-http-proxy: {times:.2f}x, "
              + ("met" if chp_met else "MISSED"))
        met = met and chp_met
    return met


def chp_binary() -> Path | None:
    """configurable-http-proxy, installed with npm into a cache folder on first use."""
    binary = CHP_DIR / "node_modules" / ".bin" / "configurable-http-proxy"
    if not binary.exists() and shutil.which("npm"):
        CHP_DIR.mkdir(parents=True, exist_ok=True)
        subprocess.run(["npm", "install", "--silent", "--no-audit", "--no-fund", "--prefix", str(CHP_DIR),
                        "configurable-http-proxy@4"], capture_output=True, check=False, timeout=300)
    return binary if binary.exists() else None


def wait_port(port: int, host: str = "x", cookie: str = "") -> None:
    """Until 127.0.0.1:port answers 200."""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            if get(port, host, "/", {"Cookie": cookie} if cookie else {})[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"port {port} did not answer 200")


def main() -> int:
    """Start the proxies over one upstream and compare wrk throughput, ROUNDS rounds in turn."""
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    if not (shutil.which("wrk") and Path(NGINX_BIN).exists()):
        print("bench_edge_throughput: wrk and nginx are needed; skipped")
        return 0
    procs: list[subprocess.Popen] = []
    with tempfile.TemporaryDirectory(prefix="slipway-bench-tp-") as tmp, edge_dir() as run:
        up, plain, plain_map, plain_log, web_port, edge_port, chp_port = (free_port() for _ in range(7))
        (run / "www").mkdir()
        (run / "www" / "index.html").write_text("x" * 1024)
        bodies = {"upstream": UPSTREAM_BODY, "plain": PLAIN_BODY, "plain-log": plain_log_body()}
        for name, body in bodies.items():
            procs.append(start_nginx(nginx_conf(run, name, body, up=up, plain=plain, plain_map=plain_map,
                                                plain_log=plain_log)))
        plain_pid, plain_log_pid = procs[1].pid, procs[2].pid
        admin_port = free_port()
        app = build_app(migrated_sqlite(Path(tmp)), Path(tmp), LISTEN_PORT=web_port, EDGE_DIR=run / "edge",
                        EDGE_PORT=edge_port, WORKSPACE_DOMAIN=f"ws.localhost:{edge_port}",
                        NGINX_BIN=NGINX_BIN, EDGE_ADMIN_PORT=admin_port,
                        EDGE_ADMIN_URLS=f"http://127.0.0.1:{admin_port}")
        server = make_server("127.0.0.1", web_port, app, threaded=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        edge = None
        try:
            with app.app_context():
                alice = make_user("alice")
                make_workspace(alice, make_server_row(), ports={"vscode": up, "jupyter": up})
                row = UserSession(user_id=alice.id, session_token="b" * 64,
                                  expires_at=utcnow() + timedelta(hours=1))
                db.session.add(row)
                db.session.commit()
                ensure_key_file(key_file(app.config))
                with app.test_request_context():
                    host = "alice-vscode.ws.localhost"
                    cookie = f"{cookie_name()}={cookie_value(Grant(alice.id, 'alice', host, row.id))}"
                    keys = load_keys(key_file(app.config))
                    cookie += f"; slipway_edge={edge_cookie_value(keys, host, 'alice', row.id, 3600)}"
            edge = start_edge(app.config, workers=1)
            for port in (plain, plain_log):
                wait_port(port)
            wait_port(edge_port, host, cookie)
            # The same request to every proxy: the browser's Host and Cookie headers (the unchecked
            # ones pass the cookies on unread, as the edge passes them to the workspace).
            # The bar's pair first and side by side: a burst of load from elsewhere hits both alike.
            targets = {CHECKED: (edge_port, host, cookie, edge.pid), PLAIN: (plain, host, cookie, plain_pid),
                       PLAIN_WITH_LOG: (plain_log, host, cookie, plain_log_pid),
                       SAME_ROUTING: (plain_map, host, cookie, plain_pid)}
            chp = chp_binary()
            if chp:
                procs.append(start_chp(chp, chp_port, up))
                wait_port(chp_port)
                targets["configurable-http-proxy"] = (chp_port, host, cookie, procs[-1].pid)
            else:
                print("configurable-http-proxy unavailable (npm); CHP comparison skipped")
            print(f"proxied throughput, {' '.join(WRK)}, 1 KiB static upstream, one worker per proxy, "
                  f"{ROUNDS} rounds in turn; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs:")
            runs = compare(targets)
        finally:
            if edge is not None:
                stop_edge(edge)
            server.shutdown()
            for proc in procs:
                proc.terminate()
                proc.wait(10)
    met = report(runs)
    print("all bars met" if met else "a bar was missed")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
