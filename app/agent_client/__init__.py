"""Talking to agents: `AgentClient` and the errors it raises."""

from app.agent_client.client import AgentClient, AgentConflict, AgentError, AgentNotFound, AgentUnavailable

__all__ = ["AgentClient", "AgentConflict", "AgentError", "AgentNotFound", "AgentUnavailable"]
