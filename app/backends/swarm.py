"""The container backend over Docker Swarm: each workspace is a service with one replica.

Start and stop scale the service to 1 and 0; the scheduler chooses the node (constraints and
spread preferences come from the server row). Every service joins the instance's Swarm-scoped
bridge network without inter-container traffic (`swarm_network`), so no workspace reaches
another's ports over it; the edge reaches its apps through published ports (`publish_host`),
where only the workspace gate's secret lets a request through (see docs/swarm.md). The folder
is a named volume whose driver is configurable; it outlives the service unless removal asks
otherwise.
"""

from __future__ import annotations

import time
from typing import Any

import docker.types as dt
from flask import current_app

from agent.gate_check import gate_problem
from app.agent_client import AgentConflict, AgentError, AgentNotFound, AgentUnavailable
from app.backends.base import ContainerBackend, ContainerInfo, ContainerSpec
from app.backends.swarm_client import SwarmConnection, connect, translated
from app.backends.swarm_network import workspace_network
from app.backends.swarm_status import DRIVER_LABEL, NODE_LABEL, service_state
from app.models.server import Server

MANAGED_LABEL = "slipway.managed"
INSTANCE_LABEL = "slipway.app.instance"
PORTS_LABEL = "slipway.ports"
VOLUME_LABEL = "slipway.volume"
LEGACY_NETWORK_SUFFIX = "-net"  # services made before the shared network each had their own
WORKSPACE_MOUNT = "/workspace"
PIDS_LIMIT = 512
POLL_SECONDS = 0.05  # while a task starts: one call (its tasks) per poll, so a start is seen soon
REMOVAL_POLL_SECONDS = 0.1
NO_ROOM_GRACE_SECONDS = 2.0  # the scheduler decides at once; wait a little for a node freeing up


def _ports_label(ports: dict[str, int]) -> str:
    return ",".join(f"{app}={port}" for app, port in ports.items())


def app_ports(labels: dict[str, str]) -> dict[str, int]:
    """app → container port, from the service's ports label."""
    found: dict[str, int] = {}
    for item in (labels.get(PORTS_LABEL) or "").split(","):
        app, _, port = item.partition("=")
        if app and port.isdigit():
            found[app] = int(port)
    return found


def placement(text: str) -> tuple[list[str], list[tuple[str, str]]]:
    """Constraints and spread preferences from the server's placement lines.

    One rule a line: a constraint such as `node.labels.slipway==yes`, or `spread=node.labels.zone`.
    """
    constraints, preferences = [], []
    for line in (text or "").splitlines():
        line = line.strip()
        if line.startswith("spread="):
            preferences.append(("spread", line.removeprefix("spread=").strip()))
        elif line:
            constraints.append(line)
    return constraints, preferences


def _published_ports(service: dict[str, Any], tasks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Ingress ports are the service's; host-mode ports are those of its running task."""
    ports = list((service.get("Endpoint") or {}).get("Ports") or [])
    for task in tasks:
        status = task.get("Status") or {}
        if status.get("State") == "running" and task.get("DesiredState") == "running":
            ports += (status.get("PortStatus") or {}).get("Ports") or []
    return ports


class SwarmBackend(ContainerBackend):
    """Workspace services on one Swarm, through its manager's Engine API."""

    def __init__(
        self, server: Server, conn: SwarmConnection | None = None, instance: str | None = None
    ) -> None:
        self.server = server
        self.conn = conn or connect(server)
        self.instance = instance or current_app.config["INSTANCE_NAME"]
        config = current_app.config
        self.volume_driver = config["SWARM_VOLUME_DRIVER"]
        self.volume_options = dict(config["SWARM_VOLUME_OPTIONS"])
        self.start_timeout = float(config["SWARM_START_TIMEOUT"])
        self.publish_mode = config["SWARM_PUBLISH_MODE"]

    # -- reading ------------------------------------------------------------------------------

    def _mine(self, service: dict[str, Any]) -> bool:
        labels = (service.get("Spec") or {}).get("Labels") or {}
        return labels.get(MANAGED_LABEL) == "true" and labels.get(INSTANCE_LABEL) == self.instance

    def _services(self) -> list[dict[str, Any]]:
        with translated():
            found = self.conn.api.services(filters={"label": [f"{MANAGED_LABEL}=true",
                                                              f"{INSTANCE_LABEL}={self.instance}"]})
        return [service for service in found if self._mine(service)]

    def _find(self, ref: str) -> dict[str, Any] | None:
        for service in self._services():
            name = service["Spec"]["Name"]
            if ref in (service["ID"], name) or (len(ref) >= 12 and service["ID"].startswith(ref)):
                return service
        return None

    def _tasks(self, service_id: str | None = None) -> list[dict[str, Any]]:
        with translated():
            return self.conn.api.tasks(filters={"service": service_id} if service_id else None)

    def _info(self, service: dict[str, Any], tasks: list[dict[str, Any]]) -> ContainerInfo:
        spec = service["Spec"]
        labels = dict(spec.get("Labels") or {})
        status, detail = service_state(service, tasks)
        published: dict[int, int] = {}
        for item in _published_ports(service, tasks):
            # Engines 20.10 may give IPv4 and IPv6 different host ports: the first one listed is IPv4.
            if item.get("PublishedPort"):
                published.setdefault(item.get("TargetPort"), item["PublishedPort"])
        ports = {app: published[port] for app, port in app_ports(labels).items() if port in published}
        return ContainerInfo(id=service["ID"], name=spec["Name"], status=status,
                             ports=ports if status == "running" else {}, labels=labels,
                             created=service.get("CreatedAt"), detail=detail)

    def status(self, ref: str) -> ContainerInfo | None:
        """The workspace service `ref` (id, id prefix or name) with its task state, or None."""
        service = self._find(ref)
        if service is None:
            return None
        return self._info(service, self._tasks(service["ID"]))

    def list_managed(self) -> list[ContainerInfo]:
        """Every workspace service of this instance; one call for the services, one for all tasks."""
        services = self._services()
        if not services:
            return []
        by_service: dict[str, list[dict[str, Any]]] = {}
        for task in self._tasks():
            by_service.setdefault(task.get("ServiceID", ""), []).append(task)
        return [self._info(service, by_service.get(service["ID"], [])) for service in services]

    # -- changing -----------------------------------------------------------------------------

    def _volume_name(self, spec: ContainerSpec) -> str:
        return f"{self.instance}-files-{spec.workspace_dir}"

    def _mount(self, spec: ContainerSpec, labels: dict[str, str]) -> dt.Mount:
        options = {k: v.replace("{name}", spec.workspace_dir) for k, v in self.volume_options.items()}
        return dt.Mount(WORKSPACE_MOUNT, self._volume_name(spec), type="volume", labels=labels,
                        driver_config=dt.DriverConfig(self.volume_driver, options or None))

    def create(self, spec: ContainerSpec) -> ContainerInfo:
        """Create the service (one replica), wait for its task to run and its ports to be the gate's."""
        if self._find(spec.name) is not None:
            raise AgentConflict(f"a service named {spec.name} exists already", 409)
        labels = {**spec.labels, MANAGED_LABEL: "true", INSTANCE_LABEL: self.instance,
                  PORTS_LABEL: _ports_label(spec.ports), VOLUME_LABEL: self._volume_name(spec),
                  DRIVER_LABEL: self.volume_driver}
        owned = {MANAGED_LABEL: "true", INSTANCE_LABEL: self.instance}
        network = workspace_network(self.conn, self.instance, owned)
        memory = spec.memory_mb * 1024 * 1024
        container = dt.ContainerSpec(
            spec.image, env=spec.env, labels=labels, mounts=[self._mount(spec, owned)], init=True,
            cap_drop=["ALL"], stop_grace_period=10 * 10**9,
        )
        resources = dt.Resources(cpu_limit=int(spec.cpu * 1e9), mem_limit=memory,
                                 cpu_reservation=int(spec.cpu * 1e9), mem_reservation=memory)
        resources["Limits"]["Pids"] = PIDS_LIMIT
        constraints, preferences = placement(self.server.swarm_placement or "")
        template = dt.TaskTemplate(
            container, resources=resources,
            restart_policy=dt.RestartPolicy(condition="any", delay=2 * 10**9),
            placement=dt.Placement(constraints=constraints or None, preferences=preferences or None),
        )
        if self._engine_api() >= (1, 46):  # older engines cannot set it on services (see docs/swarm.md)
            container.setdefault("Privileges", {})["NoNewPrivileges"] = True
        endpoint = dt.EndpointSpec(mode="vip", ports=[
            {"Protocol": "tcp", "TargetPort": port, "PublishMode": self.publish_mode}
            for port in spec.ports.values()])
        with translated():
            created = self.conn.api.create_service(
                template, name=spec.name, labels=labels, mode=dt.ServiceMode("replicated", 1),
                networks=[network], endpoint_spec=endpoint)
        info = self._wait_running(created["ID"], remove_on_failure=True)
        if self.volume_driver == "local":
            info = self._pin_to_volume(created["ID"]) or info
        problem = gate_problem(self.server.publish_host, info.ports)
        if problem is not None:
            self.remove(created["ID"])
            raise AgentError(f"image {spec.image} does not run the Slipway gate: {problem}; images must keep "
                             "the workspace image's ENTRYPOINT (slipway-entrypoint)", 400)
        return info

    def _pin_to_volume(self, service_id: str) -> ContainerInfo | None:
        """On several nodes, keep a service with a local volume on the node that holds the volume.

        Changing the placement restarts the task once, so a single-node Swarm is left alone.
        """
        with translated():
            nodes = self.conn.api.nodes()
            if len(nodes) < 2:
                return None
            service = self.conn.api.inspect_service(service_id)
            tasks = self._tasks(service_id)
            running = [t for t in tasks if (t.get("Status") or {}).get("State") == "running"]
            if not running:
                return None
            node_id = running[0]["NodeID"]
            template = service["Spec"]["TaskTemplate"]
            placed = (template.get("Placement") or {}).get("Constraints") or []
            constraints = [*placed, f"node.id=={node_id}"]
            template.setdefault("Placement", {})["Constraints"] = constraints
            labels = {**service["Spec"].get("Labels", {}), NODE_LABEL: node_id}
            self.conn.api.update_service(service_id, version=service["Version"]["Index"],
                                         task_template=template, labels=labels, fetch_current_spec=True)
        return self._wait_running(service_id)

    def _engine_api(self) -> tuple[int, ...]:
        with translated():
            text = str(self.conn.api.version().get("ApiVersion", ""))
        return tuple(int(part) for part in text.split(".") if part.isdigit())

    def _scale(self, ref: str, replicas: int) -> dict[str, Any]:
        service = self._find(ref)
        if service is None:
            raise AgentNotFound("service not found", 404)
        mode = service["Spec"].get("Mode") or {}
        if (mode.get("Replicated") or {}).get("Replicas") != replicas:
            with translated():
                self.conn.api.update_service(
                    service["ID"], version=service["Version"]["Index"],
                    mode=dt.ServiceMode("replicated", replicas), fetch_current_spec=True)
        return service

    def _wait_running(self, service_id: str, *, remove_on_failure: bool = False) -> ContainerInfo:
        """Wait until the task runs; a failed or rejected task or "no room" raises with the reason."""
        deadline = time.monotonic() + self.start_timeout
        no_room_since: float | None = None
        with translated():
            service = self.conn.api.inspect_service(service_id)
        while True:
            info = self._info(service, self._tasks(service_id))
            if info.running and info.ports:
                return info
            if info.running:  # ingress ports are the service's, allocated a moment after it is made
                with translated():
                    service = self.conn.api.inspect_service(service_id)
            failed = info.status in ("failed", "rejected")
            if info.status == "no_room":
                no_room_since = no_room_since or time.monotonic()
                failed = time.monotonic() - no_room_since >= NO_ROOM_GRACE_SECONDS
            if failed or time.monotonic() > deadline:
                if remove_on_failure:
                    self.remove(service_id)
                if failed:
                    raise AgentError(info.detail or f"the service's task is {info.status}", 400)
                raise AgentUnavailable(f"the service's task did not run within {self.start_timeout:g} s "
                                       f"({info.detail or info.status})", timed_out=True)
            time.sleep(POLL_SECONDS)

    def start(self, ref: str) -> ContainerInfo:
        """Scale to one replica and wait for its task to run (a running service is left alone)."""
        service = self._scale(ref, 1)
        return self._wait_running(service["ID"])

    def stop(self, ref: str) -> ContainerInfo:
        """Scale to zero and wait (bounded) until no task of it runs."""
        service = self._scale(ref, 0)
        deadline = time.monotonic() + self.start_timeout
        with translated():
            fresh = self.conn.api.inspect_service(service["ID"])
        while True:
            info = self._info(fresh, self._tasks(service["ID"]))
            if info.status == "exited" or time.monotonic() > deadline:
                return info
            time.sleep(POLL_SECONDS)

    def remove(self, ref: str, *, remove_workspace: bool = False) -> bool:
        """Delete the service and its network, and its volume when asked; False when already gone."""
        service = self._find(ref)
        if service is None:
            return False
        name = service["Spec"]["Name"]
        volume = (service["Spec"].get("Labels") or {}).get(VOLUME_LABEL)
        api = self.conn.api
        with translated():
            try:
                api.remove_service(service["ID"])
            except Exception as exc:  # noqa: BLE001 - gone between the lookup and now means done
                if getattr(exc, "status_code", None) != 404:
                    raise
        # An own network (services made before the shared one) and the volume are free once the
        # task's container is gone (bounded wait).
        self._retry_removal(lambda: self._remove_network(name + LEGACY_NETWORK_SUFFIX))
        if remove_workspace and volume:
            self._retry_removal(lambda: self._remove_volume(volume))
        return True

    def _retry_removal(self, step: Any) -> None:
        deadline = time.monotonic() + self.start_timeout
        while not step():
            if time.monotonic() > deadline:
                raise AgentUnavailable("the service's container did not go away in time; retry the removal")
            time.sleep(REMOVAL_POLL_SECONDS)

    def _remove_network(self, name: str) -> bool:
        from docker.errors import APIError, NotFound

        api = self.conn.api
        mine = [n for n in api.networks(names=[name])
                if n.get("Name") == name and (n.get("Labels") or {}).get(INSTANCE_LABEL) == self.instance]
        # Done only once it is no longer listed: the manager drops it asynchronously, and a
        # re-create in between would otherwise adopt the dying network.
        for network in mine:
            try:
                api.remove_network(network["Id"])
            except NotFound:
                pass
            except APIError as exc:
                text = str(exc.explanation or exc)
                if not any(words in text for words in ("in use", "active endpoints", "not found")):
                    raise AgentError(text, exc.status_code) from exc
        return not mine

    def _remove_volume(self, name: str) -> bool:
        from docker.errors import APIError, NotFound

        try:
            self.conn.api.remove_volume(name)
        except NotFound:
            return True
        except APIError as exc:
            if exc.status_code == 409:  # still in use by the exiting container
                return False
            raise AgentError(str(exc.explanation or exc), exc.status_code) from exc
        return True

