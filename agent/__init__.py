"""Slipway agent: a small HTTP service over the local Docker Engine.

Kept import-light on purpose: `import agent.signing` must not pull in Flask or Docker.
The app factory lives in `agent.app.create_app`.
"""
