"""Locust users for bench/bench_load.py: regular users, admins, qvp and API clients.

Run by the bench (`locust -f bench/load/locustfile.py --headless ...`), which writes the accounts
to the JSON file named by BENCH_LOAD_PLAN and reads what happened from BENCH_LOAD_RESULTS:
the audited actions that succeeded (counted against the audit rows written during the run) and
every 5xx answer (name, status). Locust runs one process: the shared counters need no lock.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import time
from collections import Counter
from urllib.parse import urlsplit

import websocket
from locust import HttpUser, between, events, task

PLAN = json.loads(open(os.environ["BENCH_LOAD_PLAN"]).read())  # noqa: SIM115, PTH123 - read once at import
CSRF = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"|name="csrf_token" value="([^"]+)"')
AUDITED: Counter[str] = Counter()  # audit action -> successful requests that must each write one row
SERVER_ERRORS: list[tuple[str, int]] = []
_regular = itertools.count()
_admins = itertools.count()
_qvps = itertools.count()
_clients = itertools.count()
_pending = iter(PLAN["pending"])  # user ids to approve, each once
_builds = itertools.count()


@events.request.add_listener
def count_server_errors(name: str, response: object, **_kw: object) -> None:
    """Record every 5xx answer (the bar is zero)."""
    status = getattr(response, "status_code", 0) or 0
    if status >= 500:
        SERVER_ERRORS.append((name, status))


@events.quitting.add_listener
def write_results(**_kw: object) -> None:
    """Hand the counters to the bench."""
    with open(os.environ["BENCH_LOAD_RESULTS"], "w") as out:  # noqa: PTH123
        json.dump({"audited": dict(AUDITED), "server_errors": SERVER_ERRORS}, out)


class WebUser(HttpUser):
    """A browser user: logs in through the form with the CSRF token, as a browser does."""

    abstract = True
    wait_time = between(1, 3)
    username = ""

    def csrf(self, path: str, name: str) -> str | None:
        """GET `path` and read its CSRF token."""
        with self.client.get(path, name=name, catch_response=True) as response:
            match = CSRF.search(response.text or "")
            if match is None:
                response.failure(f"no CSRF token on {path} ({response.status_code})")
                return None
            return match.group(1) or match.group(2)

    def login(self) -> None:
        """The login form; a 302 away from /login is a success (one `user_logged_in` row)."""
        token = self.csrf("/login", "GET /login")
        if token is None:
            return
        with self.client.post("/login", data={"username": self.username, "password": PLAN["password"],
                                              "csrf_token": token},
                              name="POST /login", allow_redirects=False, catch_response=True) as response:
            if response.status_code == 302 and "/login" not in response.headers.get("Location", ""):
                AUDITED["user_logged_in"] += 1
            else:
                response.failure(f"login refused: {response.status_code}")

    def on_start(self) -> None:
        """Log in once before any task."""
        self.login()

    def page(self, path: str, name: str | None = None) -> None:
        """GET a page that must answer 200."""
        self.client.get(path, name=name or path)


class RegularUser(WebUser):
    """Workspace page, open link through the edge, the task stream, now and then a new login."""

    weight = 1

    def on_start(self) -> None:
        """Take the next workspace owner's account (several browsers per account, as at work)."""
        owners = PLAN["owners"]
        self.account = owners[next(_regular) % len(owners)]
        self.username = self.account["username"]
        self.logged_in_again = False
        super().on_start()

    @task(4)
    def workspace_page(self) -> None:
        """The user's home page."""
        self.page("/workspaces/")

    @task(2)
    def open_link(self) -> None:
        """Open → hand-off token → exchange on the workspace host → the workspace's page through the edge."""
        with self.client.get("/workspaces/open/vscode", name="GET /workspaces/open/vscode",
                             allow_redirects=False, catch_response=True) as response:
            if response.status_code != 302:
                response.failure(f"no hand-off redirect: {response.status_code}")
                return
            target = urlsplit(response.headers["Location"])
        edge = f"http://127.0.0.1:{PLAN['edge_port']}"
        with self.client.get(f"{edge}{target.path}?{target.query}", headers={"Host": target.netloc},
                             name="edge: /_slipway/exchange", allow_redirects=False,
                             catch_response=True) as response:
            if response.status_code != 302:
                response.failure(f"exchange answered {response.status_code}")
                return
            cookies = "; ".join(f"{c.name}={c.value}" for c in response.cookies)
        with self.client.get(f"{edge}/", headers={"Host": target.netloc, "Cookie": cookies},
                             name="edge: workspace /", catch_response=True) as response:
            if "test workspace" not in (response.text or ""):
                response.failure(f"workspace not served: {response.status_code}")

    @task(1)
    def task_stream(self) -> None:
        """The task page's WebSocket: open, read one message (5 s at most), close."""
        url = f"ws://{urlsplit(self.host).netloc}/tasks/{self.account['task_id']}/stream"
        cookie = "; ".join(f"{c.name}={c.value}" for c in self.client.cookies)
        start = time.perf_counter()
        error = None
        try:
            ws = websocket.create_connection(url, timeout=5, cookie=cookie, origin=self.host)
            try:
                message = json.loads(ws.recv())
                if "state" not in message:
                    error = AssertionError(f"unexpected message {message}")
            finally:
                ws.close()
        except (OSError, websocket.WebSocketException, ValueError) as exc:
            error = exc
            status = getattr(exc, "status_code", None)
            if status and status >= 500:
                SERVER_ERRORS.append(("ws: /tasks/<id>/stream", status))
        events.request.fire(request_type="WS", name="ws: /tasks/<id>/stream",
                            response_time=(time.perf_counter() - start) * 1000, response_length=0,
                            exception=error, context={})

    @task(1)
    def account_page(self) -> None:
        """The account page."""
        self.page("/account/")

    @task(1)
    def log_in_again(self) -> None:
        """Log out and in again, once per user (one `user_logged_out` and one `user_logged_in` row)."""
        if self.logged_in_again:
            return
        self.logged_in_again = True
        token = self.csrf("/account/", "/account/")
        if token is None:
            return
        with self.client.post("/logout", data={"csrf_token": token}, name="POST /logout",
                              allow_redirects=False, catch_response=True) as response:
            if response.status_code != 302:
                response.failure(f"logout answered {response.status_code}")
                return
            AUDITED["user_logged_out"] += 1
        self.login()


class AdminUser(WebUser):
    """Users list, approvals, audit, servers; approves a pending account now and then."""

    fixed_count = int(os.environ.get("BENCH_LOAD_ADMINS", "10"))

    def on_start(self) -> None:
        """An admin account."""
        self.username = PLAN["admins"][next(_admins) % len(PLAN["admins"])]
        super().on_start()

    @task(3)
    def users(self) -> None:
        """The users list."""
        self.page("/admin/users")

    @task(2)
    def approvals(self) -> None:
        """The approvals page."""
        self.page("/admin/approvals")

    @task(2)
    def audit(self) -> None:
        """The audit log."""
        self.page("/admin/audit")

    @task(2)
    def servers(self) -> None:
        """The servers page."""
        self.page("/servers/")

    @task(1)
    def approve(self) -> None:
        """Approve the next pending account (its busybox workspace is queued too), while any are left."""
        user_id = next(_pending, None)
        if user_id is None:
            return
        token = self.csrf("/admin/approvals", "/admin/approvals")
        if token is None:
            return
        with self.client.post(f"/admin/users/{user_id}/approve", data={"csrf_token": token},
                              name="POST /admin/users/<id>/approve", allow_redirects=False,
                              catch_response=True) as response:
            if response.status_code != 302:
                response.failure(f"approve answered {response.status_code}")
                return
            AUDITED["user_approved"] += 1
            AUDITED["workspace_provision_requested"] += 1


class QvpUser(WebUser):
    """Images list, an image's page, uploads, the build form; a few small busybox builds in all."""

    fixed_count = int(os.environ.get("BENCH_LOAD_QVP", "10"))

    def on_start(self) -> None:
        """A qvp account."""
        self.username = PLAN["qvp"][next(_qvps) % len(PLAN["qvp"])]
        super().on_start()

    @task(3)
    def images(self) -> None:
        """The images list."""
        self.page("/images/")

    @task(2)
    def image_detail(self) -> None:
        """The busybox image's page (inspected by the agent)."""
        self.page(f"/images/{PLAN['server_id']}/detail?ref={PLAN['base_image']}", "/images/<id>/detail?ref=")

    @task(2)
    def uploads(self) -> None:
        """The uploads page."""
        self.page("/images/uploads")

    @task(1)
    def build(self) -> None:
        """The build form, and while the budget lasts a build queued from it (one `build_requested` row)."""
        token = self.csrf("/images/build", "/images/build")
        number = next(_builds)
        if token is None or number >= PLAN["builds"]:
            return
        data = {"csrf_token": token, "server_id": PLAN["server_id"], "repository": PLAN["build_repository"],
                "tag": f"b{number}", "buildargs": "",
                "dockerfile": f"FROM {PLAN['base_image']}\nLABEL slipway.bench=load-{number}\n"}
        with self.client.post("/images/build", data=data, name="POST /images/build", allow_redirects=False,
                              catch_response=True) as response:
            if response.status_code != 302:
                response.failure(f"build answered {response.status_code}")
                return
            AUDITED["build_requested"] += 1


class ApiClient(HttpUser):
    """A script with an API key: /me and the index; revokes its spare key once (one `api_key_revoked` row)."""

    fixed_count = int(os.environ.get("BENCH_LOAD_API_CLIENTS", "20"))
    wait_time = between(0.5, 1.5)

    def on_start(self) -> None:
        """Take the next key."""
        self.key = PLAN["api_keys"][next(_clients) % len(PLAN["api_keys"])]
        self.headers = {"Authorization": f"Bearer {self.key['value']}"}
        self.spare_left = True

    @task(5)
    def me(self) -> None:
        """The key's user."""
        self.client.get("/api/v1/me", headers=self.headers, name="API GET /api/v1/me")

    @task(1)
    def index(self) -> None:
        """The API index."""
        self.client.get("/api/v1/", headers=self.headers, name="API GET /api/v1/")

    @task(1)
    def revoke_spare(self) -> None:
        """Revoke this client's spare key, once."""
        if not self.spare_left:
            return
        self.spare_left = False
        with self.client.post(f"/api/v1/keys/{self.key['spare_id']}/revoke", headers=self.headers,
                              name="API POST /api/v1/keys/<id>/revoke", catch_response=True) as response:
            if response.status_code != 200:
                response.failure(f"revoke answered {response.status_code}")
                return
            AUDITED["api_key_revoked"] += 1
