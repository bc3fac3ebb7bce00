"""Real client IP: `X-Forwarded-*` are honoured only when the direct peer is a configured proxy."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Any

from werkzeug.middleware.proxy_fix import ProxyFix

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(raw: str) -> list[Network]:
    """Parse a comma list of addresses or CIDR networks (validated by app.settings_checks.validate)."""
    return [ipaddress.ip_network(part.strip(), strict=False) for part in raw.split(",") if part.strip()]


class TrustedProxyFix:
    """WSGI middleware: apply ProxyFix (with the configured hop count) only for trusted peers.

    A client talking to the app directly cannot forge its address: its `X-Forwarded-For`
    is ignored because its own address is not in the trusted list.
    """

    def __init__(self, wsgi_app: Any, hops: int, trusted: Iterable[Network]) -> None:
        self.direct = wsgi_app
        self.fixed = ProxyFix(wsgi_app, x_for=hops, x_proto=hops, x_host=hops)
        self.trusted = list(trusted)

    def _is_trusted(self, peer: str | None) -> bool:
        try:
            address = ipaddress.ip_address(peer or "")
        except ValueError:
            return False
        return any(address in network for network in self.trusted)

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if self._is_trusted(environ.get("REMOTE_ADDR")):
            return self.fixed(environ, start_response)
        for header in ("HTTP_X_FORWARDED_FOR", "HTTP_X_FORWARDED_PROTO", "HTTP_X_FORWARDED_HOST"):
            environ.pop(header, None)
        return self.direct(environ, start_response)
