"""Image build, push and pull, streamed to the caller as NDJSON while Docker works."""

from __future__ import annotations

import base64
import binascii
import io
import json
import re
import tarfile
import time
from collections.abc import Generator, Iterable, Iterator
from typing import TYPE_CHECKING

from flask import Blueprint, Response, current_app, request

from agent import validation as v
from agent.docker_ops import DockerHolder, translate
from agent.errors import bad_input, log
from agent.events import EventBuffer, KnownImages

if TYPE_CHECKING:
    from docker import APIClient

bp = Blueprint("builds", __name__, url_prefix="/api/images")

DOCKERFILE_NAME = ".slipway.Dockerfile"
STEP_RE = re.compile(r"^Step (\d+)/(\d+) : ")
# Defence in depth (the web app checks first): nothing that widens what a build may do on this host.
FORBIDDEN = [
    (re.compile(r"^\s*#\s*syntax\s*=", re.I | re.M), "a # syntax= directive"),
    (re.compile(r"--network(\s*=\s*|\s+)host", re.I), "RUN --network=host"),
    (re.compile(r"--security(\s*=\s*|\s+)insecure", re.I), "RUN --security=insecure"),
    (re.compile(r"--mount(\s*=\s*|\s+)\S*type\s*=\s*[\"']?(secret|ssh)\b", re.I),
     "RUN --mount=type=secret or ssh"),
    (re.compile(r"^\s*ADD\s+(--\S+\s+)*[a-z][a-z0-9+.-]*://", re.I | re.M), "ADD <url>"),
]


def _docker() -> DockerHolder:
    return current_app.extensions["agent_docker"]


def _object(data: object) -> dict:
    if not isinstance(data, dict):
        raise bad_input("body", "must be a JSON object")
    return data


def _context(dockerfile: str, context_b64: object) -> bytes:
    """A tar of the caller's context (tar or tar.gz) plus the Dockerfile under a reserved name."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as dest:
        if context_b64:
            if not isinstance(context_b64, str):
                raise bad_input("context_b64", "must be base64 text")
            try:
                raw = base64.b64decode(context_b64, validate=True)
                with tarfile.open(fileobj=io.BytesIO(raw), mode="r:*") as src:
                    for member in src.getmembers():
                        if member.name.lstrip("./") == DOCKERFILE_NAME:
                            continue
                        if member.isfile():
                            dest.addfile(member, src.extractfile(member))
                        elif member.isdir() or member.issym():
                            dest.addfile(member)
            except (binascii.Error, tarfile.TarError, EOFError, ValueError) as exc:
                raise bad_input("context_b64", "must be a base64 tar or tar.gz archive") from exc
        text = dockerfile.encode("utf-8")
        info = tarfile.TarInfo(DOCKERFILE_NAME)
        info.size, info.mtime, info.mode = len(text), int(time.time()), 0o644
        dest.addfile(info, io.BytesIO(text))
    return out.getvalue()


def _recorded(events: Iterator[dict], tag: str, buffer: EventBuffer, known: KnownImages) -> Iterator[dict]:
    """Pass the build's objects through and add its outcome to the agent's event buffer."""
    for event in events:
        if event.get("type") == "result":
            data = event.get("data") or {}
            known.remember(data.get("id"))
            buffer.add("image", "build", image=tag, level="info" if event.get("success") else "warning",
                       message=f"image {tag}: {'built' if event.get('success') else 'build failed'}",
                       details={"success": bool(event.get("success")), "step": data.get("step"),
                                "id": data.get("id")})
        yield event


def _ndjson(events: Iterable[dict]) -> Response:
    return Response((json.dumps(e) + "\n" for e in events), mimetype="application/x-ndjson")


def _build_events(stream: Iterator[dict], tag: str) -> Iterator[dict]:
    step = 0
    image_id = None
    try:
        for chunk in stream:
            if "error" in chunk:
                message = str(chunk.get("error", "")).strip()
                yield {"type": "log", "line": message}
                yield {"type": "result", "success": False, "message": f"step {step} failed: {message}",
                       "data": {"step": step}}
                return
            if isinstance(chunk.get("aux"), dict) and chunk["aux"].get("ID"):
                image_id = chunk["aux"]["ID"]
            for line in str(chunk.get("stream", "")).splitlines():
                if not line.strip():
                    continue
                match = STEP_RE.match(line)
                if match:
                    step = int(match.group(1))
                    yield {"type": "step", "step": step, "total": int(match.group(2)), "line": line}
                else:
                    yield {"type": "log", "line": line}
    except Exception as exc:  # the stream is already open: report, never a traceback
        log.warning("build stream broke: %s", exc)
        yield {"type": "result", "success": False, "message": "Docker stopped answering during the build",
               "data": {"step": step}}
        return
    yield {"type": "result", "success": True, "message": f"built {tag}", "data": {"id": image_id, "tag": tag}}


@bp.post("/build")
def build() -> Response:
    """Build `tag` from Dockerfile text (and an optional tar context), streaming Docker's output."""
    data = _object(request.get_json(silent=True))
    tag = v.image_ref(data.get("tag"), "tag")
    dockerfile = data.get("dockerfile")
    if not isinstance(dockerfile, str) or not dockerfile.strip() or len(dockerfile) > 100_000:
        raise bad_input("dockerfile", "must be non-empty text under 100 kB")
    for pattern, what in FORBIDDEN:
        if pattern.search(dockerfile):
            raise bad_input("dockerfile", f"{what} is not allowed")
    buildargs = data.get("buildargs") or {}
    if not isinstance(buildargs, dict) or not all(
        isinstance(k, str) and v.ENV_KEY_RE.fullmatch(k) and isinstance(val, str)
        for k, val in buildargs.items()
    ):
        raise bad_input("buildargs", "must map argument names to strings")
    context = _context(dockerfile, data.get("context_b64"))
    current_app.extensions["agent_known_images"].remember(tag)
    with translate():
        stream = _docker().api.build(
            fileobj=io.BytesIO(context), custom_context=True, dockerfile=DOCKERFILE_NAME, tag=tag,
            rm=True, forcerm=True, pull=False, buildargs=buildargs, decode=True,
        )
    extensions = current_app.extensions  # read now: the generator runs after the view returned
    return _ndjson(_recorded(_build_events(stream, tag), tag, extensions["agent_events"],
                             extensions["agent_known_images"]))


def _relay(stream: Iterator[dict], ref: str, verb: str) -> Generator[dict, None, tuple[bool, str | None]]:
    """Docker's push or pull chunks as progress events; returns (finished, last digest seen)."""
    digest = None
    try:
        for chunk in stream:
            if "error" in chunk:
                yield {"type": "result", "success": False, "message": f"{verb} failed: {chunk['error']}",
                       "data": {"ref": ref}}
                return False, None
            parts = [str(chunk[k]) for k in ("id", "status", "progress") if chunk.get(k)]
            if parts:
                yield {"type": "progress", "line": ": ".join(parts)}
            aux = chunk.get("aux")
            if isinstance(aux, dict) and aux.get("Digest"):
                digest = aux["Digest"]
    except Exception as exc:  # the stream is already open: report, never a traceback
        log.warning("%s stream broke: %s", verb, exc)
        yield {"type": "result", "success": False, "message": f"Docker stopped answering during the {verb}",
               "data": {"ref": ref}}
        return False, None
    return True, digest


def _push_events(stream: Iterator[dict], ref: str) -> Iterator[dict]:
    finished, digest = yield from _relay(stream, ref, "push")
    if finished:
        yield {"type": "result", "success": True, "message": f"pushed {ref}",
               "data": {"ref": ref, "digest": digest}}


def _registry_request(data: dict) -> tuple[str, str, dict | None]:
    """repository, tag and the one-call auth config of a push or pull request."""
    repository = v.require_str(data, "repository", v.REPOSITORY_RE, "a repository like 127.0.0.1:5000/name")
    tag = v.require_str(data, "tag", v.TAG_RE, "a tag (letters, digits, . _ -)")
    username, password = data.get("username"), data.get("password")
    for field, value in (("username", username), ("password", password)):
        if value is not None and (not isinstance(value, str) or len(value) > 1024):
            raise bad_input(field, "must be a string or null")
    return repository, tag, ({"username": username, "password": password or ""} if username else None)


@bp.post("/push")
def push() -> Response:
    """Push repository:tag with credentials used for this one call only (never stored or logged)."""
    repository, tag, auth = _registry_request(_object(request.get_json(silent=True)))
    ref = f"{repository}:{tag}"
    current_app.extensions["agent_known_images"].remember(ref)
    with translate("image not found"):
        _docker().api.inspect_image(ref)
        stream = _docker().api.push(repository, tag=tag, stream=True, decode=True, auth_config=auth)
    return _ndjson(_push_events(stream, ref))


def _pull_events(stream: Iterator[dict], ref: str, api: APIClient) -> Iterator[dict]:
    finished, _ = yield from _relay(stream, ref, "pull")
    if not finished:
        return
    try:
        image_id = api.inspect_image(ref).get("Id")
    except Exception:  # noqa: BLE001 - the pull succeeded; the id is only a detail of the answer
        image_id = None
    yield {"type": "result", "success": True, "message": f"pulled {ref}",
           "data": {"ref": ref, "id": image_id}}


@bp.post("/pull")
def pull() -> Response:
    """Pull repository:tag from its registry, credentials used for this one call only."""
    repository, tag, auth = _registry_request(_object(request.get_json(silent=True)))
    ref = f"{repository}:{tag}"
    current_app.extensions["agent_known_images"].remember(ref)
    api = _docker().api  # read now: the generator runs after the view returned
    with translate("image not found"):
        stream = api.pull(repository, tag=tag, stream=True, decode=True, auth_config=auth)
    return _ndjson(_pull_events(stream, ref, api))
