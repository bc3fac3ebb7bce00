"""Workspaces: the owner's page, the hand-off to workspace hosts, the nginx owner check, tasks."""
