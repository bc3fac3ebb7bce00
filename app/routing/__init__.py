"""Workspace routing: the edge nginx configuration, generated from the database."""
