"""JupyterHub + DockerSpawner + configurable-http-proxy for the side-by-side bench, all on loopback.

`ensure_venv()` installs JupyterHub and DockerSpawner into a scratch venv under ~/.cache/slipway-bench/peers
(pip, from the configured index); configurable-http-proxy comes from npm through
`bench_edge_throughput.chp_binary()`. `build_image()` builds the single-user image FROM
slipway/workspace:latest with the jupyterhub wheels downloaded on the host. `running_hub()` starts the
hub (which starts the proxy) and, on the way out, stops it, kills the proxy and the forwarder, and
removes every container of the run.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from tests.agent.helpers import free_port

HERE = Path(__file__).resolve().parent
CACHE = Path.home() / ".cache" / "slipway-bench" / "peers"
VENV = CACHE / "venv"
JUPYTERHUB, DOCKERSPAWNER = "jupyterhub==6.1.1", "dockerspawner==14.0.0"
BASE_IMAGE = "slipway/workspace:latest"
PEER_IMAGE = "slipway/peer-singleuser:latest"
LABEL = "slipway.bench.peers"


def ensure_venv() -> Path:
    """The scratch venv's `jupyterhub` command, installing the pinned packages on first use."""
    command = VENV / "bin" / "jupyterhub"
    stamp = VENV / f".{JUPYTERHUB}+{DOCKERSPAWNER}"
    if not stamp.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV)], check=True, timeout=120)
        subprocess.run([str(VENV / "bin" / "pip"), "install", "-q", JUPYTERHUB, DOCKERSPAWNER],
                       check=True, timeout=600, capture_output=True)
        stamp.touch()
    return command


def _docker_id(image: str) -> str:
    """The image's id, or '' when it is not on this host."""
    out = subprocess.run(["docker", "image", "inspect", "-f", "{{.Id}}", image], capture_output=True,
                         text=True, check=False)
    return out.stdout.strip() if out.returncode == 0 else ""


def build_image() -> str:
    """Build PEER_IMAGE from BASE_IMAGE unless one from the same inputs exists; returns its name."""
    base_id = _docker_id(BASE_IMAGE)
    if not base_id:
        raise RuntimeError(f"{BASE_IMAGE} is not built (make images)")
    inputs = [HERE / name for name in ("Dockerfile", "start.sh", "hub_forward.py")]
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in inputs) + f"{base_id} {JUPYTERHUB}".encode())
    build_hash = digest.hexdigest()[:16]
    label = '{{ index .Config.Labels "slipway.build-hash" }}'
    have = subprocess.run(["docker", "image", "inspect", "-f", label, PEER_IMAGE], capture_output=True,
                          text=True, check=False).stdout.strip()
    if have == build_hash:
        return PEER_IMAGE
    old_id = _docker_id(PEER_IMAGE)
    with tempfile.TemporaryDirectory(prefix="slipway-peer-image-") as context:
        for path in inputs:
            shutil.copy(path, context)
        # the wheels for the image's Python (3.11, like the host's); the build itself has no network
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", JUPYTERHUB, "-d", f"{context}/wheels",
                        "--only-binary=:all:", "--python-version", "3.11", "--implementation", "cp",
                        "--platform", "manylinux2014_x86_64", "--platform", "manylinux_2_17_x86_64",
                        "--platform", "manylinux_2_28_x86_64"], check=True, timeout=600, capture_output=True)
        out = subprocess.run(["docker", "build", "--network", "none",
                              "--build-arg", f"BASE_IMAGE={BASE_IMAGE}", "--build-arg",
                              f"JUPYTERHUB_VERSION={JUPYTERHUB.split('==')[1]}",
                              "--label", f"slipway.build-hash={build_hash}", "-t", PEER_IMAGE, context],
                             capture_output=True, text=True, timeout=900, check=False,
                             env={**os.environ, "DOCKER_BUILDKIT": "0"})
        if out.returncode:
            raise RuntimeError(f"building {PEER_IMAGE} failed:\n{out.stdout[-3000:]}{out.stderr[-3000:]}")
    if old_id and old_id != _docker_id(PEER_IMAGE):
        subprocess.run(["docker", "image", "rm", old_id], capture_output=True, check=False)
    return PEER_IMAGE


@dataclass
class Hub:
    """A running JupyterHub: its API on hub_port, its proxy's public listener on proxy_port."""

    hub_port: int
    proxy_port: int
    token: str
    prefix: str

    def api(self, method: str, path: str, timeout: float = 30) -> tuple[int, dict]:
        """Call the hub's REST API (`path` under /hub/api) with the bench service's token."""
        conn = http.client.HTTPConnection("127.0.0.1", self.hub_port, timeout=timeout)
        try:
            conn.request(method, f"/hub/api{path}", body=b"" if method != "GET" else None,
                         headers={"Authorization": f"token {self.token}"})
            response = conn.getresponse()
            body = response.read()
            return response.status, (json.loads(body) if body.strip() else {})
        finally:
            conn.close()

    def proxied(self, path: str, timeout: float = 5) -> tuple[int, str]:
        """GET `path` through the proxy's public listener with the token; (status, body)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.proxy_port, timeout=timeout)
        try:
            conn.request("GET", path, headers={"Authorization": f"token {self.token}"})
            response = conn.getresponse()
            return response.status, response.read().decode(errors="replace")
        finally:
            conn.close()

    def running(self, name: str) -> bool:
        """True while the user's default server runs or is starting/stopping."""
        status, user = self.api("GET", f"/users/{name}")
        if status != 200:
            raise RuntimeError(f"GET user {name}: {status}")
        server = user.get("servers", {}).get("", {})
        return bool(server) or bool(user.get("pending"))


def _stop_process(proc: subprocess.Popen, timeout: float) -> None:
    """SIGTERM, then SIGKILL after `timeout` seconds."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def _remove_containers(prefix: str) -> None:
    """Remove every container this run's spawner made (label filter)."""
    ids = subprocess.run(["docker", "ps", "-aq", "--filter", f"label={LABEL}={prefix}"], capture_output=True,
                         text=True, check=False).stdout.split()
    if ids:
        subprocess.run(["docker", "rm", "-f", *ids], capture_output=True, check=False, timeout=120)


def _kill_pid_file(path: Path) -> None:
    """SIGKILL the process named in a pid file, if it still runs (the hub normally ends it)."""
    try:
        pid = int(path.read_text().strip())
        os.kill(pid, signal.SIGKILL)
    except (OSError, ValueError):
        pass


def _stop_started(run_dir: Path, processes: list[subprocess.Popen]) -> None:
    """Stop the hub (it stops its servers and its proxy), the proxy if it is left, then the forwarder."""
    if processes:
        _stop_process(processes[0], 60)
    _kill_pid_file(run_dir / "jupyterhub-proxy.pid")
    for proc in processes[1:]:
        _stop_process(proc, 10)


def _launch(command: Path, env: dict[str, str], run_dir: Path, log: IO[str],
            processes: list[subprocess.Popen]) -> Hub | None:
    """Start the forwarder and the hub on fresh free ports; None when a port was taken meanwhile."""
    hub_port, proxy_port, proxy_api = free_port(), free_port(), free_port()
    env = {**env, "PEERS_HUB_PORT": str(hub_port), "PEERS_PROXY_PORT": str(proxy_port),
           "PEERS_PROXY_API_PORT": str(proxy_api)}
    hub = subprocess.Popen([str(command), "-f", str(HERE / "jupyterhub_config.py")], cwd=run_dir, env=env,
                           stdout=log, stderr=subprocess.STDOUT)
    socket = Path(env["PEERS_SOCKET_DIR"]) / "hub.sock"
    socket.unlink(missing_ok=True)
    forwarder = subprocess.Popen([str(VENV / "bin" / "python"), str(HERE / "hub_forward.py"), "unix-to-tcp",
                                  str(socket), "127.0.0.1", str(hub_port)])
    processes[:] = [hub, forwarder]
    handle = Hub(hub_port, proxy_port, env["PEERS_TOKEN"], env["PEERS_NAME_PREFIX"])
    deadline = time.monotonic() + 60
    while hub.poll() is None and time.monotonic() < deadline:
        try:
            if handle.proxied("/hub/api/")[0] == 200:
                return handle
        except OSError:
            pass
        time.sleep(0.2)
    text = (run_dir / "hub.log").read_text()
    if hub.poll() is not None and "Address already in use" in text:
        return None  # another process took one of the ports between free_port() and the bind
    raise RuntimeError(f"jupyterhub did not answer through its proxy within 60 s:\n{text[-3000:]}")


@contextmanager
def running_hub(chp: Path, image: str = PEER_IMAGE, cpu: float = 2.0, memory: str = "1G") -> Iterator[Hub]:
    """Start the hub (and through it the proxy) on free loopback ports; tear everything down after."""
    command = ensure_venv()
    prefix = f"slipway-peer-{secrets.token_hex(3)}"
    run_dir = Path(tempfile.mkdtemp(prefix="slipway-peers-"))
    socket_dir = run_dir / "sock"
    socket_dir.mkdir()
    run_dir.chmod(0o755)
    socket_dir.chmod(0o755)
    env = {**os.environ, "PEERS_PROXY_TOKEN": secrets.token_hex(32), "PEERS_TOKEN": secrets.token_hex(32),
           "PEERS_RUN_DIR": str(run_dir), "PEERS_SOCKET_DIR": str(socket_dir), "PEERS_CHP": str(chp),
           "PEERS_IMAGE": image, "PEERS_NAME_PREFIX": prefix, "PEERS_CPU": str(cpu), "PEERS_MEMORY": memory}
    log = (run_dir / "hub.log").open("w")
    processes: list[subprocess.Popen] = []
    try:
        for _ in range(3):
            handle = _launch(command, env, run_dir, log, processes)
            if handle is not None:
                break
            _stop_started(run_dir, processes)
        else:
            raise RuntimeError("jupyterhub: its ports were taken three times in a row")
        yield handle
    finally:
        _stop_started(run_dir, processes)  # cleanup_servers: the hub stops the servers on the way out
        _remove_containers(prefix)
        log.close()
        if os.environ.get("PEERS_KEEP_LOG"):
            print(f"   hub log kept in {run_dir / 'hub.log'}")
            shutil.rmtree(socket_dir, ignore_errors=True)
        else:
            shutil.rmtree(run_dir, ignore_errors=True)
