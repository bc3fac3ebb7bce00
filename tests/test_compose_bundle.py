"""The production bundle (docker/compose.yml) built and run with Debian's docker-compose, as operators do.

One bundle per module, under a unique project name, every port on 127.0.0.1:
- it starts on the previous migration head (0016) with an admin in it (written at head, then the schema
  downgraded), then `up` upgrades it to head
  (the web entrypoint migrates) and the data is intact;
- login → approve (which provisions) → the workspace link serves through the edge container → stop;
- web, worker and edge run as a non-root user with no capability; only the agent has the Docker socket;
- `down -v` leaves no container, network or volume of the project.
No public registry is reachable here: the web and agent images are built FROM the local debootstrap base
(slipway/debian-base:bookworm, made by `make images`), and MariaDB and Redis are local stand-ins built
from docker/mariadb.Dockerfile and docker/redis.Dockerfile. Run by `make test-compose`, not `make test`.
"""

from __future__ import annotations

import base64
import os
import re
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from subprocess import CompletedProcess
from urllib.parse import urlsplit

import pymysql
import pytest
import requests

from tests.support import require_service

pytestmark = [pytest.mark.integration, pytest.mark.compose]

ROOT = Path(__file__).resolve().parent.parent
DOCKER = ROOT / "docker"
COMPOSE_FILE = DOCKER / "compose.yml"
BASE_IMAGE = "slipway/debian-base:bookworm"
WORKSPACE_IMAGE = "slipway/test-workspace:latest"
TAG = "compose-test"
PREVIOUS_HEAD = "0016"
ADMIN, ADMIN_PASSWORD = "boss", "Correct-Horse-Battery-42"
# Container names are per Docker host: a name of its own keeps other runs' "alice" out of the way.
USER, USER_PASSWORD = f"compose-{secrets.token_hex(3)}", "Staple-Lantern-Orbit-77"
CSRF_RE = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')


def _run(args: list[str], timeout: float, **kw: object) -> CompletedProcess:
    """Run a command; fail the test with its output when it fails."""
    result = subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False, **kw)
    assert result.returncode == 0, f"{' '.join(args[:6])} … exited {result.returncode}:\n" \
        f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _wait_until(check: Callable[[], object], seconds: float, what: str,
                explain: Callable[[], object] | None = None) -> object:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.5)
    pytest.fail(f"{what} not within {seconds:.0f} s" + (f"; {explain()}" if explain else ""))


def _available() -> bool:
    if not (shutil.which("docker") and shutil.which("docker-compose")):
        return False
    probe = subprocess.run(["docker", "image", "inspect", BASE_IMAGE, WORKSPACE_IMAGE],
                           capture_output=True, timeout=30, check=False)
    return probe.returncode == 0


@dataclass
class Bundle:
    """A running bundle: its project name, env file, ports and secrets."""

    project: str
    env_file: Path
    env: dict[str, str]
    workspace_root: Path

    @property
    def web(self) -> str:
        return f"http://127.0.0.1:{self.env['WEB_PORT']}"

    @property
    def edge(self) -> str:
        return f"http://127.0.0.1:{self.env['EDGE_PORT']}"

    def argv(self, *args: str) -> list[str]:
        """The `docker-compose` command line for this project."""
        return ["docker-compose", "-p", self.project, "-f", str(COMPOSE_FILE),
                "--env-file", str(self.env_file), *args]

    def compose(self, *args: str, timeout: float = 300, stdin: str | None = None) -> CompletedProcess:
        """`docker-compose` on this project; fails the test when it fails."""
        return _run(self.argv(*args), timeout, input=stdin)

    def sql(self, query: str, *params: object) -> list[tuple]:
        """Rows of `query`, read through the database's loopback port."""
        conn = pymysql.connect(host="127.0.0.1", port=int(self.env["DB_PORT"]), user="slipway",
                               password=self.env["MARIADB_PASSWORD"], database="slipway", connect_timeout=5)
        try:
            with conn.cursor() as cursor:
                cursor.execute(query, params)
                return list(cursor.fetchall())
        finally:
            conn.close()


def _build_images() -> None:
    """The web and agent images FROM the local base, the MariaDB and Redis stand-ins (layer cache reused)."""
    extra_ca = DOCKER / "extra-ca"
    for crt in Path("/usr/local/share/ca-certificates").glob("*.crt"):  # pip may pass a proxy with its CA
        shutil.copy(crt, extra_ca / crt.name)
    for name in ("mariadb", "redis"):
        dockerfile = DOCKER / f"{name}.Dockerfile"
        _run(["docker", "build", "-q", "--build-arg", f"BASE={BASE_IMAGE}", "-f", str(dockerfile),
              "-t", f"slipway/{name}:{TAG}", str(DOCKER)], 900)


def _env(project: str, workspace_root: Path) -> dict[str, str]:
    web, edge, agent, db, redis = _free_ports(5)
    return {
        "SECRET_KEY": secrets.token_urlsafe(48),
        "SLIPWAY_SECRETS_KEY": base64.urlsafe_b64encode(os.urandom(32)).decode(),
        "MARIADB_ROOT_PASSWORD": secrets.token_urlsafe(24),
        "MARIADB_PASSWORD": secrets.token_urlsafe(24),
        "REDIS_PASSWORD": secrets.token_urlsafe(24),
        "AGENT_TOKEN": secrets.token_urlsafe(48),
        "SLIPWAY_PUBLIC_URL": f"http://127.0.0.1:{web}",
        "SLIPWAY_WORKSPACE_DOMAIN": f"ws.localhost:{edge}",
        "SLIPWAY_HTTPS": "false",  # plain HTTP on loopback; TLS: docker/nginx/tls-example.conf
        "SLIPWAY_TRUSTED_PROXY_COUNT": "1",
        "WEB_PORT": str(web), "EDGE_PORT": str(edge), "AGENT_PORT": str(agent),
        "DB_PORT": str(db), "REDIS_PORT": str(redis),
        "SLIPWAY_WORKSPACE_ROOT": str(workspace_root),
        "SLIPWAY_DEFAULT_IMAGE": WORKSPACE_IMAGE,
        "SLIPWAY_INSTANCE": project,
        "AGENT_NETWORK": f"{project}-workspaces",
        # Only qvp must use MFA here, so the test's admin logs in with a password.
        "SLIPWAY_MFA_REQUIRED_ROLES": "qvp",
        "BASE_IMAGE": BASE_IMAGE,
        "SLIPWAY_WEB_IMAGE": f"slipway/web:{TAG}",
        "SLIPWAY_AGENT_IMAGE": f"slipway/agent:{TAG}",
        "MARIADB_IMAGE": f"slipway/mariadb:{TAG}",
        "REDIS_IMAGE": f"slipway/redis:{TAG}",
    }


def _leftovers(project: str) -> dict[str, str]:
    """Containers, networks and volumes still carrying the project's compose label."""
    label = f"label=com.docker.compose.project={project}"
    found = {}
    for kind, args in (("containers", ["ps", "-aq"]), ("networks", ["network", "ls", "-q"]),
                       ("volumes", ["volume", "ls", "-q"])):
        out = _run(["docker", *args, "--filter", label], 60).stdout.strip()
        if out:
            found[kind] = out
    return found


def _remove_workspaces(bundle: Bundle) -> None:
    """Remove what the bundle's agent made for the test: workspace containers, their network, folders."""
    ids = subprocess.run(["docker", "ps", "-aq", "--filter", f"label=slipway.app.instance={bundle.project}"],
                         capture_output=True, text=True, timeout=60, check=False).stdout.split()
    if ids:
        subprocess.run(["docker", "rm", "-f", *ids], capture_output=True, timeout=120, check=False)
    subprocess.run(["docker", "network", "rm", bundle.env["AGENT_NETWORK"]], capture_output=True, timeout=60,
                   check=False)
    shutil.rmtree(bundle.workspace_root, ignore_errors=True)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bundle]:
    """Images built; the database on the previous head with an admin in it; then the whole bundle up."""
    require_service("Docker, docker-compose and the local base + test images (make images)", _available())
    started = time.monotonic()
    _build_images()
    project = f"slipwaytest{secrets.token_hex(4)}"
    tmp = tmp_path_factory.mktemp("compose")
    workspace_root = tmp / "workspaces"
    workspace_root.mkdir()
    env = _env(project, workspace_root)
    env_file = tmp / ".env"
    env_file.write_text("".join(f"{key}={value}\n" for key, value in env.items()))
    env_file.chmod(0o600)
    running = Bundle(project, env_file, env, workspace_root)
    try:
        running.compose("build", "web", "agent", timeout=1200)
        print(f"images built in {time.monotonic() - started:.0f} s")
        # The release before this one: its schema (0016) with data in it. The data is written through
        # this release's app (whose models need the current schema), then the schema is taken back down
        # to the previous head, the way an operator rolls back; `up` must bring it forward intact.
        running.compose("up", "-d", "db", "redis", timeout=300)
        _wait_until(lambda: _healthy(running, "db"), 120, "MariaDB healthy")
        one_off = ("run", "--rm", "--no-deps", "-e", "SLIPWAY_MIGRATE_ON_START=false", "web")
        running.compose(*one_off, "flask", "db", "upgrade")
        running.compose(*one_off, "flask", "create-admin", "--username", ADMIN, "--email", "boss@example.org",
                        "--password-stdin", stdin=ADMIN_PASSWORD + "\n")
        running.compose(*one_off, "flask", "db", "downgrade", PREVIOUS_HEAD)
        up = time.monotonic()
        running.compose("up", "-d", timeout=600)
        _wait_until(lambda: _healthy(running, "web") and _healthy(running, "edge"), 180, "web, edge healthy")
        print(f"bundle up (and upgraded) in {time.monotonic() - up:.0f} s")
        yield running
    finally:
        subprocess.run(running.argv("down", "-v", "--remove-orphans", "-t", "10"), capture_output=True,
                       timeout=300, check=False)
        _remove_workspaces(running)


def _healthy(bundle: Bundle, service: str) -> bool:
    ids = subprocess.run(bundle.argv("ps", "-q", service), capture_output=True, text=True, timeout=60,
                         check=False).stdout.split()
    if not ids:
        return False
    state = subprocess.run(["docker", "inspect", "-f", "{{.State.Health.Status}}", ids[0]],
                           capture_output=True, text=True, timeout=30, check=False).stdout.strip()
    return state == "healthy"


def _csrf(session: requests.Session, url: str) -> str:
    match = CSRF_RE.search(session.get(url, timeout=10).text)
    assert match, f"no csrf_token on {url}"
    return match.group(1)


def _login(bundle: Bundle, username: str, password: str) -> requests.Session:
    session = requests.Session()
    token = _csrf(session, f"{bundle.web}/login")
    response = session.post(f"{bundle.web}/login", timeout=10, allow_redirects=False,
                            data={"username": username, "password": password, "csrf_token": token})
    assert response.status_code == 302, response.text[-2000:]
    return session


def test_upgrade_from_previous_head_keeps_data(bundle: Bundle) -> None:
    head = bundle.compose("exec", "-T", "web", "flask", "db", "heads").stdout.split()[0]
    assert bundle.sql("SELECT version_num FROM alembic_version") == [(head,)]
    assert head != PREVIOUS_HEAD
    # The admin written on the old schema is there, with its audit row, and logs in.
    assert bundle.sql("SELECT role, status FROM users WHERE username = %s", ADMIN) == [("admin", "approved")]
    assert bundle.sql("SELECT COUNT(*) FROM audit_logs WHERE action_type = 'admin_created'") == [(1,)]
    page = _login(bundle, ADMIN, ADMIN_PASSWORD).get(f"{bundle.web}/admin/audit", timeout=10)
    assert page.status_code == 200 and "admin_created" in page.text


def _flashes(html: str) -> list[str]:
    """The flash messages on a page, for a failure's message."""
    found = re.findall(r'class="alert[^"]*"[^>]*>(.*?)</div>', html, re.S)
    return [re.sub(r"<[^>]+>|\s+", " ", text).strip() for text in found]


def _tasks(bundle: Bundle) -> list[tuple]:
    """The latest tasks and workspaces, for a failure's message."""
    return bundle.sql("SELECT kind, state, message FROM tasks ORDER BY id DESC LIMIT 4") + \
        bundle.sql("SELECT username, status FROM workspaces")


def _edge_get(bundle: Bundle, host: str, path: str, cookie: str | None = None) -> requests.Response:
    """A request to the edge container for a workspace host (*.localhost resolved to loopback by hand)."""
    headers = {"Host": host, **({"Cookie": cookie} if cookie else {})}
    return requests.get(f"{bundle.edge}{path}", headers=headers, timeout=10, allow_redirects=False)


def _edge_answer(bundle: Bundle, host: str, cookie: str, status: int, text: str,
                 seconds: float) -> requests.Response:
    """The edge's answer for `host` once it has `status` and `text` (routes change after a task)."""
    seen: list[int] = []

    def answer() -> list[requests.Response]:  # a list: a Response with an error status is falsy
        response = _edge_get(bundle, host, "/", cookie)
        seen.append(response.status_code)
        return [response] if response.status_code == status and text in response.text else []

    found = _wait_until(answer, seconds, f"{status} from the edge",
                        lambda: f"statuses {sorted(set(seen))}; tasks, workspaces: {_tasks(bundle)}")
    return found[0]


def test_login_approve_open_through_edge_then_stop(bundle: Bundle) -> None:
    visitor = requests.Session()
    token = _csrf(visitor, f"{bundle.web}/register")
    response = visitor.post(f"{bundle.web}/register", timeout=10, allow_redirects=False, data={
        "username": USER, "email": f"{USER}@example.org", "password": USER_PASSWORD,
        "password_confirm": USER_PASSWORD, "csrf_token": token})
    assert response.status_code == 302, response.text[-2000:]

    admin = _login(bundle, ADMIN, ADMIN_PASSWORD)
    approvals = admin.get(f"{bundle.web}/admin/approvals", timeout=10).text
    user_id = re.search(r'action="/admin/users/(\d+)/approve"', approvals).group(1)
    # "Approve with options" on the agent the web app registered at start ("local"): automatic placement
    # skips a host whose live CPU use is above 95 %, which a busy CI machine may be.
    options = f"{bundle.web}/admin/workspaces/provision/{user_id}"
    page = admin.get(options, timeout=10).text
    server_id = re.search(r'<option[^>]*value="(\d+)"[^>]*>local \(', page).group(1)
    response = admin.post(options, timeout=10, data={
        "server": server_id, "image": WORKSPACE_IMAGE, "cpu": "0.5", "memory_mb": "256",
        "csrf_token": CSRF_RE.search(page).group(1)})
    assert f"Provisioning {USER}&#39;s workspace." in response.text, _flashes(response.text)

    owner = _login(bundle, USER, USER_PASSWORD)
    home = f"{bundle.web}/workspaces/"
    _wait_until(lambda: 'id="open-vscode"' in owner.get(home, timeout=10).text, 120, "the workspace running")

    opened = owner.get(f"{bundle.web}/workspaces/open/vscode", timeout=10, allow_redirects=False)
    assert opened.status_code == 302
    link = urlsplit(opened.headers["Location"])
    def exchange() -> list[requests.Response]:
        # The page offers Open once the workspace row says running; the worker installs its routes just
        # after, and nginx reloads: until then the edge answers 404 (the token is not spent).
        response = _edge_get(bundle, link.netloc, f"{link.path}?{link.query}")
        return [] if response.status_code == 404 else [response]

    exchanged = _wait_until(exchange, 30, "the workspace host on the edge", lambda: _tasks(bundle))[0]
    assert exchanged.status_code in (302, 303), exchanged.text[-1000:]
    cookie = exchanged.headers["Set-Cookie"].split(";", 1)[0]
    _edge_answer(bundle, link.netloc, cookie, 200, "Slipway test workspace: vscode", 20)
    # Without the owner's cookie the edge does not serve it.
    assert "Slipway test workspace" not in _edge_get(bundle, link.netloc, "/").text

    def stop() -> bool:  # refused while the provision task is still finishing
        form = {"csrf_token": _csrf(owner, home)}
        page = owner.post(f"{bundle.web}/workspaces/stop", data=form, timeout=10)
        return "Your workspace will stop in a moment." in page.text

    _wait_until(stop, 30, "the stop accepted")
    # (Until nginx's old workers finish their reload, a request may still meet the stopped container
    # and get the edge's own "unavailable" 503; the stopped page follows.)
    stopped = _edge_answer(bundle, link.netloc, cookie, 503, "Workspace not running", 60)
    assert "Slipway test workspace" not in stopped.text


def test_services_run_with_least_privilege(bundle: Bundle) -> None:
    for service in ("web", "worker", "edge"):
        assert bundle.compose("exec", "-T", service, "id", "-u").stdout.strip() != "0", service
    for service in ("web", "worker", "edge", "agent"):
        container = bundle.compose("ps", "-q", service).stdout.strip()
        caps = _run(["docker", "inspect", "-f", "{{.HostConfig.CapDrop}} {{.HostConfig.CapAdd}}", container],
                    30).stdout.split()
        assert caps == ["[ALL]", "[CHOWN]" if service == "agent" else "[]"], (service, caps)
        mounts = _run(["docker", "inspect", "-f", "{{range .Mounts}}{{.Destination}} {{end}}", container],
                      30).stdout.split()
        assert ("/var/run/docker.sock" in mounts) == (service == "agent"), (service, mounts)


def test_down_removes_everything(bundle: Bundle) -> None:
    assert _leftovers(bundle.project), "the bundle should be running before it is taken down"
    bundle.compose("down", "-v", "--remove-orphans", "-t", "10")
    assert _leftovers(bundle.project) == {}
