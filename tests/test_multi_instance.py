"""Two web processes, two workers and two edges on one MariaDB database and one Redis serve the same users.

Real parts throughout (tests/multikit.py): production gunicorn, `flask worker`, nginx + Lua edges,
the real agent with the busybox test image. Proved here: a session made on one web process is
the session on the other (and logging out on either ends it), rate limits and lockouts count
across both, one approval is provisioned by exactly one worker, both edges serve the owner's
links after a change (pushed to both; an edge restarted empty pulls it back), refuse anyone
else and drop a logged-out session at once, each worker reads its own edge's access log into the
one connection log, and a worker SIGKILLed mid-task leaves its tasks to the other, none lost or
run twice.
"""

from __future__ import annotations

import itertools
import signal
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from sqlalchemy import func, select

from app.extensions import db
from app.models import AuditLog, ConnectionTail, Task, TaskEvent, User, UserSession, Workspace
from app.routing.nginx import workspace_host
from app.security.tokens import Grant, issue_handoff
from tests.builders import PASSWORD, make_user
from tests.multikit import LOCK_THRESHOLD, LOGIN_LIMIT, Cluster, cluster, signal_tree
from tests.private_services import redis_available
from tests.support import CSRF_RE, require_service
from tests.wsstack import stack_available

pytestmark = pytest.mark.integration
WORKSPACE_TEXT = "Slipway test workspace: vscode"


@pytest.fixture(scope="module")
def stack(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """The two-instance install, running for the whole module."""
    require_service("MariaDB", database_url.startswith(("mysql", "mariadb")))
    require_service("Docker and nginx", stack_available())
    require_service("redis-server", redis_available())
    with cluster(database_url, tmp_path_factory.mktemp("multi")) as running:
        yield running


def wait_until(check: Callable[[], Any], seconds: float, what: str, every: float = 0.1) -> Any:
    """Poll `check` until it returns something truthy; fail saying `what` after `seconds`."""
    deadline = time.monotonic() + seconds
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {seconds} s")
        time.sleep(every)


def csrf(session: requests.Session, url: str, **kw: Any) -> str:
    """The CSRF token of the form on `url`."""
    match = CSRF_RE.search(session.get(url, timeout=30, **kw).text)
    assert match, f"no csrf_token on {url}"
    return match.group(1) or match.group(2)


_addresses = itertools.count(1)


def login(base: str, username: str, password: str = PASSWORD,
          client_ip: str | None = None) -> tuple[requests.Session, requests.Response]:
    """Log in through `base`'s form in a fresh browser session (from its own address unless given one)."""
    session = requests.Session()
    # Every login POST counts against its address's limit: give each browser its own.
    session.headers["X-Forwarded-For"] = client_ip or f"203.0.113.{next(_addresses)}"
    token = csrf(session, f"{base}/login")
    answer = session.post(f"{base}/login", data={"username": username, "password": password,
                                                 "csrf_token": token}, timeout=30)
    return session, answer


def signed_in_as(base: str, cookie: str) -> str | None:
    """Who the web process at `base` says the session cookie `cookie` belongs to (None: login page)."""
    answer = requests.get(f"{base}/workspaces/", cookies={"slipway": cookie}, allow_redirects=False,
                          timeout=30)
    if answer.status_code != 200:
        assert answer.status_code == 302 and "/login" in answer.headers["Location"], answer.status_code
        return None
    marker = answer.text.split("Signed in as ", 1)[1]
    return marker.split(" ", 1)[0]


def test_a_session_made_on_one_web_process_is_the_session_on_the_other(stack: Cluster) -> None:
    web_a, web_b = stack.webs
    with stack.app.app_context():
        make_user("sam")
    session, answer = login(web_a, "sam")
    assert answer.url == f"{web_a}/workspaces/", answer.url
    cookie = session.cookies["slipway"]
    assert signed_in_as(web_a, cookie) == "sam"
    assert signed_in_as(web_b, cookie) == "sam"  # the cookie only points at a row in the shared database

    on_b = requests.Session()
    on_b.cookies.set("slipway", cookie)
    token = csrf(on_b, f"{web_b}/workspaces/")
    assert on_b.post(f"{web_b}/logout", data={"csrf_token": token}, allow_redirects=False,
                     timeout=30).status_code == 302
    assert signed_in_as(web_b, cookie) is None
    assert signed_in_as(web_a, cookie) is None  # logged out on B: ended on A too


def _failed_login(base: str, client_ip: str, name: str) -> int:
    return login(base, name, "wrong password", client_ip)[1].status_code


def test_rate_limits_and_lockouts_count_across_both_web_processes(stack: Cluster) -> None:
    web_a, web_b = stack.webs
    # One process: the limit answers 429 on the attempt after LOGIN_LIMIT.
    alone = [_failed_login(web_a, "198.51.100.1", f"nobody{n}") for n in range(LOGIN_LIMIT + 1)]
    assert alone == [200] * LOGIN_LIMIT + [429], alone
    # The same number split across A and B, from another address: the limit comes at the same total,
    # and then both processes refuse (each on its own would still allow LOGIN_LIMIT of its own).
    split = [_failed_login(stack.webs[n % 2], "198.51.100.2", f"nobody{n}") for n in range(LOGIN_LIMIT + 1)]
    assert split == alone, split
    assert _failed_login(web_a, "198.51.100.2", "again") == 429
    assert _failed_login(web_b, "198.51.100.2", "again") == 429

    # The lockout lives in the database: failures on A and B add up, and B then refuses the right password.
    with stack.app.app_context():
        make_user("lena")
    for n in range(LOCK_THRESHOLD):
        assert _failed_login(stack.webs[n % 2], "198.51.100.3", "lena") == 200
    _, answer = login(web_b, "lena", client_ip="198.51.100.3")
    assert answer.status_code == 200 and "locked until" in answer.text, answer.text[-500:]
    _, answer = login(web_a, "lena", client_ip="198.51.100.4")  # another address is not locked out
    assert answer.url == f"{web_a}/workspaces/"


def _approve(stack: Cluster, admin: requests.Session, username: str) -> None:
    """Approve a pending user through web A's one-click approval form."""
    with stack.app.app_context():
        user_id = db.session.scalar(select(User.id).where(User.username == username))
    token = csrf(admin, f"{stack.webs[0]}/admin/approvals")
    answer = admin.post(f"{stack.webs[0]}/admin/users/{user_id}/approve", data={"csrf_token": token},
                        allow_redirects=False, timeout=30)
    assert answer.status_code == 302, answer.text[-500:]


def _admin(stack: Cluster) -> requests.Session:
    with stack.app.app_context():
        if db.session.scalar(select(User.id).where(User.username == "boss")) is None:
            make_user("boss", role="admin")
    session, answer = login(stack.webs[0], "boss")
    assert answer.status_code == 200 and "/login" not in answer.url, answer.url
    return session


def _workspace_tasks(stack: Cluster, username: str) -> list[Task]:
    with stack.app.app_context():
        tasks = db.session.scalars(select(Task).where(Task.lock_key == f"workspace:{username}")
                                   .order_by(Task.id)).all()
        db.session.expunge_all()
        return list(tasks)


def _attempt_events(stack: Cluster, task_id: int) -> list[str]:
    with stack.app.app_context():
        return list(db.session.scalars(select(TaskEvent.message).where(
            TaskEvent.task_id == task_id, TaskEvent.message.like("attempt %"))))


def _finished(stack: Cluster, username: str, kind: str) -> Task | None:
    tasks = [task for task in _workspace_tasks(stack, username) if task.kind == kind]
    return tasks[-1] if tasks and tasks[-1].is_finished else None


def _containers(stack: Cluster) -> list[str]:
    import docker

    client = docker.from_env(timeout=60)
    found = client.containers.list(all=True, filters={"label": f"slipway.app.instance={stack.instance}"})
    return sorted(container.name for container in found)


def _worker_pid(task: Task) -> int:
    return int(str(task.claimed_by).split(":")[1])


def _through_edge(stack: Cluster, edge: int, host: str, path: str = "/",
                  cookies: dict[str, str] | None = None) -> requests.Response:
    """GET `path` from edge `edge` with the workspace `Host` a browser sends (the public port included)."""
    port = stack.workspace_domain.rsplit(":", 1)[1]
    return requests.get(f"http://127.0.0.1:{stack.edges[edge].port}{path}",
                        headers={"Host": f"{host}:{port}"}, cookies=cookies, allow_redirects=False,
                        timeout=30)


def _exchange(stack: Cluster, edge: int, location: str) -> requests.Response:
    parts = urlsplit(location)
    return _through_edge(stack, edge, parts.hostname or "", f"{parts.path}?{parts.query}")


def _serves(answer: requests.Response) -> bool:
    return answer.status_code == 200 and WORKSPACE_TEXT in answer.text


def _open_link(session: requests.Session, web: str) -> str:
    """The hand-off URL (one-time token) that web process `web` sends its user to."""
    answer = session.get(f"{web}/workspaces/open/vscode", allow_redirects=False, timeout=30)
    assert answer.status_code == 302, answer.status_code
    return answer.headers["Location"]


def test_an_approval_is_provisioned_once_and_both_edges_follow_the_workspace(stack: Cluster) -> None:
    admin = _admin(stack)
    with stack.app.app_context():
        make_user("alice", status="pending")
        make_user("bob")
    _approve(stack, admin, "alice")
    task = wait_until(lambda: _finished(stack, "alice", "provision"), 120, "alice's provision")
    assert task.state == "succeeded", task.message
    # Exactly one of the two workers ran it, once: one task, one attempt, one container.
    assert [t.kind for t in _workspace_tasks(stack, "alice")] == ["provision"]
    assert task.attempts == 1 and len(_attempt_events(stack, task.id)) == 1
    assert _worker_pid(task) in {worker.pid for worker in stack.workers}
    assert _containers(stack) == ["slipway-ws-alice"]

    # The owner opens her link on web B and exchanges the token through edge A; both edges serve it
    # with the cookies she got (the edges' own pull runs only when they start: the push did this).
    alice, _ = login(stack.webs[1], "alice")
    location = _open_link(alice, stack.webs[1])
    answer = _exchange(stack, 0, location)
    assert answer.status_code == 302, answer.status_code
    cookies = {name: answer.cookies[name] for name in ("slipway_ws", "slipway_edge")}
    host = workspace_host("alice", "vscode", stack.workspace_domain)
    for edge in (0, 1):
        answer = _through_edge(stack, edge, host, cookies=cookies)
        assert _serves(answer), (edge, answer.status_code)
        # Without the edge cookie the edge asks its own web process, which reads the shared session row.
        answer = _through_edge(stack, edge, host, cookies={"slipway_ws": cookies["slipway_ws"]})
        assert _serves(answer), (edge, answer.status_code)
    # The token was used through edge A: through edge B it is a replay (used tokens are in the database).
    answer = _exchange(stack, 1, location)
    assert answer.status_code == 400 and "already used" in answer.text, answer.status_code

    # Another user is refused on both: with no cookie the edge sends him to log in and open the link,
    # which answers 403; a hand-off token made out to him for alice's host is refused at the exchange.
    bob, _ = login(stack.webs[1], "bob")
    with stack.app.app_context():
        bob_row = db.session.scalar(select(User).where(User.username == "bob"))
        bob_session = db.session.scalar(
            select(func.max(UserSession.id)).where(UserSession.user_id == bob_row.id))
        bob_tokens = [issue_handoff(Grant(bob_row.id, "bob", host, bob_session)) for _ in range(2)]
    for edge in (0, 1):
        answer = _through_edge(stack, edge, host)
        assert answer.status_code == 302 and WORKSPACE_TEXT not in answer.text, (edge, answer.status_code)
        assert bob.get(answer.headers["Location"], allow_redirects=False, timeout=30).status_code == 403
        answer = _through_edge(stack, edge, host, f"/_slipway/exchange?token={bob_tokens[edge]}")
        assert answer.status_code == 403, (edge, answer.status_code)
        assert "belongs to someone else" in answer.text and "Set-Cookie" not in answer.headers

    # An edge restarted with nothing in memory recovers the route from its web process.
    stack.restart_edge(1)
    wait_until(lambda: _serves(_through_edge(stack, 1, host, cookies=cookies)), 30, "restarted edge B serves")

    # Logging out on web A is pushed to both edges: her edge cookie (good for minutes more, checked in
    # the edge alone) is refused on both at once, and the web processes no longer know the session.
    token = csrf(alice, f"{stack.webs[0]}/workspaces/")
    assert alice.post(f"{stack.webs[0]}/logout", data={"csrf_token": token}, allow_redirects=False,
                      timeout=30).status_code == 302
    for edge in (0, 1):
        answer = _through_edge(stack, edge, host, cookies=cookies)
        assert answer.status_code == 302 and not _serves(answer), (edge, answer.status_code)
    alice, _ = login(stack.webs[0], "alice")
    answer = _exchange(stack, 1, _open_link(alice, stack.webs[0]))
    assert answer.status_code == 302, answer.status_code
    cookies = {name: answer.cookies[name] for name in ("slipway_ws", "slipway_edge")}
    assert all(_serves(_through_edge(stack, edge, host, cookies=cookies)) for edge in (0, 1))

    # Stopped on web A: both edges show the stopped page at once (pushed), the workspace never answers.
    token = csrf(alice, f"{stack.webs[0]}/workspaces/")
    assert alice.post(f"{stack.webs[0]}/workspaces/stop", data={"csrf_token": token}, allow_redirects=False,
                      timeout=30).status_code == 302
    stopped = wait_until(lambda: _finished(stack, "alice", "stop"), 60, "alice's stop")
    assert stopped.state == "succeeded", stopped.message
    for edge in (0, 1):
        answer = _through_edge(stack, edge, host, cookies=cookies)
        assert answer.status_code == 503, (edge, answer.status_code)
        assert "Workspace not running" in answer.text and WORKSPACE_TEXT not in answer.text

    # Each worker tails its own edge's access log into the one connection log: every line read once.
    def tails_caught_up() -> bool:
        with stack.app.app_context():
            read = {row.name: row.lines for row in db.session.scalars(select(ConnectionTail))}
            active = db.session.scalar(
                select(Workspace.last_activity_at).where(Workspace.username == "alice"))
        written = {f"edge-{n}": len(log.read_bytes().splitlines()) for n, log in enumerate(stack.access_logs)}
        return read == written and all(written.values()) and active is not None

    wait_until(tails_caught_up, 30, "both edges' access logs read into the connection log")


def test_a_worker_killed_mid_task_leaves_the_queue_to_the_other(stack: Cluster) -> None:
    admin = _admin(stack)
    names = [f"kim{n}" for n in range(6)]
    with stack.app.app_context():
        for name in names:
            make_user(name, status="pending")
    # The agent is frozen first, so every claimed provision is certainly mid-call when a worker dies.
    signal_tree(stack.agent.proc, signal.SIGSTOP)
    try:
        for name in names:
            _approve(stack, admin, name)

        def running_on_both() -> dict[int, int] | None:
            holders: dict[int, int] = {}
            for name in names:
                for task in _workspace_tasks(stack, name):
                    if task.state == "running":
                        holders[task.id] = _worker_pid(task)
            return holders if len(set(holders.values())) == 2 else None

        holders = wait_until(running_on_both, 60, "both workers running provisions")
        victim = next(w for w in stack.workers if w.pid in holders.values())
        survivor = next(w for w in stack.workers if w is not victim)
        victim.send_signal(signal.SIGKILL)
        victim.wait(10)
        cut = {task_id for task_id, pid in holders.items() if pid == victim.pid}
    finally:
        signal_tree(stack.agent.proc, signal.SIGCONT)

    tasks = wait_until(lambda: all(_finished(stack, n, "provision") for n in names) and
                       [_finished(stack, n, "provision") for n in names], 180, "every provision finished")
    assert {t.state for t in tasks} == {"succeeded"}, {t.message for t in tasks}
    for task in tasks:
        attempts = _attempt_events(stack, task.id)
        assert len(attempts) == task.attempts, (task.id, attempts)
        # Cut short by the kill: taken over once by the survivor; every other task ran exactly once.
        assert task.attempts == (2 if task.id in cut else 1), (task.id, attempts)
        assert _worker_pid(task) == survivor.pid or task.id not in cut
    with stack.app.app_context():
        states = dict(db.session.execute(select(Workspace.username, Workspace.status)
                                         .where(Workspace.username.in_(names))).all())
        audited = db.session.scalars(select(AuditLog.details).where(
            AuditLog.action_type == "workspace_provisioned")).all()
    assert states == dict.fromkeys(names, "running"), states
    provisioned = [details["user"] for details in audited if details["user"] in names]
    assert sorted(provisioned) == names, provisioned  # each workspace provisioned once, none twice
    assert [c for c in _containers(stack) if c != "slipway-ws-alice"] == [f"slipway-ws-{n}" for n in names]
