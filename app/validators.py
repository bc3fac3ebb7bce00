"""Shared input rules: usernames as DNS labels, reserved names, hosts, ports and IPs.

These serve forms, the API and the CLI alike, so a value that reaches an nginx
file, a shell or a Docker call has passed one whitelist. Every pattern is applied
with `fullmatch` (`$` would also match before a final newline) to ASCII text only:
`str.lower()` and `int()` accept look-alikes such as the Kelvin sign or fullwidth digits.
"""

from __future__ import annotations

import ipaddress
import re

USERNAME_RE = re.compile(r"[a-z][a-z0-9-]{1,30}[a-z0-9]")
RESERVED_USERNAMES = frozenset(
    {
        "admin",
        "administrator",
        "root",
        "www",
        "api",
        "ws",
        "mail",
        "ftp",
        "smtp",
        "localhost",
        "static",
        "auth",
        "login",
        "logout",
        "health",
        "system",
        "support",
        "nginx",
        "docker",
        "slipway",
        "agent",
        "registry",
        "default",
        "null",
        "none",
        "user",
        "users",
        "jupyter",
        "vscode",
        "code",
        "workspace",
        "workspaces",
    }
)
PASSWORD_MIN_CHARS = 12
PASSWORD_MAX_BYTES = 72


def username_problem(username: str) -> str | None:
    """Why `username` is not allowed, or None when it is a usable DNS label."""
    if not USERNAME_RE.fullmatch(username):
        return (
            "Usernames are 3-32 characters: lowercase letters, digits and hyphens, "
            "starting with a letter and not ending with a hyphen."
        )
    if "--" in username:
        return "Usernames may not contain two hyphens in a row."
    if username in RESERVED_USERNAMES:
        return f"The name {username!r} is reserved."
    return None


def password_problem(password: str) -> str | None:
    """Why `password` is not acceptable, or None. bcrypt only reads 72 bytes, so we refuse more."""
    if len(password) < PASSWORD_MIN_CHARS:
        return f"Passwords must be at least {PASSWORD_MIN_CHARS} characters long."
    if len(password.encode("utf-8")) > PASSWORD_MAX_BYTES:
        return (
            f"Passwords may be at most {PASSWORD_MAX_BYTES} bytes (UTF-8); "
            "accented letters and symbols count as 2-4 bytes each."
        )
    return None


def is_port(value: object) -> bool:
    """True for an int in 1-65535."""
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 65535


def is_ip(value: str) -> bool:
    """True for an IPv4 or IPv6 address literal (ASCII, without an IPv6 zone such as `%eth0`)."""
    if not value.isascii() or "%" in value:
        return False
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


_LABEL = r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?"
HOSTNAME_RE = re.compile(rf"(?=.{{1,253}}\Z){_LABEL}(\.{_LABEL})*")


def host_problem(host: str) -> str | None:
    """Why `host` is not a usable host name or IP literal, or None."""
    bare = host[1:-1] if host.startswith("[") and host.endswith("]") and ":" in host else host
    if host.isascii() and (is_ip(bare) or HOSTNAME_RE.fullmatch(host.lower())):
        return None
    return f"{host!r} is not a valid host name or IP address."


def agent_url_problem(url: str) -> str | None:
    """Why `url` is not an acceptable agent URL (http(s)://host[:port], no credentials), or None."""
    from urllib.parse import urlsplit

    if not url or len(url) > 255 or any(ch.isspace() or ord(ch) < 32 for ch in url):
        return "The agent URL is empty, too long or contains spaces."
    if not url.isascii():
        return "The agent URL must be plain ASCII (write an international name in its xn-- form)."
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "The agent URL is malformed (check the port)."
    if parts.scheme not in ("http", "https"):
        return "The agent URL must start with http:// or https://."
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        return "The agent URL must not contain a user name or password; the token goes in its own field."
    if not parts.hostname:
        return "The agent URL has no host."
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        return "The agent URL must be only scheme, host and port, e.g. http://10.0.0.5:9100."
    if port is not None and not is_port(port):
        return "The agent URL's port must be 1-65535."
    return host_problem(parts.hostname)


def is_username_shape(value: object) -> bool:
    """True for a string shaped like a username (a DNS label, no `--`), reserved or not: stored names."""
    return isinstance(value, str) and USERNAME_RE.fullmatch(value) is not None and "--" not in value


def is_dns_name(value: object) -> bool:
    """True for a lowercase ASCII DNS name (labels of letters, digits and inner hyphens)."""
    return isinstance(value, str) and HOSTNAME_RE.fullmatch(value) is not None


def is_plain_ip(value: object) -> bool:
    """True for an IPv4 or IPv6 literal without an IPv6 zone (`fe80::1%eth0`), safe to write into config."""
    if not isinstance(value, str) or "%" in value:
        return False
    return is_ip(value)
