"""Which addresses Slipway itself may contact: agents and registries.

An admin types an agent URL or a registry host once; the poller and the registry check then
send requests there on their own, signed or with credentials. So a destination is checked
when it is saved and again each time a request leaves:

- IP literals must be written canonically (`127.0.0.1`, `::1`): the C resolver also reads
  `2130706433`, `0x7f000001`, `0177.0.0.1`, `127.1` and `::ffff:127.0.0.1` as addresses, and a
  check that only knew dotted quads would let them through.
- Names are resolved and *every* address they resolve to is checked, at save time and again
  at connect time, so a name that later points elsewhere (DNS rebinding) is refused too.
- Link-local (which holds the cloud metadata service 169.254.169.254), multicast,
  unspecified, reserved and known metadata addresses are refused always.
- Loopback and private ranges are refused unless listed in `SLIPWAY_AGENT_NETWORKS` /
  `SLIPWAY_REGISTRY_NETWORKS`; public addresses are allowed.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Sequence
from urllib.parse import urlsplit

from flask import current_app, has_app_context

from app.validators import agent_url_problem as agent_url_syntax_problem

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

SETTINGS = {"agent": "AGENT_NETWORKS", "registry": "REGISTRY_NETWORKS", "webhook": "WEBHOOK_NETWORKS"}
# Cloud metadata services outside link-local (AWS IPv6, Alibaba), refused even if a range allows them.
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(text) for text in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200")
)
THIS_NETWORK = ipaddress.ip_network("0.0.0.0/8")  # connecting to 0.x reaches this host on Linux
NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NUMERIC_PART = re.compile(r"0[xX][0-9a-fA-F]*|[0-9]+")


def _inet_aton(text: str) -> ipaddress.IPv4Address | None:
    """The IPv4 address the C resolver's inet_aton reads in `text`, or None when it is a name."""
    parts = text.split(".")
    if not 1 <= len(parts) <= 4 or not all(_NUMERIC_PART.fullmatch(part) for part in parts):
        return None
    values = []
    for part in parts:
        try:
            if part[:2] in ("0x", "0X"):
                values.append(int(part[2:] or "0", 16))
            elif len(part) > 1 and part.startswith("0"):
                values.append(int(part, 8))
            else:
                values.append(int(part))
        except ValueError:  # e.g. "08": not octal, so the resolver treats it as a name
            return None
    *leading, last = values
    if any(value > 255 for value in leading) or last >= 256 ** (4 - len(leading)):
        return None
    number = last
    for index, value in enumerate(leading):
        number += value << (24 - 8 * index)
    return ipaddress.IPv4Address(number)


def parse_address(host: str) -> Address | None:
    """The IP address `host` denotes in any spelling the resolver accepts, or None for a name.

    Raises ValueError for a bracketed or colon-holding text that is not an IPv6 address.
    """
    text = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if ":" in text:
        address = ipaddress.IPv6Address(text)
        return address.ipv4_mapped or address
    return _inet_aton(text)


def spelling_problem(host: str) -> str | None:
    """Why `host` is an IP address in a non-canonical spelling, or None."""
    try:
        address = parse_address(host)
    except ValueError:
        return f"{host!r} is not a valid IPv6 address."
    if address is None:
        return None
    canonical = str(address)
    if host.strip("[]").lower() != canonical:
        return f"{host!r} is an unusual spelling of the IP address {canonical}; write it as {canonical}."
    return None


def _embedded(address: Address) -> list[Address]:
    """The address itself and any IPv4 address tunnelled inside it (6to4, NAT64)."""
    views: list[Address] = [address]
    if isinstance(address, ipaddress.IPv6Address):
        if address.sixtofour is not None:
            views.append(address.sixtofour)
        if address in NAT64:
            views.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    return views


def _always_refused(address: Address) -> str | None:
    """What kind of never-allowed address `address` is, or None."""
    if address in METADATA_ADDRESSES:
        return "a cloud metadata address"
    if address.is_unspecified or address in THIS_NETWORK:
        return "an unspecified address"
    if address.is_link_local:
        return "a link-local address (cloud metadata lives there)"
    if address.is_multicast:
        return "a multicast address"
    if isinstance(address, ipaddress.IPv6Address) and address.is_site_local:
        return "a site-local address"
    if address.is_reserved and not address.is_loopback:
        return "a reserved address"
    return None


def address_problem(address: Address, kind: str, networks: Sequence[Network], label: str = "") -> str | None:
    """Why Slipway must not contact `address` for `kind` ("agent"/"registry"), or None."""
    setting = f"SLIPWAY_{SETTINGS[kind]}"
    label = label or str(address)
    for view in _embedded(address):
        reason = _always_refused(view)
        if reason:
            return f"{label} is {reason}; Slipway never sends requests there."
    if all(view.is_global for view in _embedded(address)):
        return None
    if any(address in network for network in networks if network.version == address.version):
        return None
    category = "a loopback" if address.is_loopback else "a private or special-purpose"
    return (f"{label} is {category} address, which the {kind} address policy does not allow; "
            f"list its network in {setting} to allow it.")


def allowed_networks(kind: str) -> Sequence[Network]:
    """The configured networks for `kind`, or the defaults outside an app."""
    key = SETTINGS[kind]
    if has_app_context() and current_app.config.get(key) is not None:
        return current_app.config[key]
    from config import Config

    return Config.load()[0][key]


def resolve(host: str, port: int | None) -> list[Address]:
    """Every address `host` resolves to; raises OSError when it does not resolve."""
    literal = parse_address(host)
    if literal is not None:
        return [literal]
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses: list[Address] = []
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
            address = address.ipv4_mapped
        if address not in addresses:
            addresses.append(address)
    return addresses


def destination_problem(host: str, port: int | None, kind: str) -> str | None:
    """Why Slipway must not send requests to `host`:`port` for `kind`, or None.

    Every address the host resolves to must pass; a name that does not resolve is refused.
    """
    if problem := spelling_problem(host):
        return problem
    try:
        addresses = resolve(host.strip("[]"), port)
    except (OSError, UnicodeError, ValueError):
        return f"{host!r} does not resolve to an address."
    if not addresses:
        return f"{host!r} does not resolve to an address."
    networks = allowed_networks(kind)
    for address in addresses:
        label = "" if parse_address(host) is not None else f"{host!r} (which resolves to {address})"
        if problem := address_problem(address, kind, networks, label):
            return problem
    return None


def url_problem(url: str, kind: str = "agent") -> str | None:
    """Why Slipway must not send requests to the host of `url` (checked at connect time), or None."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        return "The URL's port is malformed."
    if not parts.hostname:
        return "The URL has no host."
    return destination_problem(parts.hostname, port or (443 if parts.scheme == "https" else 80), kind)


def agent_url_problem(url: str) -> str | None:
    """Why `url` cannot be saved as an agent URL: its syntax, then the address policy; or None."""
    return agent_url_syntax_problem(url) or url_problem(url, "agent")


def split_host_port(value: str) -> tuple[str, int | None]:
    """`host[:port]` (IPv6 in brackets) into its host and port; raises ValueError when malformed."""
    if value.startswith("["):
        host, _, rest = value.partition("]")
        host += "]"
        port_text = rest[1:] if rest.startswith(":") else ("" if not rest else None)
    elif value.count(":") == 1:
        host, _, port_text = value.partition(":")
    else:
        host, port_text = value, ""
    if port_text is None or (port_text and not (port_text.isascii() and port_text.isdigit())):
        raise ValueError(value)
    port = int(port_text) if port_text else None
    if port is not None and not 1 <= port <= 65535:
        raise ValueError(value)
    return host, port


def registry_host_problem(value: str) -> str | None:
    """Why Slipway must not contact the registry `host[:port]`, or None."""
    try:
        host, port = split_host_port(value)
    except ValueError:
        return f"{value!r} is not host[:port]."
    return destination_problem(host, port or 443, "registry")


def registry_host_check(value: str) -> None:
    """WTForms-style check of a registry `host[:port]`: raises ValidationError with the reason."""
    from wtforms import ValidationError

    if problem := registry_host_problem(value):
        raise ValidationError(problem)
