"""Servers area: Docker hosts, their agents, health, charts and the refresh task."""
