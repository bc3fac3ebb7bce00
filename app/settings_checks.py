"""Start-up checks of the parsed settings: every problem collected, so one message lists them all.

`config.py` reads the environment into a settings dict; `validate()` here says what is wrong
with the result (ports, secrets, folders, the security, mail, directory and metrics settings).
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from config import DEFAULT_SECRET, DEFAULT_SECRETS_KEY


def _check_port(problems: list[str], name: str, value: object) -> None:
    if not isinstance(value, int) or not 1 <= value <= 65535:
        problems.append(f"{name} must be a port number 1-65535, got {value!r}")


def _check_secrets_key(problems: list[str], settings: Mapping[str, Any]) -> None:
    from app.security.crypto import parse_key

    raw = settings.get("SECRETS_KEY")
    if not raw:
        problems.append("SLIPWAY_SECRETS_KEY is not set (32 random bytes, urlsafe-base64)")
        return
    try:
        parse_key(raw)
    except ValueError:
        problems.append("SLIPWAY_SECRETS_KEY must be 32 bytes in urlsafe-base64")
        return
    if settings.get("ENV_NAME") == "production" and raw == DEFAULT_SECRETS_KEY:
        problems.append("SLIPWAY_SECRETS_KEY must not be the development key in production")


def _check_writable_dir(problems: list[str], name: str, path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        problems.append(f"{name} ({path}) cannot be created: {exc.strerror}")
        return
    if not os.access(path, os.W_OK | os.X_OK):
        problems.append(f"{name} ({path}) is not writable")


def _check_poller(problems: list[str], settings: Mapping[str, Any]) -> None:
    for name in ("AGENT_CONNECT_TIMEOUT", "AGENT_READ_TIMEOUT", "POLL_INTERVAL_SECONDS", "POLL_POOL_SIZE",
                 "POLL_FAILURES_OFFLINE", "POLL_SUCCESSES_ONLINE", "POLL_LEASE_SECONDS",
                 "SERVER_STATS_TTL_SECONDS", "METRICS_RAW_HOURS", "METRICS_KEEP_DAYS",
                 "METRICS_SAMPLE_SECONDS"):
        if settings.get(name, 1) <= 0:
            problems.append(f"SLIPWAY_{name} must be positive")
    if not 0 <= settings.get("AGENT_RETRIES", 0) <= 10:
        problems.append("SLIPWAY_AGENT_RETRIES must be between 0 and 10")
    # the holder renews at the start of each round: a round (<= read timeout + 1 s) plus the
    # jittered interval must fit in the lease, or a healthy poller would lose it
    longest_gap = settings.get("POLL_INTERVAL_SECONDS", 10) * 1.1 + settings.get("AGENT_READ_TIMEOUT", 10) + 1
    if settings.get("POLL_LEASE_SECONDS", 30) <= longest_gap:
        problems.append("SLIPWAY_POLL_LEASE_SECONDS must be longer than 1.1 x SLIPWAY_POLL_INTERVAL_SECONDS"
                        " + SLIPWAY_AGENT_READ_TIMEOUT + 1")


def _check_security(problems: list[str], settings: Mapping[str, Any]) -> None:
    from limits import parse_many

    from app.models.user import ROLES

    for raw in (settings.get("TRUSTED_PROXIES") or "").split(","):
        try:
            ipaddress.ip_network(raw.strip(), strict=False)
        except ValueError:
            problems.append(f"SLIPWAY_TRUSTED_PROXIES must list IP addresses or networks, got {raw!r}")
    roles = [r.strip() for r in (settings.get("MFA_REQUIRED_ROLES") or "").split(",") if r.strip()]
    unknown = sorted(set(roles) - set(ROLES))
    if unknown:
        problems.append(f"SLIPWAY_MFA_REQUIRED_ROLES names unknown roles: {', '.join(unknown)}")
    for name in (
        "LOGIN_LOCK_THRESHOLD",
        "LOGIN_ACCOUNT_LOCK_THRESHOLD",
        "LOGIN_LOCK_SECONDS",
        "LOGIN_LOCK_MAX_SECONDS",
        "IP_BAN_FAILURES",
        "IP_BAN_ACCOUNTS",
        "IP_BAN_WINDOW_SECONDS",
        "IP_BAN_SECONDS",
        "PASSWORD_HISTORY",
        "API_KEYS_MAX",
        "LOGS_INGEST_MAX_BYTES",
        "LOGS_INGEST_MAX_LINES",
        "LOGS_INGEST_FIELD_MAX_BYTES",
        "LOGS_INGEST_MAX_AGE_DAYS",
        "LOGS_INGEST_MAX_FUTURE_SECONDS",
    ):
        if settings.get(name, 0) <= 0:
            problems.append(f"SLIPWAY_{name} must be positive")
    if settings.get("LOGS_INGEST_FIELD_MAX_BYTES", 0) > 4000:
        problems.append("SLIPWAY_LOGS_INGEST_FIELD_MAX_BYTES must be at most 4000 (a message's stored size)")
    for name in ("LOGIN", "REGISTER", "MFA", "PASSWORD", "API", "API_KEYS", "RESET", "RESET_ADDRESS"):
        try:
            parse_many(settings.get(f"RATELIMIT_{name}") or "")
        except ValueError:
            problems.append(f"SLIPWAY_RATELIMIT_{name} must be a rate limit such as '10 per minute'")


def _check_outbound(problems: list[str], settings: Mapping[str, Any]) -> None:
    for name in ("AGENT_NETWORKS", "REGISTRY_NETWORKS", "WEBHOOK_NETWORKS"):
        networks = settings.get(name, ())
        if not isinstance(networks, tuple) or not all(
            isinstance(item, ipaddress.IPv4Network | ipaddress.IPv6Network) for item in networks
        ):
            problems.append(f"SLIPWAY_{name} must be a tuple of networks")
            continue
        for network in networks:
            if network.is_link_local or network.is_multicast or network.is_unspecified:
                problems.append(f"SLIPWAY_{name} lists {network}, but link-local, multicast and "
                                "unspecified addresses are never contacted")
    url = settings.get("ALERT_WEBHOOK_URL")
    if url and (urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).hostname):
        problems.append("SLIPWAY_ALERT_WEBHOOK_URL must be an http:// or https:// URL")
    if url and len(settings.get("ALERT_WEBHOOK_SECRET") or "") < 16:
        problems.append("SLIPWAY_ALERT_WEBHOOK_SECRET must be set (16+ characters) "
                        "when SLIPWAY_ALERT_WEBHOOK_URL is")


SMTP_SECURITY_MODES = ("none", "starttls", "tls")


def _check_mail(problems: list[str], settings: Mapping[str, Any]) -> None:
    from email.headerregistry import Address

    if settings.get("SMTP_SECURITY") not in SMTP_SECURITY_MODES:
        problems.append(f"SLIPWAY_SMTP_SECURITY must be one of {', '.join(SMTP_SECURITY_MODES)}, "
                        f"got {settings.get('SMTP_SECURITY')!r}")
    _check_port(problems, "SLIPWAY_SMTP_PORT", settings.get("SMTP_PORT"))
    if not 0 < settings.get("SMTP_TIMEOUT", 10.0) <= 300:
        problems.append("SLIPWAY_SMTP_TIMEOUT must be a number of seconds from 0 to 300")
    if bool(settings.get("SMTP_USERNAME")) != bool(settings.get("SMTP_PASSWORD")):
        problems.append("SLIPWAY_SMTP_USERNAME and SLIPWAY_SMTP_PASSWORD must be set together")
    sender = settings.get("MAIL_FROM") or ""
    try:
        if any(ch in sender for ch in "\r\n") or "@" not in sender:
            raise ValueError(sender)
        Address(addr_spec=sender)
    except (ValueError, IndexError):
        problems.append(f"SLIPWAY_MAIL_FROM must be one e-mail address such as slipway@example.org, "
                        f"got {sender!r}")
    public = urlsplit(settings.get("PUBLIC_URL") or "")
    if public.scheme not in ("http", "https") or not public.hostname:
        problems.append("SLIPWAY_PUBLIC_URL must be an http:// or https:// URL (links in e-mail use it)")


def _check_metrics(problems: list[str], settings: Mapping[str, Any]) -> None:
    token = settings.get("METRICS_TOKEN")
    if token is not None and (not isinstance(token, str) or len(token) < 16
                              or any(c.isspace() for c in token)):
        problems.append("SLIPWAY_METRICS_TOKEN must be 16+ characters without spaces")
    allow = settings.get("METRICS_ALLOW", ())
    if not isinstance(allow, tuple) or not all(
        isinstance(item, ipaddress.IPv4Network | ipaddress.IPv6Network) for item in allow
    ):
        problems.append("SLIPWAY_METRICS_ALLOW must be a tuple of networks")
    if settings.get("WORKER_HEARTBEAT_STALE_SECONDS", 60) <= 0:
        problems.append("SLIPWAY_WORKER_HEARTBEAT_STALE_SECONDS must be positive")


def _check_directory(problems: list[str], settings: Mapping[str, Any]) -> None:
    url = settings.get("LDAP_URL")
    if not url:
        return
    from app.directory.mapping import parse_dn_list, parse_group_roles

    parts = urlsplit(url)
    if parts.scheme not in ("ldap", "ldaps") or not parts.hostname:
        problems.append("SLIPWAY_LDAP_URL must be an ldap:// or ldaps:// URL with a host")
    if settings.get("LDAP_START_TLS") and parts.scheme == "ldaps":
        problems.append("SLIPWAY_LDAP_START_TLS is for ldap:// URLs; ldaps:// is already encrypted")
    ca_file = settings.get("LDAP_CA_FILE")
    if ca_file and not Path(ca_file).is_file():
        problems.append(f"SLIPWAY_LDAP_CA_FILE ({ca_file}) is not a readable file")
    if bool(settings.get("LDAP_BIND_DN")) != bool(settings.get("LDAP_BIND_PASSWORD")):
        problems.append("SLIPWAY_LDAP_BIND_DN and SLIPWAY_LDAP_BIND_PASSWORD are set together (or neither, "
                        "for an anonymous search)")
    if not settings.get("LDAP_USER_BASE"):
        problems.append("SLIPWAY_LDAP_USER_BASE must be set when SLIPWAY_LDAP_URL is")
    for name, placeholder in (("LDAP_USER_FILTER", "{login}"), ("LDAP_GROUP_FILTER", "{dn}")):
        template = settings.get(name) or ""
        if placeholder not in template or not (template.startswith("(") and template.endswith(")")):
            problems.append(f"SLIPWAY_{name} must be an LDAP filter in parentheses containing {placeholder}")
    for name in ("LDAP_USERNAME_ATTRIBUTE", "LDAP_EMAIL_ATTRIBUTE"):
        value = settings.get(name) or ""
        if not (value.isascii() and value.replace("-", "").isalnum() and value[:1].isalpha()):
            problems.append(f"SLIPWAY_{name} must be an attribute name such as uid or mail, got {value!r}")
    problems.extend(f"SLIPWAY_LDAP_GROUP_ROLES: {p}"
                    for p in parse_group_roles(settings.get("LDAP_GROUP_ROLES"))[1])
    problems.extend(f"SLIPWAY_LDAP_AUTO_APPROVE_GROUPS: {p}"
                    for p in parse_dn_list(settings.get("LDAP_AUTO_APPROVE_GROUPS"))[1])
    for name in ("LDAP_CONNECT_TIMEOUT", "LDAP_TIMEOUT"):
        if not 0 < settings.get(name, 1) <= 60:
            problems.append(f"SLIPWAY_{name} must be more than 0 and at most 60 seconds")


def _check_connections(problems: list[str], settings: Mapping[str, Any]) -> None:
    for name in ("CONNECTION_TAIL_SECONDS", "CONNECTION_SESSION_GAP_MINUTES", "CONNECTION_KEEP_DAYS",
                 "IDLE_CHECK_SECONDS"):
        if settings.get(name, 1) <= 0:
            problems.append(f"SLIPWAY_{name} must be positive")
    if settings.get("IDLE_STOP_MINUTES", 0) < 0:
        problems.append("SLIPWAY_IDLE_STOP_MINUTES must be 0 (off) or a number of minutes")
    if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", str(settings.get("CONNECTION_TAIL_NAME", "edge"))):
        problems.append("SLIPWAY_CONNECTION_TAIL_NAME must be 1-64 letters, digits, '.', '_' or '-'")


def validate(settings: Mapping[str, Any]) -> list[str]:
    """Return every problem with a parsed settings dict (empty when all is well)."""
    problems: list[str] = []
    url = settings.get("SQLALCHEMY_DATABASE_URI")
    if not url:
        problems.append("DATABASE_URL is not set")
    elif urlsplit(url).scheme not in ("sqlite", "mysql+pymysql", "mariadb+pymysql"):
        problems.append("DATABASE_URL must be sqlite:/// or mysql+pymysql://")
    secret = settings.get("SECRET_KEY")
    if not secret:
        problems.append("SECRET_KEY is not set")
    elif settings.get("ENV_NAME") == "production" and (secret == DEFAULT_SECRET or len(secret) < 32):
        problems.append("SECRET_KEY must be a random value of 32+ characters in production")
    _check_secrets_key(problems, settings)
    _check_port(problems, "SLIPWAY_LISTEN_PORT", settings.get("LISTEN_PORT"))
    _check_port(problems, "SLIPWAY_EDGE_PORT", settings.get("EDGE_PORT"))
    _check_port(problems, "SLIPWAY_EDGE_ADMIN_PORT", settings.get("EDGE_ADMIN_PORT"))
    if settings.get("EDGE_ADMIN_PORT") == settings.get("EDGE_PORT"):
        problems.append("SLIPWAY_EDGE_ADMIN_PORT must differ from SLIPWAY_EDGE_PORT (never public)")
    for url in str(settings.get("EDGE_ADMIN_URLS") or "").split(","):
        if url.strip() and not url.strip().startswith("http://"):
            problems.append(f"SLIPWAY_EDGE_ADMIN_URLS entries must be http:// URLs, got {url.strip()!r}")
    try:
        ipaddress.ip_address(settings.get("LISTEN_HOST") or "")
    except ValueError:
        problems.append(f"SLIPWAY_LISTEN_HOST must be an IP address, got {settings.get('LISTEN_HOST')!r}")
    if not 4 <= settings.get("BCRYPT_ROUNDS", 0) <= 16:
        problems.append("SLIPWAY_BCRYPT_ROUNDS must be between 4 and 16")
    if settings.get("TRUSTED_PROXY_COUNT", 0) < 0:
        problems.append("SLIPWAY_TRUSTED_PROXY_COUNT must not be negative")
    _check_security(problems, settings)
    for name in (
        "SESSION_LIFETIME_HOURS",
        "SESSION_IDLE_MINUTES",
        "WORKER_CONCURRENCY",
        "TASK_LEASE_SECONDS",
        "TASK_POLL_MS",
        "TASK_KEEP_DAYS",
        "UPLOAD_MAX_BYTES",
        "DOCKERFILE_MAX_BYTES",
        "BUILD_CONTEXT_MAX_BYTES",
    ):
        if settings.get(name, 0) <= 0:
            problems.append(f"SLIPWAY_{name} must be positive")
    _check_poller(problems, settings)
    if settings.get("SWARM_PUBLISH_MODE") not in ("host", "ingress"):
        problems.append("SLIPWAY_SWARM_PUBLISH_MODE must be host or ingress")
    _check_outbound(problems, settings)
    _check_metrics(problems, settings)
    _check_directory(problems, settings)
    _check_mail(problems, settings)
    _check_connections(problems, settings)
    for name in ("DATABASE_CONNECT_TIMEOUT", "HEALTH_TIMEOUT_SECONDS", "DATABASE_POOL_SIZE"):
        if settings.get(name, 1) <= 0:
            problems.append(f"SLIPWAY_{name} must be positive")
    for name in ("ANALYTICS_BUFFER_MAX", "ANALYTICS_BATCH_ROWS", "ANALYTICS_FLUSH_SECONDS",
                 "ANALYTICS_RAW_DAYS", "ANALYTICS_ROLLUP_DAYS", "ANALYTICS_ROLLUP_SECONDS"):
        if settings.get(name, 1) <= 0:
            problems.append(f"SLIPWAY_{name} must be positive")
    _check_writable_dir(problems, "SLIPWAY_DATA_DIR", Path(settings["DATA_DIR"]))
    _check_writable_dir(problems, "SLIPWAY_WORKSPACE_ROOT", Path(settings["WORKSPACE_ROOT"]))
    upload_dir = settings.get("UPLOAD_DIR") or Path(settings["DATA_DIR"]) / "uploads"
    _check_writable_dir(problems, "SLIPWAY_UPLOAD_DIR", Path(upload_dir))
    return problems
