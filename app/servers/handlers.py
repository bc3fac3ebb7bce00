"""Task kind `refresh_server`: poll one server now (the "test connection" button)."""

from __future__ import annotations

from typing import Any

from app.agent_client import AgentClient, AgentError
from app.backends.swarm_client import connect, probe_swarm
from app.extensions import db
from app.models import Server
from app.security.crypto import SecretDecryptError
from app.services.servers import apply_outcome, probe
from app.timeutil import utcnow
from app.worker.kinds import PRIORITY_INTERACTIVE, TaskContext, TaskFailed, task_kind


@task_kind("refresh_server", max_attempts=1, priority=PRIORITY_INTERACTIVE)
def refresh_server(ctx: TaskContext) -> dict[str, Any]:
    """Probe the server in `payload["server_id"]` once and record the outcome like a poll."""
    server = db.session.get(Server, ctx.payload.get("server_id"))
    if server is None:
        raise TaskFailed("the server no longer exists")
    if server.backend == "swarm":
        ctx.log(f"asking the Swarm manager of {server.name} at {server.agent_url} for its nodes")
        try:
            outcome = probe_swarm(connect(server), ctx.app.config["INSTANCE_NAME"])
        except SecretDecryptError as exc:
            raise TaskFailed("the stored TLS certificate cannot be decrypted; enter it again") from exc
        except AgentError as exc:
            raise TaskFailed(f"unreachable: {exc}") from exc
    else:
        ctx.log(f"asking the agent of {server.name} at {server.agent_url} for its stats")
        try:
            client = AgentClient.for_server(server, retries=0)
        except SecretDecryptError as exc:
            raise TaskFailed("the stored token cannot be decrypted; enter it again") from exc
        outcome = probe(client)
    config = ctx.app.config
    changed = apply_outcome(server, outcome, utcnow(), failures_offline=config["POLL_FAILURES_OFFLINE"],
                            successes_online=config["POLL_SUCCESSES_ONLINE"],
                            actor=ctx.task.requested_by)
    status, name = server.status, server.name
    db.session.commit()
    if changed:
        ctx.log(f"status of {name} is now {status}")
    if outcome.kind != "ok":
        raise TaskFailed(f"{outcome.kind}: {outcome.error}")
    stats = outcome.stats
    if server.backend == "swarm":
        nodes = stats.get("nodes") or []
        ctx.progress(100, f"connected in {outcome.seconds:.2f} s: Docker {stats.get('docker_version', '?')}, "
                          f"{len(nodes)} nodes, {sum(1 for n in nodes if n.get('state') == 'ready')} ready")
    else:
        ctx.progress(100, f"connected in {outcome.seconds:.2f} s: Docker {stats.get('docker_version', '?')}, "
                          f"{(stats.get('containers') or {}).get('running', '?')} containers running")
    return {"status": status, "seconds": round(outcome.seconds, 3)}
