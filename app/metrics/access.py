"""Who may read `/metrics`: a bearer token or an allowed client address; nobody when neither is set."""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Iterable, Mapping

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, else None."""
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def address_allowed(address: str | None, networks: Iterable[Network]) -> bool:
    """True when `address` (the real client address) lies in one of `networks`."""
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip.version == network.version and ip in network for network in networks)


def may_scrape(config: Mapping[str, object], authorization: str | None, address: str | None) -> bool:
    """True for the configured token or an allowed address; False for everything else."""
    expected = config.get("METRICS_TOKEN")
    given = bearer_token(authorization)
    if isinstance(expected, str) and expected and given is not None:
        if hmac.compare_digest(given.encode(), expected.encode()):
            return True
    networks = config.get("METRICS_ALLOW") or ()
    return address_allowed(address, networks)  # type: ignore[arg-type]
