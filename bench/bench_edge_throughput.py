"""Proxied throughput: owner-checked edge nginx vs the same nginx unchecked vs configurable-http-proxy.

How it is measured (one run, same machine, same upstream, same wrk settings):
- upstream: a static 1 KiB page served by its own one-worker nginx (so the upstream is not the limit,
  and no proxy shares a worker with it); every proxy below runs one worker too;
- checked: the Slipway edge (route from its shared-memory table, loaded from the real web app in a
  threaded Werkzeug server; the owner's signed edge cookie checked in Lua, no call to the web app;
  keep-alive upstream chosen by balancer_by_lua), the owner's workspace and edge cookies sent;
- unchecked, same routing: the same nginx build, the same map + `proxy_pass http://$variable`
  shape as the edge, no auth_request (the like-for-like comparison);
- unchecked, keepalive upstream: a fixed `upstream` block with keepalive (the best case);
- CHP: configurable-http-proxy (JupyterHub's proxy, checks nothing), installed with npm into a
  cache folder on first use; skipped with a message when npm is unavailable.
`wrk -t2 -c32 -d5s` against each (after a 1 s warm-up); requests/s compared.
Bars: checked ≥ 0.8× unchecked keep-alive and ≥ 3× CHP. Two runs of this script are not
comparable on a loaded machine; the three proxies of one run are.
"""

from __future__ import annotations

import logging
import re
import shutil
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
from app.routing.edge_server import key_file, start_edge, stop_edge  # noqa: E402
from app.routing.signing import edge_cookie_value, ensure_key_file, load_keys  # noqa: E402
from app.security.tokens import Grant, cookie_name, cookie_value  # noqa: E402
from app.timeutil import utcnow  # noqa: E402
from bench.bench_workspaces import migrated_sqlite  # noqa: E402
from tests.agent.helpers import free_port  # noqa: E402
from tests.builders import make_server as make_server_row  # noqa: E402
from tests.builders import make_user, make_workspace  # noqa: E402
from tests.edgekit import NGINX_BIN, edge_dir, get  # noqa: E402
from tests.support import build_app  # noqa: E402

WRK = ["wrk", "-t2", "-c32", "-d5s"]
CHP_DIR = Path.home() / ".cache" / "slipway-bench" / "chp"
NGINX_COMMON = """
worker_processes 1; daemon off; pid {d}/{name}.pid; error_log {d}/{name}-error.log warn;
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


def nginx_conf(run: Path, name: str, body: str, **ports: int) -> Path:
    """Write a one-worker nginx configuration `name`.conf under `run`."""
    conf = run / f"{name}.conf"
    conf.write_text(NGINX_COMMON.format(d=run, name=name, body=body.format(d=run, **ports)))
    return conf


def wrk(port: int, host: str, cookie: str = "", path: str = "/", extra: tuple[str, ...] = ()) -> float:
    """Requests/s that wrk reports for http://127.0.0.1:port`path` with these headers (`extra`: more)."""
    headers = ["-H", f"Host: {host}"] + (["-H", f"Cookie: {cookie}"] if cookie else [])
    headers += [arg for header in extra for arg in ("-H", header)]
    url = f"http://127.0.0.1:{port}{path}"
    warm = [arg if arg != "-d5s" else "-d1s" for arg in WRK]
    subprocess.run([*warm, *headers, url], capture_output=True, check=True)
    out = subprocess.run([*WRK, *headers, url], capture_output=True, text=True, check=True).stdout
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non2xx:
        raise RuntimeError(f"{non2xx.group(1)} failed responses on port {port}:\n{out}")
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))


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
    """Start the three proxies over one upstream and compare wrk throughput."""
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    if not (shutil.which("wrk") and Path(NGINX_BIN).exists()):
        print("bench_edge_throughput: wrk and nginx are needed; skipped")
        return 0
    procs: list[subprocess.Popen] = []
    with tempfile.TemporaryDirectory(prefix="slipway-bench-tp-") as tmp, edge_dir() as run:
        up, plain, plain_map, web_port, edge_port, chp_port = (free_port() for _ in range(6))
        (run / "www").mkdir()
        (run / "www" / "index.html").write_text("x" * 1024)
        for name, body in (("upstream", UPSTREAM_BODY), ("plain", PLAIN_BODY)):
            conf = nginx_conf(run, name, body, up=up, plain=plain, plain_map=plain_map)
            procs.append(subprocess.Popen([NGINX_BIN, "-p", str(run), "-c", str(conf)]))
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
            wait_port(plain)
            wait_port(edge_port, host, cookie)
            results = {"checked (edge cookie in Lua)": wrk(edge_port, host, cookie),
                       "unchecked, same map routing": wrk(plain_map, host),
                       "unchecked, keepalive upstream": wrk(plain, host)}
            chp = chp_binary()
            if chp:
                procs.append(subprocess.Popen([str(chp), "--ip", "127.0.0.1", "--port", str(chp_port),
                                               "--api-port", str(free_port()), "--default-target",
                                               f"http://127.0.0.1:{up}"], stdout=subprocess.DEVNULL,
                                              stderr=subprocess.DEVNULL))
                wait_port(chp_port)
                results["configurable-http-proxy"] = wrk(chp_port, host)
            else:
                print("configurable-http-proxy unavailable (npm); CHP comparison skipped")
        finally:
            if edge is not None:
                stop_edge(edge)
            server.shutdown()
            for proc in procs:
                proc.terminate()
                proc.wait(10)
    checked = results["checked (edge cookie in Lua)"]
    print(f"proxied throughput, {' '.join(WRK)}, 1 KiB static upstream, one run:")
    for name, rps in results.items():
        print(f"   {name:<30} {rps:9.0f} req/s  (checked/this = {checked / rps:.2f})")
    print("   bars: checked >= 0.8x unchecked nginx (keepalive upstream), >= 3x configurable-http-proxy")
    met = checked >= 0.8 * results["unchecked, keepalive upstream"] and checked >= 3 * results.get(
        "configurable-http-proxy", 0)
    print("all bars met" if met else "a bar was missed")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
