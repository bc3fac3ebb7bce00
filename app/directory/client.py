"""The one road to the directory: find a user with the service account, then bind as them.

Values typed by a person reach a filter only through `escape_filter_chars`, so a login name
such as `*)(uid=*` is searched for literally and can neither widen the search nor match
another entry. Every call is bounded by the connect and receive timeouts from config.
"""

from __future__ import annotations

import logging
import math
import ssl
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from flask import current_app

from app.directory.mapping import normalize_dn

if TYPE_CHECKING:
    from ldap3 import Connection, Server

# ldap3 (with pyasn1, about 5 MB) is imported inside the functions that talk to the directory:
# processes of an install without directory login (and the task worker) never load it.

log = logging.getLogger(__name__)


class DirectoryUnavailable(RuntimeError):
    """The directory could not be asked: down, too slow, TLS failed, or the service bind was refused."""


@dataclass(frozen=True)
class DirectoryEntry:
    """A directory user whose password was just verified by binding as them."""

    dn: str
    username: str  # the username attribute's value, exactly as the directory holds it
    email: str | None
    groups: tuple[str, ...]  # normalised DNs of the groups the user belongs to


def enabled() -> bool:
    """True when directory login is configured."""
    return bool(current_app.config.get("LDAP_URL"))


def fill(template: str, placeholder: str, value: str) -> str:
    """`template` with `placeholder` replaced by `value` escaped for an LDAP filter (RFC 4515)."""
    from ldap3.utils.conv import escape_filter_chars

    return template.replace(placeholder, escape_filter_chars(value))


def _server() -> Server:
    from ldap3 import NONE, Server, Tls

    cfg = current_app.config
    tls = Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=cfg.get("LDAP_CA_FILE") or None)
    return Server(cfg["LDAP_URL"], get_info=NONE, tls=tls, connect_timeout=cfg["LDAP_CONNECT_TIMEOUT"])


def _bind(server: Server, user: str | None, password: str | None) -> Connection | None:
    """An open, bound connection, or None when the directory refused these credentials."""
    from ldap3 import Connection
    from ldap3.core.exceptions import LDAPException

    cfg = current_app.config
    conn = Connection(server, user=user, password=password, read_only=True,
                      receive_timeout=_seconds(cfg["LDAP_TIMEOUT"]), raise_exceptions=False)
    try:
        conn.open()
        if cfg.get("LDAP_START_TLS"):
            conn.start_tls()
        if conn.bind():
            return conn
    except LDAPException as exc:
        _close(conn)
        raise DirectoryUnavailable(f"{type(exc).__name__}: {exc}") from exc
    _close(conn)
    return None


def _close(conn: Connection) -> None:
    """Unbind, ignoring a socket that a failed StartTLS or a dropped connection already broke."""
    from ldap3.core.exceptions import LDAPException

    try:
        conn.unbind()
    except LDAPException:
        log.debug("closing a broken directory connection", exc_info=True)


def _seconds(value: float) -> int:
    """ldap3 packs socket timeouts and time limits as whole seconds."""
    return max(1, math.ceil(value))


def _first(attributes: dict[str, Any], name: str) -> str | None:
    value = attributes.get(name)
    if isinstance(value, list):
        value = value[0] if value else None
    return str(value) if value not in (None, "") else None


def _groups(conn: Connection, dn: str, attributes: dict[str, Any]) -> tuple[str, ...]:
    """The user's groups: a search under the group base when one is set, else the entry's memberOf."""
    from ldap3 import SUBTREE

    cfg = current_app.config
    if cfg.get("LDAP_GROUP_BASE"):
        conn.search(cfg["LDAP_GROUP_BASE"], fill(cfg["LDAP_GROUP_FILTER"], "{dn}", dn), SUBTREE,
                    attributes=[], time_limit=_seconds(cfg["LDAP_TIMEOUT"]))
        found = [item["dn"] for item in conn.response or () if item.get("type") == "searchResEntry"]
    else:
        raw = attributes.get("memberOf") or []
        found = raw if isinstance(raw, list) else [raw]
    groups = []
    for group in found:
        try:
            groups.append(normalize_dn(str(group)))
        except ValueError:
            log.warning("ignoring a group that is not a DN: %r", group)
    return tuple(groups)


def authenticate(login: str, password: str) -> DirectoryEntry | None:
    """The directory entry whose username is `login` when `password` binds as it; None otherwise.

    None covers no such entry, more than one (an ambiguous filter), and a wrong password.
    Raises DirectoryUnavailable when the directory cannot be reached or the service bind fails.
    """
    if not login or not password:  # an empty password would be an anonymous bind that "succeeds"
        return None
    from ldap3 import SUBTREE
    from ldap3.core.exceptions import LDAPException

    cfg = current_app.config
    server = _server()
    service = _bind(server, cfg.get("LDAP_BIND_DN"), cfg.get("LDAP_BIND_PASSWORD"))
    if service is None:
        raise DirectoryUnavailable("the directory refused the service account's bind (SLIPWAY_LDAP_BIND_DN)")
    try:
        name_attr, mail_attr = cfg["LDAP_USERNAME_ATTRIBUTE"], cfg["LDAP_EMAIL_ATTRIBUTE"]
        service.search(cfg["LDAP_USER_BASE"], fill(cfg["LDAP_USER_FILTER"], "{login}", login), SUBTREE,
                            attributes=[name_attr, mail_attr, "memberOf"], size_limit=2,
                            time_limit=_seconds(cfg["LDAP_TIMEOUT"]))
        entries = [item for item in service.response or () if item.get("type") == "searchResEntry"]
        code = (service.result or {}).get("result", 0)
        if code not in (0, 4, 32):  # success, size limit exceeded (ambiguous), no such object
            raise DirectoryUnavailable(f"the user search failed: {(service.result or {}).get('description')}")
        if len(entries) != 1:
            return None
        dn, attributes = entries[0]["dn"], entries[0].get("attributes") or {}
        username = _first(attributes, name_attr)
        if username is None:
            return None
        user_conn = _bind(server, dn, password)
        if user_conn is None:
            return None
        _close(user_conn)
        return DirectoryEntry(dn=dn, username=username, email=_first(attributes, mail_attr),
                              groups=_groups(service, dn, attributes))
    except LDAPException as exc:
        raise DirectoryUnavailable(f"{type(exc).__name__}: {exc}") from exc
    finally:
        _close(service)
