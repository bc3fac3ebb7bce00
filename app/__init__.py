"""The Slipway web application factory."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from flask import Flask

from app.settings_checks import validate
from config import BASE_DIR, CONFIGS, Config, ConfigError


def create_app(config_class: type[Config] | None = None, overrides: Mapping[str, Any] | None = None) -> Flask:
    """Build the app: settings, extensions, blueprints, error handlers, CLI. No I/O beyond checks."""
    if config_class is None:
        config_class = CONFIGS[os.environ.get("SLIPWAY_ENV", "production")]
    settings, problems = config_class.load()
    settings.update(overrides or {})
    problems += validate(settings)
    if problems:
        raise ConfigError("Slipway cannot start:\n  - " + "\n  - ".join(problems))

    app = Flask(
        __name__,
        template_folder=str(BASE_DIR / "templates"),
        static_folder=str(BASE_DIR / "static"),
    )
    app.config.update(settings)
    if app.config["TRUSTED_PROXY_COUNT"]:
        from app.security.proxy import TrustedProxyFix, parse_networks

        app.wsgi_app = TrustedProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, app.config["TRUSTED_PROXY_COUNT"], parse_networks(app.config["TRUSTED_PROXIES"])
        )

    _init_extensions(app)
    _register_blueprints(app)

    from app.cli import register_cli
    from app.errors import register_error_handlers
    from app.security.headers import init_security_headers

    register_error_handlers(app)
    register_cli(app)
    init_security_headers(app)

    from app.metrics import init_metrics

    init_metrics(app)
    from app.analytics import init_analytics

    init_analytics(app)
    return app


def _init_extensions(app: Flask) -> None:
    from app.extensions import bootstrap, csrf, db, limiter, login_manager, sock

    if app.config["SQLALCHEMY_DATABASE_URI"].startswith(("mysql", "mariadb")):
        options = dict(app.config.get("SQLALCHEMY_ENGINE_OPTIONS") or {})
        options["connect_args"] = {"connect_timeout": app.config["DATABASE_CONNECT_TIMEOUT"],
                                   **options.get("connect_args", {})}
        options.setdefault("pool_size", app.config["DATABASE_POOL_SIZE"])
        app.config["SQLALCHEMY_ENGINE_OPTIONS"] = options
    db.init_app(app)
    from app.extensions import tune_mariadb

    with app.app_context():
        tune_mariadb(db.engine)
    from app.migrate_lazy import init_migrate

    init_migrate(app, db, str(BASE_DIR / "migrations"))
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.login_message_category = "info"
    login_manager.session_protection = None  # sessions are checked server-side instead
    csrf.init_app(app)
    app.config.setdefault("RATELIMIT_STORAGE_URI", app.config.get("REDIS_URL") or "memory://")
    limiter.init_app(app)
    sock.init_app(app)
    bootstrap.init_app(app)

    from app import models  # noqa: F401  - registers the tables with SQLAlchemy
    from app.auth import sessions  # noqa: F401  - registers the session loader
    from app.templating import init_templating
    from app.worker import load_kinds

    init_templating(app)
    load_kinds()


def _register_blueprints(app: Flask) -> None:
    # Areas whose views span several modules: import every module so its views land on `bp`.
    from app.account import keys, mail_prefs  # noqa: F401
    from app.account.routes import bp as account_bp
    from app.admin import audit_export, dashboard  # noqa: F401
    from app.admin.routes import bp as admin_bp
    from app.admin.security_routes import bp as security_admin_bp
    from app.admin.workspace_routes import bp as workspace_admin_bp
    from app.api import logs as api_logs  # noqa: F401
    from app.api.routes import bp as api_bp
    from app.auth import reset, second_step  # noqa: F401
    from app.auth.routes import bp as auth_bp
    from app.main import bp as main_bp
    from app.servers.routes import bp as servers_bp
    from app.tasks.routes import bp as tasks_bp
    from app.users.routes import bp as users_bp
    from app.workspaces.host_routes import bp as workspace_edge_bp
    from app.workspaces.routes import bp as workspaces_bp

    for blueprint in (workspaces_bp, workspace_edge_bp, workspace_admin_bp):
        app.register_blueprint(blueprint)

    for blueprint in (main_bp, auth_bp, users_bp, admin_bp, api_bp, tasks_bp, account_bp, security_admin_bp):
        app.register_blueprint(blueprint)
    app.register_blueprint(servers_bp)

    from app.images import (  # noqa: F401
        build_routes,
        registry_routes,
        settings_routes,
        template_routes,
        upload_routes,
    )
    from app.images.routes import bp as images_bp

    app.register_blueprint(images_bp)

    from app.logs import alert_routes, exports, rule_routes, stream  # noqa: F401
    from app.logs.routes import bp as logs_bp

    app.register_blueprint(logs_bp)
    from app.analytics.routes import bp as traffic_bp

    app.register_blueprint(traffic_bp)
    from app.connections.routes import bp as connections_bp

    app.register_blueprint(connections_bp)
