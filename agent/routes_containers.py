"""Workspace containers: create-and-start, list, start, stop, delete, ports, logs (managed ones only)."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import shutil
from pathlib import Path
from typing import Any

from docker.errors import APIError, NotFound
from flask import Blueprint, Response, current_app, request

from agent import host_ports
from agent import validation as v
from agent.docker_ops import MANAGED_LABEL, DockerHolder, translate
from agent.errors import AgentError, answer, bad_input
from agent.gate_check import gate_problem

bp = Blueprint("containers", __name__, url_prefix="/api/containers")

PORTS_LABEL = "slipway.ports"
WORKSPACE_LABEL = "slipway.workspace"


def _docker() -> DockerHolder:
    return current_app.extensions["agent_docker"]


def _json() -> dict[str, Any]:
    data = request.get_json(silent=True)
    if data is None and not request.get_data(cache=True):
        return {}
    if not isinstance(data, dict):
        raise bad_input("body", "must be a JSON object")
    return data


def _app_ports(labels: dict[str, str]) -> dict[str, int]:
    result = {}
    for item in (labels.get(PORTS_LABEL) or "").split(","):
        app, _, port = item.partition("=")
        if app and port.isascii() and port.isdigit():
            result[app] = int(port)
    return result


def _published(attrs: dict) -> dict[str, int]:
    """App name → host port, from a container's inspect data."""
    bindings = (attrs.get("NetworkSettings") or {}).get("Ports") or {}
    result = {}
    for app, port in _app_ports(attrs["Config"].get("Labels") or {}).items():
        for binding in bindings.get(f"{port}/tcp") or []:
            if binding.get("HostPort"):
                result[app] = int(binding["HostPort"])
                break
    return result


def _summary(attrs: dict) -> dict:
    return {
        "id": attrs["Id"],
        "name": attrs["Name"].lstrip("/"),
        "status": attrs["State"]["Status"],
        "ports": _published(attrs),
    }


def _inspect_managed(ref: str) -> dict:
    """Inspect a container by id or name; anything without the managed label is 'not found'."""
    v.container_ref(ref)
    with translate("container not found"):
        attrs = _docker().api.inspect_container(ref)
    if (attrs["Config"].get("Labels") or {}).get(MANAGED_LABEL) != "true":
        raise AgentError(404, "container not found")
    return attrs


def _create_spec(data: dict) -> dict:
    cfg = current_app.config
    name = v.require_str(data, "name", v.NAME_RE, "letters, digits, . _ - (max 128, no leading symbol)")
    image = v.image_ref(data.get("image"))
    ports = v.ports(data.get("ports"))
    rel, folder = v.workspace(data.get("workspace"), cfg["WORKDIR_DEPLOY"])
    labels = v.labels(data.get("labels"))
    labels.update({
        MANAGED_LABEL: "true",
        PORTS_LABEL: ",".join(f"{app}={port}" for app, port in ports.items()),
        WORKSPACE_LABEL: rel,
    })
    return {
        "name": name, "image": image, "ports": ports, "folder": folder, "labels": labels,
        "env": v.env(data.get("env")), "cpu": v.cpu(data.get("cpu")),
        "memory_mb": v.memory_mb(data.get("memory_mb")),
    }


def _prepare_folder(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True, mode=0o750)
    uid = current_app.config["WORKSPACE_UID"]
    if os.geteuid() == 0 and folder.stat().st_uid != uid:
        os.chown(folder, uid, uid)


def _create_started(api: Any, spec: dict) -> dict:
    """Create and start the container on explicit host ports; retry on fresh ports when one was taken."""
    cfg = current_app.config
    memory = spec["memory_mb"] * 1024 * 1024
    container_ports = list(spec["ports"].values())
    for attempt in range(1, host_ports.ATTEMPTS + 1):
        with translate():
            taken = host_ports.claimed_ports(api)
        free = host_ports.free_ports(cfg["HOST_IP"], len(container_ports), taken)
        hosts = dict(zip(container_ports, free, strict=True))
        host_config = api.create_host_config(
            binds={str(spec["folder"]): {"bind": cfg["WORKSPACE_MOUNT"], "mode": "rw"}},
            port_bindings={port: (cfg["HOST_IP"], host) for port, host in hosts.items()},
            nano_cpus=int(spec["cpu"] * 1e9), mem_limit=memory, memswap_limit=memory,
            pids_limit=cfg["PIDS_LIMIT"], privileged=False, cap_drop=["ALL"],
            security_opt=["no-new-privileges:true"], network_mode=cfg["NETWORK"],
            restart_policy={"Name": "unless-stopped"}, init=True,
        )
        with translate("image not found"):
            created = api.create_container(
                spec["image"], name=spec["name"], environment=spec["env"], labels=spec["labels"],
                ports=container_ports, host_config=host_config, detach=True,
            )
            try:
                api.start(created["Id"])
            except APIError as exc:
                api.remove_container(created["Id"], force=True)
                if attempt < host_ports.ATTEMPTS and host_ports.is_port_clash(exc):
                    current_app.logger.warning("host port taken meanwhile (attempt %d): %s", attempt, exc)
                    continue
                raise
            return api.inspect_container(created["Id"])
    raise AssertionError("unreachable: the last attempt returns or raises")


@bp.post("")
def create() -> tuple[Response, int]:
    """Create and start a workspace container with limits, hardening and its ports on the host IP."""
    spec = _create_spec(_json())
    cfg = current_app.config
    docker = _docker()
    with translate("image not found"):
        api = docker.api
        current_app.extensions["agent_network"].ensure(api)
    current_app.extensions["agent_firewall"].ensure()  # before anything is published
    _prepare_folder(spec["folder"])
    attrs = _create_started(api, spec)
    problem = gate_problem(cfg["HOST_IP"], _published(attrs))
    if problem is not None:
        with translate("container not found"):
            api.remove_container(attrs["Id"], force=True)
        raise AgentError(400, f"image {spec['image']} does not run the Slipway gate: {problem}; "
                              "images must keep the workspace image's ENTRYPOINT (slipway-entrypoint)")
    return answer(_summary(attrs), "container created and started", 201)


@bp.get("")
def list_containers() -> tuple[Response, int]:
    """Managed containers, optionally filtered by `label=k=v` (repeatable)."""
    filters = [f"{MANAGED_LABEL}=true", *v.label_filters(request.args.getlist("label"))]
    with translate():
        rows = _docker().api.containers(all=True, filters={"label": filters})
    items = []
    for row in rows:
        app_ports = _app_ports(row.get("Labels") or {})
        published = {p["PrivatePort"]: p["PublicPort"] for p in row.get("Ports") or [] if p.get("PublicPort")}
        items.append({
            "id": row["Id"],
            "name": (row.get("Names") or ["/"])[0].lstrip("/"),
            "image": row.get("Image"),
            "status": row.get("State"),
            "labels": row.get("Labels") or {},
            "ports": {app: published[port] for app, port in app_ports.items() if port in published},
            "created": dt.datetime.fromtimestamp(row.get("Created", 0), dt.UTC).isoformat(),
        })
    return answer(items, f"{len(items)} containers")


def _spec_of(api: Any, attrs: dict) -> dict:
    """The create spec of an existing managed container: `_create_started` makes the same one again.

    Same name, labels, environment (the gate secret included), workspace folder and limits; the
    same image it ran, named by its tag while the tag still points at it."""
    config, host = attrs["Config"], attrs["HostConfig"]
    labels = config.get("Labels") or {}
    image = config.get("Image") or attrs["Image"]
    with contextlib.suppress(NotFound):
        if api.inspect_image(image)["Id"] != attrs["Image"]:
            image = attrs["Image"]  # the tag moved on since: keep what the workspace ran
    _, folder = v.workspace(labels.get(WORKSPACE_LABEL), current_app.config["WORKDIR_DEPLOY"])
    return {
        "name": attrs["Name"].lstrip("/"), "image": image, "ports": _app_ports(labels), "folder": folder,
        "labels": labels, "env": dict(item.split("=", 1) for item in config.get("Env") or [] if "=" in item),
        "cpu": (host.get("NanoCpus") or 0) / 1e9, "memory_mb": (host.get("Memory") or 0) // (1024 * 1024),
    }


def _recreated_on_new_ports(api: Any, attrs: dict) -> dict:
    """Make a stopped container again on fresh host ports, its old ports taken by another program.

    The old container is renamed aside first and removed only once the new one runs; if making
    the new one fails, the old one gets its name back: nothing is lost and nothing is left over.
    Files in the workspace folder stay (a bind mount); the container's own layer starts afresh,
    as after an image update."""
    spec = _spec_of(api, attrs)
    current_app.extensions["agent_network"].ensure(api)
    aside = f"{spec['name']}-replaced-{attrs['Id'][:12]}"
    api.rename(attrs["Id"], aside)
    try:
        fresh = _create_started(api, spec)
    except Exception:
        api.rename(attrs["Id"], spec["name"])
        raise
    api.remove_container(attrs["Id"], force=True)
    current_app.logger.warning("container %s: its host ports %s were taken; made again on %s", spec["name"],
                               _published(attrs), _published(fresh))
    return fresh


@bp.post("/<ref>/start")
def start(ref: str) -> tuple[Response, int]:
    """Start a managed container (already running is fine); made again on new ports if its were taken."""
    attrs = _inspect_managed(ref)
    current_app.extensions["agent_firewall"].ensure()  # rules may have been flushed since create
    api = _docker().api
    with translate("container not found"):
        try:
            api.start(attrs["Id"])
        except APIError as exc:
            if not host_ports.is_port_clash(exc):
                raise
            return answer(_summary(_recreated_on_new_ports(api, api.inspect_container(attrs["Id"]))),
                          "started on new host ports: another program had taken its ports")
        attrs = api.inspect_container(attrs["Id"])
    return answer(_summary(attrs), "started")


@bp.post("/<ref>/stop")
def stop(ref: str) -> tuple[Response, int]:
    """Stop a managed container (already stopped is fine)."""
    attrs = _inspect_managed(ref)
    with translate("container not found"):
        _docker().api.stop(attrs["Id"], timeout=current_app.config["STOP_TIMEOUT"])
        attrs = _docker().api.inspect_container(attrs["Id"])
    return answer(_summary(attrs), "stopped")


@bp.post("/<ref>/delete")
def delete(ref: str) -> tuple[Response, int]:
    """Remove a managed container and, when asked, its workspace folder; 404 when already gone."""
    remove_workspace = _json().get("remove_workspace", False)
    if not isinstance(remove_workspace, bool):
        raise bad_input("remove_workspace", "must be true or false")
    attrs = _inspect_managed(ref)
    rel = (attrs["Config"].get("Labels") or {}).get(WORKSPACE_LABEL)
    with translate("container not found"):
        try:
            _docker().api.remove_container(attrs["Id"], force=True, v=True)
        except NotFound as exc:
            raise AgentError(404, "container not found") from exc
    removed = False
    if remove_workspace and rel:
        _, folder = v.workspace(rel, current_app.config["WORKDIR_DEPLOY"])
        if folder.exists():
            shutil.rmtree(folder)
            removed = True
    return answer({"id": attrs["Id"], "removed_workspace": removed}, "deleted")


@bp.get("/<ref>/ports")
def ports(ref: str) -> tuple[Response, int]:
    """App name → published host port."""
    return answer(_published(_inspect_managed(ref)), "ok")


@bp.get("/<ref>/logs")
def logs(ref: str) -> tuple[Response, int]:
    """The last `tail` lines (default 100, at most 10000) of a managed container's output."""
    tail = request.args.get("tail", "100")
    if not (tail.isascii() and tail.isdigit()) or not 1 <= int(tail) <= 10000:
        raise bad_input("tail", "must be an integer between 1 and 10000")
    attrs = _inspect_managed(ref)
    with translate("container not found"):
        raw = _docker().api.logs(attrs["Id"], stdout=True, stderr=True, tail=int(tail))
    return answer({"logs": raw.decode("utf-8", "replace")}, "ok")
