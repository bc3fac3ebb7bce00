"""Entry point for gunicorn (`wsgi:app`) and the `flask --app wsgi` commands."""

import sys

from app import create_app
from config import ConfigError

try:
    app = create_app()
except ConfigError as exc:
    sys.exit(str(exc))
