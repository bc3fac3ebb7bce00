"""Slipway settings, read from the environment with explicit types.

Each config class names its environment and its defaults; `load()` parses every
setting, and `app/settings_checks.py` checks the result, both collecting *every* problem so
start-up can stop with one message that lists them all.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

BASE_DIR = Path(__file__).resolve().parent
DEFAULT_SECRET = "dev-only-secret-change-me"  # noqa: S105 - refused in production
# 32 zero-ish bytes, urlsafe-base64: only for development and tests, refused in production.
DEFAULT_SECRETS_KEY = "ZGV2LW9ubHktc2VjcmV0cy1rZXktY2hhbmdlLW1lISE="  # noqa: S105


class ConfigError(RuntimeError):
    """Raised at start-up with every configuration problem in its message."""


class _EnvReader:
    """Reads typed values from an environment mapping, collecting parse errors."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self.environ = environ
        self.problems: list[str] = []

    def text(self, name: str, default: str | None) -> str | None:
        value = self.environ.get(name)
        return default if value is None or value == "" else value

    def listed(self, name: str, default: str) -> str:
        """A comma list where an explicit empty value or `none` means the empty list (unset: default)."""
        value = self.environ.get(name)
        if value is None:
            return default
        return "" if value.strip().lower() in ("", "none") else value

    def integer(self, name: str, default: int) -> int:
        raw = self.environ.get(name)
        if raw is None or raw == "":
            return default
        try:
            return int(raw)
        except ValueError:
            self.problems.append(f"{name} must be an integer, got {raw!r}")
            return default

    def boolean(self, name: str, default: bool) -> bool:
        raw = self.environ.get(name)
        if raw is None or raw == "":
            return default
        if raw.lower() in ("1", "true", "yes", "on"):
            return True
        if raw.lower() in ("0", "false", "no", "off"):
            return False
        self.problems.append(f"{name} must be true or false, got {raw!r}")
        return default

    def path(self, name: str, default: Path) -> Path:
        raw = self.environ.get(name)
        return Path(raw) if raw else default

    def number(self, name: str, default: float) -> float:
        raw = self.environ.get(name)
        if raw is None or raw == "":
            return default
        try:
            return float(raw)
        except ValueError:
            self.problems.append(f"{name} must be a number, got {raw!r}")
            return default

    def networks(self, name: str, default: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        """A comma list of CIDR networks, or `none` for an empty list."""
        raw = self.environ.get(name) or default
        if raw.strip().lower() == "none":
            return ()
        networks = []
        for item in (part.strip() for part in raw.split(",")):
            try:
                networks.append(ipaddress.ip_network(item))
            except ValueError:
                self.problems.append(f"{name} must list networks in CIDR notation such as 10.0.0.0/8 "
                                     f"(host bits zero), or 'none'; got {item!r}")
        return tuple(networks)

    def options(self, name: str, default: str) -> dict[str, str]:
        """`key=value` pairs separated by semicolons (values may hold commas and equals signs)."""
        raw = self.environ.get(name, default)
        found: dict[str, str] = {}
        for item in filter(None, (part.strip() for part in raw.split(";"))):
            key, sep, value = item.partition("=")
            if not sep or not key.strip():
                self.problems.append(f"{name} must be key=value pairs separated by semicolons, got {item!r}")
                continue
            found[key.strip()] = value.strip()
        return found

    def retention(self, name: str, default: str) -> dict[str, int]:
        """Days to keep log entries per level: `level=days` pairs; levels left out keep the default."""
        days = parse_retention(default)[0]
        raw = self.environ.get(name) or ""
        parsed, problems = parse_retention(raw)
        self.problems.extend(f"{name}: {problem}" for problem in problems)
        days.update(parsed)
        return days


LOG_RETENTION_DEFAULT = "debug=3,info=30,warning=90,error=180,critical=365"
LDAP_USER_FILTER_DEFAULT = "(&(objectClass=inetOrgPerson)(uid={login}))"
LDAP_GROUP_FILTER_DEFAULT = "(&(objectClass=groupOfNames)(member={dn}))"


def parse_retention(raw: str) -> tuple[dict[str, int], list[str]]:
    """`"debug=3,info=30"` into {level: days} and the problems found (unknown level, days not 1-36500)."""
    from app.models.logs import ENTRY_LEVELS

    days: dict[str, int] = {}
    problems: list[str] = []
    for item in (part.strip() for part in raw.split(",") if part.strip()):
        level, sep, value = (text.strip() for text in item.partition("="))
        if not sep or level not in ENTRY_LEVELS:
            problems.append(f"{item!r} must be level=days with a level among {', '.join(ENTRY_LEVELS)}")
        elif not (value.isascii() and value.isdigit()) or not 1 <= int(value) <= 36500:
            problems.append(f"{item!r}: days must be a whole number from 1 to 36500")
        else:
            days[level] = int(value)
    return days, problems


def _image_minutes(env: Any, name: str) -> dict[str, int]:
    """`ref=minutes,ref=minutes` (per-image idle stop; 0 = never for that image) as a dict."""
    raw = env.text(name, "") or ""
    minutes: dict[str, int] = {}
    for item in filter(None, (part.strip() for part in raw.split(","))):
        ref, sep, value = item.rpartition("=")
        if not sep or not ref.strip() or not value.strip().isdigit():
            env.problems.append(f"{name} must be ref=minutes[,ref=minutes...], got {item!r}")
            continue
        minutes[ref.strip()] = int(value)
    return minutes


class Config:
    """Production settings: everything must come from the environment."""

    ENV_NAME = "production"
    DEBUG = False
    TESTING = False
    DEFAULT_DATABASE_URL: str | None = None
    DEFAULT_SECRET_KEY: str | None = None
    DEFAULT_SECRETS_KEY: str | None = None
    DEFAULT_BCRYPT_ROUNDS = 12
    DEFAULT_HTTPS = True
    DEFAULT_MFA_REQUIRED_ROLES = "admin,qvp"
    DEFAULT_ANALYTICS_ENABLED = True

    @classmethod
    def load(cls, environ: Mapping[str, str] | None = None) -> tuple[dict[str, Any], list[str]]:
        """Parse the environment into a settings dict; returns (settings, parse problems)."""
        env = _EnvReader(os.environ if environ is None else environ)
        data_dir = env.path("SLIPWAY_DATA_DIR", BASE_DIR / "instance")
        https = env.boolean("SLIPWAY_HTTPS", cls.DEFAULT_HTTPS)
        settings: dict[str, Any] = {
            "ENV_NAME": cls.ENV_NAME,
            "DEBUG": cls.DEBUG,
            "TESTING": cls.TESTING,
            "SECRET_KEY": env.text("SECRET_KEY", cls.DEFAULT_SECRET_KEY),
            "SECRETS_KEY": env.text("SLIPWAY_SECRETS_KEY", cls.DEFAULT_SECRETS_KEY),
            "SQLALCHEMY_DATABASE_URI": env.text("DATABASE_URL", cls.default_database_url(data_dir)),
            "SQLALCHEMY_ENGINE_OPTIONS": {"pool_pre_ping": True},
            # An outage must answer 503 fast, not hang each request on the driver's default timeouts.
            "DATABASE_CONNECT_TIMEOUT": env.integer("SLIPWAY_DATABASE_CONNECT_TIMEOUT", 3),
            # One connection per gunicorn thread plus a few for background threads (request analytics'
            # flusher, the worker's loops): SQLAlchemy's default 5 + 10 overflow made the 16th busy
            # thread wait 30 s for a connection and answer 503 "database unavailable" under load.
            "DATABASE_POOL_SIZE": env.integer("SLIPWAY_DATABASE_POOL_SIZE",
                                              env.integer("SLIPWAY_GUNICORN_THREADS", 16) + 4),
            "HEALTH_TIMEOUT_SECONDS": env.number("SLIPWAY_HEALTH_TIMEOUT_SECONDS", 2.0),
            "DATA_DIR": data_dir,
            "WORKSPACE_ROOT": env.path("SLIPWAY_WORKSPACE_ROOT", data_dir / "workspaces"),
            "BCRYPT_ROUNDS": env.integer("SLIPWAY_BCRYPT_ROUNDS", cls.DEFAULT_BCRYPT_ROUNDS),
            "HTTPS": https,
            "SESSION_COOKIE_NAME": "__Host-slipway" if https else "slipway",
            "SESSION_COOKIE_SECURE": https,
            "SESSION_COOKIE_HTTPONLY": True,
            "SESSION_COOKIE_SAMESITE": "Lax",
            "SESSION_LIFETIME_HOURS": env.integer("SLIPWAY_SESSION_LIFETIME_HOURS", 12),
            "SESSION_IDLE_MINUTES": env.integer("SLIPWAY_SESSION_IDLE_MINUTES", 120),
            "TRUSTED_PROXY_COUNT": env.integer("SLIPWAY_TRUSTED_PROXY_COUNT", 0),
            "REDIS_URL": env.text("REDIS_URL", None),
            "LISTEN_HOST": env.text("SLIPWAY_LISTEN_HOST", "127.0.0.1"),
            "LISTEN_PORT": env.integer("SLIPWAY_LISTEN_PORT", 8000),
            "WORKSPACE_DOMAIN": env.text("SLIPWAY_WORKSPACE_DOMAIN", "ws.localhost:8080"),
            "MAX_CONTENT_LENGTH": env.integer("SLIPWAY_MAX_REQUEST_BYTES", 16 * 1024 * 1024),
            "WORKER_CONCURRENCY": env.integer("SLIPWAY_WORKER_CONCURRENCY", 4),
            "TASK_LEASE_SECONDS": env.integer("SLIPWAY_TASK_LEASE_SECONDS", 60),
            "TASK_POLL_MS": env.integer("SLIPWAY_TASK_POLL_MS", 500),
            "TASK_RETRY_BASE_SECONDS": env.integer("SLIPWAY_TASK_RETRY_BASE_SECONDS", 5),
            "TASK_KEEP_DAYS": env.integer("SLIPWAY_TASK_KEEP_DAYS", 30),
            "WORKER_SHUTDOWN_GRACE_SECONDS": env.integer("SLIPWAY_WORKER_SHUTDOWN_GRACE_SECONDS", 30),
            # Agents and the poller (issue 5): see README's settings table.
            "AGENT_CONNECT_TIMEOUT": env.number("SLIPWAY_AGENT_CONNECT_TIMEOUT", 3.0),
            "AGENT_READ_TIMEOUT": env.number("SLIPWAY_AGENT_READ_TIMEOUT", 10.0),
            "AGENT_RETRIES": env.integer("SLIPWAY_AGENT_RETRIES", 2),
            "POLL_ENABLED": env.boolean("SLIPWAY_POLL_ENABLED", True),
            "POLL_INTERVAL_SECONDS": env.number("SLIPWAY_POLL_INTERVAL_SECONDS", 10.0),
            "POLL_POOL_SIZE": env.integer("SLIPWAY_POLL_POOL_SIZE", 64),
            "POLL_FAILURES_OFFLINE": env.integer("SLIPWAY_POLL_FAILURES_OFFLINE", 3),
            "POLL_SUCCESSES_ONLINE": env.integer("SLIPWAY_POLL_SUCCESSES_ONLINE", 2),
            "POLL_LEASE_SECONDS": env.number("SLIPWAY_POLL_LEASE_SECONDS", 30.0),
            "SERVER_STATS_TTL_SECONDS": env.integer("SLIPWAY_SERVER_STATS_TTL_SECONDS", 60),
            "METRICS_RAW_HOURS": env.integer("SLIPWAY_METRICS_RAW_HOURS", 24),
            "METRICS_KEEP_DAYS": env.integer("SLIPWAY_METRICS_KEEP_DAYS", 30),
            "METRICS_SAMPLE_SECONDS": env.number("SLIPWAY_METRICS_SAMPLE_SECONDS", 60.0),
            "PUBLIC_URL": env.text("SLIPWAY_PUBLIC_URL", "http://127.0.0.1:8000"),
            "EDGE_DIR": env.path("SLIPWAY_EDGE_DIR", data_dir / "edge"),
            "EDGE_BIND": env.text("SLIPWAY_EDGE_BIND", "127.0.0.1"),
            "EDGE_PORT": env.integer("SLIPWAY_EDGE_PORT", 8080),
            "NGINX_BIN": env.text("SLIPWAY_NGINX_BIN", "/usr/sbin/nginx"),
            "EDGE_ADMIN_PORT": env.integer("SLIPWAY_EDGE_ADMIN_PORT", 8079),
            "EDGE_ADMIN_URLS": env.text("SLIPWAY_EDGE_ADMIN_URLS", ""),  # "" = this host's edge only
            "EDGE_KEY_FILE": env.text("SLIPWAY_EDGE_KEY_FILE", None),  # None: $EDGE_DIR/edge.key
            "EDGE_SYNC_SECONDS": env.integer("SLIPWAY_EDGE_SYNC_SECONDS", 10),
            "EDGE_COOKIE_MINUTES": env.integer("SLIPWAY_EDGE_COOKIE_MINUTES", 10),
            "WORKSPACE_ADMIN_ACCESS": env.boolean("SLIPWAY_WORKSPACE_ADMIN_ACCESS", False),
            "DEFAULT_IMAGE": env.text("SLIPWAY_DEFAULT_IMAGE", "slipway/test-workspace:latest"),
            "DEFAULT_CPU": float(env.integer("SLIPWAY_DEFAULT_CPU_MILLI", 1000)) / 1000,
            "DEFAULT_MEMORY_MB": env.integer("SLIPWAY_DEFAULT_MEMORY_MB", 1024),
            "ORPHAN_GRACE_SECONDS": env.integer("SLIPWAY_ORPHAN_GRACE_SECONDS", 300),
            "RECONCILE_INTERVAL_SECONDS": env.integer("SLIPWAY_RECONCILE_INTERVAL_SECONDS", 120),
            # Containers carry slipway.app.instance=<this>; the reconciler only ever touches its own.
            "INSTANCE_NAME": env.text("SLIPWAY_INSTANCE", "slipway"),
            # Swarm servers: each workspace's folder is a named volume of this driver (see docs/swarm.md).
            "SWARM_VOLUME_DRIVER": env.text("SLIPWAY_SWARM_VOLUME_DRIVER", "local"),
            "SWARM_VOLUME_OPTIONS": env.options("SLIPWAY_SWARM_VOLUME_OPTIONS", ""),
            "SWARM_START_TIMEOUT": env.number("SLIPWAY_SWARM_START_TIMEOUT", 90.0),
            "SWARM_PUBLISH_MODE": env.text("SLIPWAY_SWARM_PUBLISH_MODE", "host"),
            "TRUSTED_PROXIES": env.text("SLIPWAY_TRUSTED_PROXIES", "127.0.0.1,::1"),
            "MFA_REQUIRED_ROLES": env.listed("SLIPWAY_MFA_REQUIRED_ROLES", cls.DEFAULT_MFA_REQUIRED_ROLES),
            "MFA_ISSUER": env.text("SLIPWAY_MFA_ISSUER", "Slipway"),
            "LOGIN_LOCK_THRESHOLD": env.integer("SLIPWAY_LOGIN_LOCK_THRESHOLD", 5),
            "LOGIN_ACCOUNT_LOCK_THRESHOLD": env.integer("SLIPWAY_LOGIN_ACCOUNT_LOCK_THRESHOLD", 20),
            "LOGIN_LOCK_SECONDS": env.integer("SLIPWAY_LOGIN_LOCK_SECONDS", 60),
            "LOGIN_LOCK_MAX_SECONDS": env.integer("SLIPWAY_LOGIN_LOCK_MAX_SECONDS", 3600),
            "IP_BAN_FAILURES": env.integer("SLIPWAY_IP_BAN_FAILURES", 50),
            "IP_BAN_ACCOUNTS": env.integer("SLIPWAY_IP_BAN_ACCOUNTS", 5),
            "IP_BAN_WINDOW_SECONDS": env.integer("SLIPWAY_IP_BAN_WINDOW_SECONDS", 900),
            "IP_BAN_SECONDS": env.integer("SLIPWAY_IP_BAN_SECONDS", 3600),
            "PASSWORD_HISTORY": env.integer("SLIPWAY_PASSWORD_HISTORY", 5),
            # Directory (LDAP / Active Directory) login: off while SLIPWAY_LDAP_URL is unset.
            "LDAP_URL": env.text("SLIPWAY_LDAP_URL", None),
            "LDAP_START_TLS": env.boolean("SLIPWAY_LDAP_START_TLS", False),
            "LDAP_CA_FILE": env.text("SLIPWAY_LDAP_CA_FILE", None),
            "LDAP_BIND_DN": env.text("SLIPWAY_LDAP_BIND_DN", None),
            "LDAP_BIND_PASSWORD": env.text("SLIPWAY_LDAP_BIND_PASSWORD", None),
            "LDAP_USER_BASE": env.text("SLIPWAY_LDAP_USER_BASE", None),
            "LDAP_USER_FILTER": env.text("SLIPWAY_LDAP_USER_FILTER", LDAP_USER_FILTER_DEFAULT),
            "LDAP_USERNAME_ATTRIBUTE": env.text("SLIPWAY_LDAP_USERNAME_ATTRIBUTE", "uid"),
            "LDAP_EMAIL_ATTRIBUTE": env.text("SLIPWAY_LDAP_EMAIL_ATTRIBUTE", "mail"),
            "LDAP_GROUP_BASE": env.text("SLIPWAY_LDAP_GROUP_BASE", None),
            "LDAP_GROUP_FILTER": env.text("SLIPWAY_LDAP_GROUP_FILTER", LDAP_GROUP_FILTER_DEFAULT),
            "LDAP_GROUP_ROLES": env.text("SLIPWAY_LDAP_GROUP_ROLES", ""),
            "LDAP_AUTO_APPROVE_GROUPS": env.text("SLIPWAY_LDAP_AUTO_APPROVE_GROUPS", ""),
            "LDAP_CONNECT_TIMEOUT": env.number("SLIPWAY_LDAP_CONNECT_TIMEOUT", 3.0),
            "LDAP_TIMEOUT": env.number("SLIPWAY_LDAP_TIMEOUT", 5.0),
            "EMAIL_STRICT_DOMAINS": env.boolean("SLIPWAY_EMAIL_STRICT_DOMAINS", False),
            "RATELIMIT_LOGIN": env.text("SLIPWAY_RATELIMIT_LOGIN", "10 per minute;100 per hour"),
            "RATELIMIT_REGISTER": env.text("SLIPWAY_RATELIMIT_REGISTER", "5 per minute;20 per hour"),
            "RATELIMIT_MFA": env.text("SLIPWAY_RATELIMIT_MFA", "10 per minute"),
            "RATELIMIT_PASSWORD": env.text("SLIPWAY_RATELIMIT_PASSWORD", "5 per minute"),
            "RATELIMIT_API": env.text("SLIPWAY_RATELIMIT_API", "120 per minute"),
            "RATELIMIT_API_KEYS": env.text("SLIPWAY_RATELIMIT_API_KEYS", "5 per minute;20 per hour"),
            "API_KEYS_MAX": env.integer("SLIPWAY_API_KEYS_MAX", 10),
            "LOGS_INGEST_MAX_BYTES": env.integer("SLIPWAY_LOGS_INGEST_MAX_BYTES", 5 * 1024 * 1024),
            "LOGS_INGEST_MAX_LINES": env.integer("SLIPWAY_LOGS_INGEST_MAX_LINES", 10_000),
            "LOGS_INGEST_FIELD_MAX_BYTES": env.integer("SLIPWAY_LOGS_INGEST_FIELD_MAX_BYTES", 4000),
            "LOGS_INGEST_MAX_AGE_DAYS": env.integer("SLIPWAY_LOGS_INGEST_MAX_AGE_DAYS", 30),
            "LOGS_INGEST_MAX_FUTURE_SECONDS": env.integer("SLIPWAY_LOGS_INGEST_MAX_FUTURE_SECONDS", 300),
            "RATELIMIT_ENABLED": env.boolean("SLIPWAY_RATELIMIT_ENABLED", True),
            "RATELIMIT_HEADERS_ENABLED": True,
            # Redis down must not take logins down: limits fall back to per-process memory
            # (lockouts and bans live in the database and keep working).
            "RATELIMIT_SWALLOW_ERRORS": True,
            "RATELIMIT_IN_MEMORY_FALLBACK_ENABLED": True,
            "RATELIMIT_KEY_PREFIX": env.text("SLIPWAY_RATELIMIT_KEY_PREFIX", "slipway"),
            # None means "$DATA_DIR/uploads", resolved on use so a DATA_DIR override carries over.
            "UPLOAD_DIR": env.text("SLIPWAY_UPLOAD_DIR", None),
            "UPLOAD_MAX_BYTES": env.integer("SLIPWAY_UPLOAD_MAX_BYTES", 8 * 1024**3),
            "DOCKERFILE_MAX_BYTES": env.integer("SLIPWAY_DOCKERFILE_MAX_BYTES", 64 * 1024),
            "BUILD_CONTEXT_MAX_BYTES": env.integer("SLIPWAY_BUILD_CONTEXT_MAX_BYTES", 50 * 1024**2),
            # Where Slipway may send requests besides public addresses (README, "Outbound requests").
            "AGENT_NETWORKS": env.networks("SLIPWAY_AGENT_NETWORKS", "127.0.0.0/8,::1/128"),
            "REGISTRY_NETWORKS": env.networks("SLIPWAY_REGISTRY_NETWORKS", "127.0.0.0/8,::1/128"),
            "WEBHOOK_NETWORKS": env.networks("SLIPWAY_WEBHOOK_NETWORKS", "127.0.0.0/8,::1/128"),
            # The logs area: retention per level, and the alert webhook for rules without their own.
            "LOG_RETENTION_DAYS": env.retention("SLIPWAY_LOG_RETENTION", LOG_RETENTION_DEFAULT),
            "ALERT_WEBHOOK_URL": env.text("SLIPWAY_ALERT_WEBHOOK_URL", None),
            "ALERT_WEBHOOK_SECRET": env.text("SLIPWAY_ALERT_WEBHOOK_SECRET", None),
            # Outgoing mail (README, "E-mail"): no host means no mail is sent.
            "SMTP_HOST": env.text("SLIPWAY_SMTP_HOST", None),
            "SMTP_PORT": env.integer("SLIPWAY_SMTP_PORT", 587),
            "SMTP_SECURITY": env.text("SLIPWAY_SMTP_SECURITY", "starttls"),
            "SMTP_USERNAME": env.text("SLIPWAY_SMTP_USERNAME", None),
            "SMTP_PASSWORD": env.text("SLIPWAY_SMTP_PASSWORD", None),
            "SMTP_TIMEOUT": env.number("SLIPWAY_SMTP_TIMEOUT", 10.0),
            "MAIL_FROM": env.text("SLIPWAY_MAIL_FROM", "slipway@localhost"),
            "RATELIMIT_RESET": env.text("SLIPWAY_RATELIMIT_RESET", "5 per minute;30 per hour"),
            "RATELIMIT_RESET_ADDRESS": env.text("SLIPWAY_RATELIMIT_RESET_ADDRESS", "3 per hour"),
            # Prometheus: /metrics answers a bearer token or an allowed address (README, "Metrics").
            "METRICS_TOKEN": env.text("SLIPWAY_METRICS_TOKEN", None),
            "METRICS_ALLOW": env.networks("SLIPWAY_METRICS_ALLOW", "none"),
            "WORKER_HEARTBEAT_STALE_SECONDS": env.integer("SLIPWAY_WORKER_HEARTBEAT_STALE_SECONDS", 60),
            "READY_CHECK_EDGE": env.boolean("SLIPWAY_READY_CHECK_EDGE", True),
            # Request analytics: rows buffered per process, written in batches, rolled up per minute.
            "ANALYTICS_ENABLED": env.boolean("SLIPWAY_ANALYTICS_ENABLED", cls.DEFAULT_ANALYTICS_ENABLED),
            "ANALYTICS_EXCLUDE": env.text("SLIPWAY_ANALYTICS_EXCLUDE", "/static/<path:filename>,/health"),
            "ANALYTICS_BUFFER_MAX": env.integer("SLIPWAY_ANALYTICS_BUFFER_MAX", 50_000),
            "ANALYTICS_BATCH_ROWS": env.integer("SLIPWAY_ANALYTICS_BATCH_ROWS", 1000),
            "ANALYTICS_FLUSH_SECONDS": env.number("SLIPWAY_ANALYTICS_FLUSH_SECONDS", 1.0),
            "ANALYTICS_RAW_DAYS": env.integer("SLIPWAY_ANALYTICS_RAW_DAYS", 7),
            "ANALYTICS_ROLLUP_DAYS": env.integer("SLIPWAY_ANALYTICS_ROLLUP_DAYS", 90),
            "ANALYTICS_ROLLUP_SECONDS": env.number("SLIPWAY_ANALYTICS_ROLLUP_SECONDS", 60.0),
            # The edge's JSON access log, tailed by the worker into the connection log; idle stop.
            "EDGE_ACCESS_LOG": env.text("SLIPWAY_EDGE_ACCESS_LOG", None),  # None: EDGE_DIR/logs/access.json
            "CONNECTION_TAIL_SECONDS": env.number("SLIPWAY_CONNECTION_TAIL_SECONDS", 1.0),
            # Each edge's access log keeps its own read position: one name per edge whose log is tailed.
            "CONNECTION_TAIL_NAME": env.text("SLIPWAY_CONNECTION_TAIL_NAME", "edge"),
            "CONNECTION_SESSION_GAP_MINUTES": env.integer("SLIPWAY_CONNECTION_SESSION_GAP_MINUTES", 30),
            "CONNECTION_KEEP_DAYS": env.integer("SLIPWAY_CONNECTION_KEEP_DAYS", 90),
            "IDLE_STOP_MINUTES": env.integer("SLIPWAY_IDLE_STOP_MINUTES", 0),
            "IDLE_STOP_IMAGE_MINUTES": _image_minutes(env, "SLIPWAY_IDLE_STOP_IMAGE_MINUTES"),
            "IDLE_CHECK_SECONDS": env.number("SLIPWAY_IDLE_CHECK_SECONDS", 60.0),
            "IDLE_KEEP_RUNNING_ALLOWED": env.boolean("SLIPWAY_IDLE_KEEP_RUNNING_ALLOWED", False),
            "USERS_PER_PAGE": 25,
            "BOOTSTRAP_SERVE_LOCAL": True,
            "WTF_CSRF_TIME_LIMIT": None,
            "SQLALCHEMY_TRACK_MODIFICATIONS": False,
        }
        return settings, env.problems

    @classmethod
    def default_database_url(cls, data_dir: Path) -> str | None:
        """The database used when DATABASE_URL is unset (none in production)."""
        return cls.DEFAULT_DATABASE_URL


class DevelopmentConfig(Config):
    """`make run`: an embedded SQLite database under the data directory."""

    ENV_NAME = "development"
    DEBUG = True
    DEFAULT_SECRET_KEY = DEFAULT_SECRET
    DEFAULT_SECRETS_KEY = DEFAULT_SECRETS_KEY
    DEFAULT_HTTPS = False

    @classmethod
    def default_database_url(cls, data_dir: Path) -> str | None:
        return f"sqlite:///{data_dir / 'slipway.db'}"


class TestingConfig(DevelopmentConfig):
    """The test suite: fast hashing; the database comes from the test fixtures."""

    ENV_NAME = "testing"
    DEBUG = False
    TESTING = True
    DEFAULT_BCRYPT_ROUNDS = 4
    # Tests and benches log admins in with a password alone; tests/test_mfa.py sets "admin,qvp".
    DEFAULT_MFA_REQUIRED_ROLES = ""
    # Off in the suite so no flusher thread outlives a test's app; tests/test_analytics*.py turn it on.
    DEFAULT_ANALYTICS_ENABLED = False


CONFIGS: dict[str, type[Config]] = {
    "production": Config,
    "development": DevelopmentConfig,
    "testing": TestingConfig,
}
