"""What gunicorn's master loads before it forks the web workers, so they share it.

With `preload_app` the workers start as copies of the master: whatever the master has built
stays in pages the workers share until one of them writes to it. Without this warm-up each
worker would compile its own copy of every template on first render and import the modules
that are imported on first use (the task worker never needs them, so they are not imported
at start-up).
"""

from __future__ import annotations

import importlib

from flask import Flask
from sqlalchemy.orm import configure_mappers

# Imported on first use by the code (heavy, and not needed by the task worker); the web
# workers need them, so the master imports them once for all of them.
WEB_MODULES: tuple[str, ...] = ("zxcvbn",)
# Only with directory login configured (SLIPWAY_LDAP_URL).
DIRECTORY_MODULES: tuple[str, ...] = ("ldap3", "ldap3.core.exceptions", "ldap3.utils.conv", "ldap3.utils.dn")


def warm(app: Flask) -> int:
    """Import the web-only modules, configure the mappers, compile every template; returns how many."""
    for name in WEB_MODULES + (DIRECTORY_MODULES if app.config.get("LDAP_URL") else ()):
        importlib.import_module(name)
    configure_mappers()
    loader = app.jinja_loader
    names = loader.list_templates() if loader is not None else []
    for name in names:
        app.jinja_env.get_template(name)
    return len(names)
