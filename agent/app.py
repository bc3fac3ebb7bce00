"""The agent's app factory: it only builds (no Docker call until a request needs one)."""

from __future__ import annotations

from flask import Flask

from agent import routes_builds, routes_containers, routes_events, routes_images, routes_system
from agent.auth import init_auth
from agent.config import AgentConfig
from agent.docker_ops import DockerHolder, NetworkKeeper
from agent.errors import register_error_handlers
from agent.events import EventBuffer, KnownImages
from agent.firewall import EdgeFirewall
from agent.routes_system import CpuSampler
from agent.signing import NonceCache


def create_app(config: AgentConfig | None = None) -> Flask:
    """Build the agent app from `config` (default: the environment); refuses an unsafe configuration."""
    config = config or AgentConfig.from_env()
    problems = config.problems()
    if problems:
        raise ValueError("agent configuration: " + "; ".join(problems))
    app = Flask("agent")
    app.config.update(
        AGENT_TOKEN=config.token,
        AGENT_ALLOWED_IPS=config.allowed_ips,
        WORKDIR_DEPLOY=config.workdir_deploy,
        HOST_IP=config.host_ip,
        NETWORK=config.network,
        PIDS_LIMIT=config.pids_limit,
        WORKSPACE_MOUNT=config.workspace_mount,
        WORKSPACE_UID=config.workspace_uid,
        STOP_TIMEOUT=config.stop_timeout,
        MAX_IMPORT_MB=config.max_import_mb,
        MAX_CONTENT_LENGTH=config.max_body_mb * 1024 * 1024,
        JSON_SORT_KEYS=False,
    )
    app.extensions["agent_config"] = config
    app.extensions["agent_nonces"] = NonceCache()
    app.extensions["agent_docker"] = DockerHolder(config.docker_timeout, pool_size=config.threads + 4)
    app.extensions["agent_network"] = NetworkKeeper(config.network)
    app.extensions["agent_firewall"] = EdgeFirewall(config.host_ip, config.edge_ips)
    app.extensions["agent_cpu"] = CpuSampler()
    app.extensions["agent_events"] = EventBuffer(config.events_max)
    app.extensions["agent_known_images"] = KnownImages()
    init_auth(app)
    register_error_handlers(app)
    for module in (routes_system, routes_containers, routes_images, routes_builds, routes_events):
        app.register_blueprint(module.bp)
    return app


def start_event_watchers(app: Flask) -> None:
    """In the serving process: a fresh epoch, then the Docker-events and host-sampler threads."""
    from agent.watchers import start_watchers

    buffer: EventBuffer = app.extensions["agent_events"]
    buffer.renew()
    app.extensions["agent_watchers_stop"] = start_watchers(
        buffer, app.extensions["agent_known_images"], app.extensions["agent_config"])
