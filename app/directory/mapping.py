"""The directory settings that need parsing: group → role mapping, auto-approval groups, DN comparison.

config.py calls these at start-up to validate; the login path calls them to decide a new
account's role and approval. DNs are compared normalised (attribute names and values
lower-cased, spaces around separators dropped), as LDAP's distinguishedNameMatch does.
"""

from __future__ import annotations

# The first mapped role in this order wins when a user is in several mapped groups.
ROLE_PRECEDENCE = ("admin", "qvp", "regular")


def normalize_dn(dn: str) -> str:
    """`dn` in a canonical form for comparison; raises ValueError when it is not a DN."""
    # Imported here: only installs with directory login configured need ldap3 (see client.py).
    from ldap3.core.exceptions import LDAPInvalidDnError
    from ldap3.utils.dn import parse_dn

    try:
        parts = parse_dn(dn.strip(), escape=False, strip=True)
    except LDAPInvalidDnError as exc:
        raise ValueError(f"{dn!r} is not a distinguished name") from exc
    if not parts:
        raise ValueError("an empty distinguished name")
    text = ""
    for attr, value, separator in parts:
        text += f"{attr.strip().lower()}={value.strip().lower()}"
        if separator:
            text += "," if separator == "," else "+"
    return text


def parse_group_roles(raw: str | None) -> tuple[dict[str, str], list[str]]:
    """`"cn=admins,ou=groups,dc=x=admin;cn=staff,…=qvp"` into {normalised DN: role} and the problems found.

    Each item's role is after its last `=` (a DN holds `=` itself); roles are admin, qvp, regular.
    """
    roles: dict[str, str] = {}
    problems: list[str] = []
    for item in (part.strip() for part in (raw or "").split(";")):
        if not item:
            continue
        dn, sep, role = item.rpartition("=")
        role = role.strip()
        if not sep or role not in ROLE_PRECEDENCE:
            roles_text = ", ".join(ROLE_PRECEDENCE)
            problems.append(f"{item!r} must be <group DN>=<role> with a role among {roles_text}")
            continue
        try:
            roles[normalize_dn(dn)] = role
        except ValueError as exc:
            problems.append(f"{item!r}: {exc}")
    return roles, problems


def parse_dn_list(raw: str | None) -> tuple[frozenset[str], list[str]]:
    """`"dn;dn"` into a set of normalised DNs and the problems found."""
    dns: set[str] = set()
    problems: list[str] = []
    for item in (part.strip() for part in (raw or "").split(";")):
        if not item:
            continue
        try:
            dns.add(normalize_dn(item))
        except ValueError as exc:
            problems.append(str(exc))
    return frozenset(dns), problems


def mapped_role(groups: list[str], roles: dict[str, str]) -> str | None:
    """The strongest role any of `groups` maps to, or None when none is mapped."""
    found = {roles[g] for g in groups if g in roles}
    return next((role for role in ROLE_PRECEDENCE if role in found), None)
