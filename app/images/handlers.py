"""Task kinds of the images area: `build`, `push`, `pull`, `import`, `delete_image`.

Each streams the agent's NDJSON answer into task events as it arrives, sets progress from
"step N of M", honours cancel by closing the stream, and ends with an audit row.
Registry passwords are read from the database inside the task, sent with the one agent
request that needs them, and never written to the payload, events or audit. An agent that
stops answering (killed, unreachable) fails a build or pull with a message naming it; the
task page's Retry queues the same request again.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from app.agent_client import AgentClient, AgentConflict, AgentError, AgentNotFound, AgentUnavailable
from app.extensions import db
from app.images.policy import DOCKER_HUB, image_registry
from app.images.uploads import STORED_NAME_RE, context_dir, upload_dir
from app.models import Registry, Upload
from app.services import audit
from app.worker.kinds import PRIORITY_BACKGROUND, TaskCancelled, TaskContext, TaskFailed, task_kind

STREAM_READ_TIMEOUT = 600.0
CANCEL_CHECK_SECONDS = 0.5


def _server(ctx: TaskContext) -> Any:
    from app.models.server import Server

    server = db.session.get(Server, ctx.payload.get("server_id"))
    if server is None:
        raise TaskFailed("the server no longer exists")
    return server


def _finish_audit(ctx: TaskContext, action: str, details: dict[str, Any], ok: bool, server_id: int) -> None:
    audit.record(action, ctx.task.requested_by, {**details, "task": ctx.task.id, "ok": ok},
                 level="info" if ok else "warning", source="worker", server_id=server_id)
    db.session.commit()


class _Pump:
    """Reads a stream in its own thread so the task can check for cancel while Docker is silent.

    On `stop()` the thread closes the stream at its next item (closing the response, which
    ends the agent's answer); the task does not wait for that.
    """

    _END = object()

    def __init__(self, stream: Iterator[dict[str, Any]]) -> None:
        self.stream = stream
        self.items: queue.Queue[Any] = queue.Queue(maxsize=1000)
        self.stopped = threading.Event()
        threading.Thread(target=self._run, name="slipway-stream", daemon=True).start()

    def _run(self) -> None:
        try:
            for item in self.stream:
                if self.stopped.is_set():
                    break
                self.items.put(item)
        except Exception as exc:  # noqa: BLE001 - handed to the task thread, which raises it
            self.items.put(exc)
        finally:
            close = getattr(self.stream, "close", None)
            if close is not None:
                close()
            self.items.put(self._END)

    def get(self, timeout: float) -> Any:
        """The next item, `_Pump._END`, an exception to raise, or None after `timeout`."""
        try:
            return self.items.get(timeout=timeout)
        except queue.Empty:
            return None

    def stop(self) -> None:
        """Ask the reader to close the stream; drain so it is never blocked on a full queue."""
        self.stopped.set()
        with contextlib.suppress(queue.Empty):
            while True:
                self.items.get_nowait()


def _follow(ctx: TaskContext, stream: Iterator[dict[str, Any]], total_hint: int = 0,
            secret: str | None = None) -> dict[str, Any]:
    """Log a stream's lines as events until its result; returns the result object."""
    pump = _Pump(stream)
    next_check = time.monotonic() + CANCEL_CHECK_SECONDS
    try:
        while True:
            item = pump.get(CANCEL_CHECK_SECONDS)
            if time.monotonic() >= next_check or item is None:
                next_check = time.monotonic() + CANCEL_CHECK_SECONDS
                ctx.check_cancelled()
            if item is None:
                continue
            if item is _Pump._END:
                break
            if isinstance(item, Exception):
                raise item
            kind = item.get("type")
            line = str(item.get("line", "")).rstrip()
            if secret and secret in line:
                line = line.replace(secret, "****")
            if kind == "step":
                total = int(item.get("total") or total_hint or 1)
                step = int(item.get("step") or 0)
                ctx.progress(int(100 * max(step - 1, 0) / max(total, 1)), line or f"Step {step}/{total}")
            elif kind == "result":
                return item
            elif line:
                ctx.log(line, level="error" if kind == "error" else "info")
    finally:
        pump.stop()
    raise TaskFailed("the agent's stream ended without a result")


@task_kind("build", max_attempts=1)
def build(ctx: TaskContext) -> dict[str, Any] | None:
    """Build an image on the server's agent, following its log live."""
    server = _server(ctx)
    tag = ctx.payload["tag"]
    for warning in ctx.payload.get("warnings") or []:
        ctx.log(f"policy warning: {warning}", level="warning")
    context: bytes | None = None
    name = ctx.payload.get("context_file")
    path = context_dir() / name if name else None
    ok = False
    keep_context = False
    message = ""
    try:
        if path is not None:
            if not path.is_file():
                raise TaskFailed("the uploaded build context is no longer available")
            context = path.read_bytes()
        ctx.log(f"building {tag} on {server.name}")
        client = AgentClient.for_server(server, read_timeout=STREAM_READ_TIMEOUT)
        result = _follow(ctx, client.build_image(tag=tag, dockerfile=ctx.payload["dockerfile"],
                                                 context=context, buildargs=ctx.payload.get("buildargs")),
                         ctx.payload.get("total_steps", 0))
        data = result.get("data") or {}
        if not result.get("success"):
            step = data.get("step")
            message = result.get("message") or "the build failed"
            if step and f"step {step}" not in message:
                message = f"step {step} failed: {message}"
            raise TaskFailed(message)
        ok = True
        ctx.progress(100, f"built {tag} ({str(data.get('id', ''))[:19]})")
        return {"tag": tag, "id": data.get("id")}
    except AgentUnavailable as exc:
        message = exc.message
        keep_context = True  # for the Retry once the agent is back (the worker sweeps stale ones)
        raise TaskFailed(exc.message) from exc
    except AgentError as exc:
        message = exc.message
        raise TaskFailed(f"the agent refused the build: {exc.message}") from exc
    except TaskCancelled:
        message = "cancelled"
        raise
    finally:
        if path is not None and not keep_context:
            path.unlink(missing_ok=True)
        details = {"tag": tag, "server": server.name, **({} if ok else {"error": message})}
        _finish_audit(ctx, "build_finished", details, ok, server.id)


def _ensure_named(ctx: TaskContext, client: AgentClient, source: str, repository: str, tag: str) -> None:
    """Give the local image `source` the name `repository:tag` through the agent's tag call."""
    ctx.log(f"tagging {source} as {repository}:{tag}")
    data = client.tag_image(source, repository=repository, tag=tag)
    ctx.log(f"tagged {source} as {repository}:{tag} ({str(data.get('id', ''))[:19]})")


def push_target(registry_host: str, repository: str) -> str:
    """The repository name under `registry_host` (any other registry prefix is replaced)."""
    if image_registry(repository) != DOCKER_HUB:
        host, _, rest = repository.partition("/")
        if host == registry_host:
            return repository
        repository = rest
    return f"{registry_host}/{repository}"


def _registry(ctx: TaskContext) -> tuple[Registry, str | None]:
    """The task's registry and its decrypted password."""
    registry = db.session.get(Registry, ctx.payload.get("registry_id"))
    if registry is None:
        raise TaskFailed("the registry no longer exists")
    return registry, registry.decrypted_password()


def _scrub(text: str, password: str | None) -> str:
    return text.replace(password, "****") if password else text


def _transferred(ctx: TaskContext, stream: Iterator[dict[str, Any]], verb: str, password: str | None) -> dict:
    """Follow a push or pull stream; its final result, or TaskFailed (password masked) when it failed."""
    result = _follow(ctx, stream, secret=password)
    if not result.get("success"):
        raise TaskFailed(_scrub(str(result.get("message") or f"the {verb} failed"), password))
    return result


@task_kind("push", max_attempts=2, priority=PRIORITY_BACKGROUND)
def push(ctx: TaskContext) -> dict[str, Any] | None:
    """Push an image to a registry; the password goes to the agent with this request only."""
    server = _server(ctx)
    registry, password = _registry(ctx)
    repository, tag = ctx.payload["repository"], ctx.payload["tag"]
    target = push_target(registry.host, repository)
    details = {"image": f"{repository}:{tag}", "registry": registry.name, "target": f"{target}:{tag}",
               "server": server.name}
    ok = False
    try:
        client = AgentClient.for_server(server, read_timeout=STREAM_READ_TIMEOUT)
        if target != repository:
            _ensure_named(ctx, client, f"{repository}:{tag}", target, tag)
        ctx.log(f"pushing {target}:{tag} to {registry.name}")
        _transferred(ctx, client.push_image(repository=target, tag=tag, username=registry.username,
                                            password=password), "push", password)
        ok = True
        ctx.progress(100, f"pushed {target}:{tag}")
        return {"pushed": f"{target}:{tag}"}
    except AgentUnavailable:
        raise  # retried
    except AgentError as exc:
        raise TaskFailed(f"the agent refused the push: {_scrub(exc.message, password)}") from exc
    finally:
        _finish_audit(ctx, "push_finished", details, ok, server.id)


@task_kind("pull", max_attempts=1, priority=PRIORITY_BACKGROUND)
def pull(ctx: TaskContext) -> dict[str, Any] | None:
    """Pull an image from a registry onto a server; the password goes to the agent with this request only."""
    server = _server(ctx)
    registry, password = _registry(ctx)
    source, tag = push_target(registry.host, ctx.payload["repository"]), ctx.payload["tag"]
    details = {"image": f"{source}:{tag}", "registry": registry.name, "server": server.name}
    ok = False
    try:
        client = AgentClient.for_server(server, read_timeout=STREAM_READ_TIMEOUT)
        ctx.log(f"pulling {source}:{tag} from {registry.name} onto {server.name}")
        result = _transferred(ctx, client.pull_image(repository=source, tag=tag, username=registry.username,
                                                     password=password), "pull", password)
        ok = True
        image_id = (result.get("data") or {}).get("id")
        ctx.progress(100, f"pulled {source}:{tag} ({str(image_id or '')[:19]})")
        return {"pulled": f"{source}:{tag}", "id": image_id}
    except AgentUnavailable as exc:  # one attempt: the task page's Retry pulls again once the agent is back
        raise TaskFailed(_scrub(exc.message, password)) from exc
    except AgentError as exc:
        raise TaskFailed(f"the agent refused the pull: {_scrub(exc.message, password)}") from exc
    finally:
        _finish_audit(ctx, "pull_finished", details, ok, server.id)


@task_kind("import", max_attempts=2, priority=PRIORITY_BACKGROUND)
def import_image(ctx: TaskContext) -> dict[str, Any] | None:
    """Stream an uploaded tarball to the server's agent and import it as an image."""
    server = _server(ctx)
    row = db.session.get(Upload, ctx.payload.get("upload_id"))
    if row is None or not STORED_NAME_RE.fullmatch(row.stored_name):
        raise TaskFailed("the upload no longer exists")
    path: Path = upload_dir() / row.stored_name
    if not path.is_file():
        raise TaskFailed("the uploaded file is missing on disk")
    tag = f"{ctx.payload['repository']}:{ctx.payload['tag']}"
    ok = False
    try:
        ctx.log(f"sending {row.original_name} ({row.size} bytes) to {server.name}")
        client = AgentClient.for_server(server, read_timeout=STREAM_READ_TIMEOUT)
        data = client.import_image(path, repository=ctx.payload["repository"], tag=ctx.payload["tag"])
        ok = True
        ctx.progress(100, f"imported as {tag} ({str(data.get('id', ''))[:19]})")
        return {"tag": tag, "id": data.get("id")}
    except AgentUnavailable:
        raise  # retried
    except AgentError as exc:
        raise TaskFailed(f"the agent refused the import: {exc.message}") from exc
    finally:
        _finish_audit(ctx, "import_finished", {"upload": row.original_name, "sha256": row.sha256, "tag": tag,
                                      "server": server.name}, ok, server.id)


@task_kind("delete_image", max_attempts=3)
def delete_image(ctx: TaskContext) -> dict[str, Any] | None:
    """Delete an image on a server; already gone counts as done."""
    server = _server(ctx)
    ref = ctx.payload["ref"]
    ok = False
    try:
        AgentClient.for_server(server).delete_image(ref)
        ok = True
        ctx.log(f"deleted {ref}")
    except AgentNotFound:
        ok = True
        ctx.log(f"{ref} was already gone")
    except AgentConflict as exc:
        raise TaskFailed(f"{ref} is in use on {server.name}: {exc.message}") from exc
    finally:
        _finish_audit(ctx, "image_deleted", {"ref": ref, "server": server.name}, ok, server.id)
    return {"ref": ref}
