"""Directory settings: parsed from SLIPWAY_LDAP_*, every problem reported at start-up, group mapping."""

from __future__ import annotations

from app.directory.mapping import mapped_role, normalize_dn, parse_dn_list, parse_group_roles
from app.settings_checks import validate
from config import DevelopmentConfig

GOOD = {
    "SLIPWAY_LDAP_URL": "ldap://ldap.example.org:389",
    "SLIPWAY_LDAP_START_TLS": "true",
    "SLIPWAY_LDAP_BIND_DN": "cn=reader,dc=example,dc=org",
    "SLIPWAY_LDAP_BIND_PASSWORD": "secret",
    "SLIPWAY_LDAP_USER_BASE": "ou=people,dc=example,dc=org",
    "SLIPWAY_LDAP_GROUP_ROLES": "cn=admins,ou=groups,dc=example,dc=org=admin;"
                                "cn=staff,ou=groups,dc=example,dc=org=qvp",
    "SLIPWAY_LDAP_AUTO_APPROVE_GROUPS": "cn=staff,ou=groups,dc=example,dc=org",
}


def ldap_problems(env: dict[str, str], tmp_path) -> list[str]:
    settings, problems = DevelopmentConfig.load({**env, "SLIPWAY_DATA_DIR": str(tmp_path)})
    return [p for p in problems + validate(settings) if "LDAP" in p]


def test_directory_is_off_by_default_and_valid(tmp_path):
    settings, _ = DevelopmentConfig.load({"SLIPWAY_DATA_DIR": str(tmp_path)})
    assert settings["LDAP_URL"] is None
    assert ldap_problems({}, tmp_path) == []


def test_a_good_directory_configuration_passes(tmp_path):
    assert ldap_problems(GOOD, tmp_path) == []
    settings, _ = DevelopmentConfig.load(GOOD)
    assert settings["LDAP_START_TLS"] is True
    assert settings["LDAP_USER_FILTER"] == "(&(objectClass=inetOrgPerson)(uid={login}))"


def test_every_directory_problem_is_reported_at_once(tmp_path):
    env = {
        "SLIPWAY_LDAP_URL": "https://ldap.example.org",
        "SLIPWAY_LDAP_BIND_DN": "cn=reader,dc=example,dc=org",
        "SLIPWAY_LDAP_USER_FILTER": "(uid=alice)",
        "SLIPWAY_LDAP_GROUP_FILTER": "member={dn}",
        "SLIPWAY_LDAP_USERNAME_ATTRIBUTE": "uid)(x",
        "SLIPWAY_LDAP_GROUP_ROLES": "cn=admins,dc=example,dc=org=boss;nonsense",
        "SLIPWAY_LDAP_AUTO_APPROVE_GROUPS": "not a dn",
        "SLIPWAY_LDAP_TIMEOUT": "0",
        "SLIPWAY_LDAP_CA_FILE": str(tmp_path / "missing.pem"),
    }
    text = "\n".join(ldap_problems(env, tmp_path))
    for expected in (
        "SLIPWAY_LDAP_URL must be an ldap:// or ldaps:// URL",
        "SLIPWAY_LDAP_BIND_DN and SLIPWAY_LDAP_BIND_PASSWORD are set together",
        "SLIPWAY_LDAP_USER_BASE must be set",
        "SLIPWAY_LDAP_USER_FILTER must be an LDAP filter in parentheses containing {login}",
        "SLIPWAY_LDAP_GROUP_FILTER must be an LDAP filter in parentheses containing {dn}",
        "SLIPWAY_LDAP_USERNAME_ATTRIBUTE must be an attribute name",
        "SLIPWAY_LDAP_GROUP_ROLES: 'cn=admins,dc=example,dc=org=boss' must be <group DN>=<role>",
        "SLIPWAY_LDAP_GROUP_ROLES: 'nonsense'",
        "SLIPWAY_LDAP_AUTO_APPROVE_GROUPS: 'not a dn' is not a distinguished name",
        "SLIPWAY_LDAP_TIMEOUT must be more than 0",
        "SLIPWAY_LDAP_CA_FILE",
    ):
        assert expected in text, expected


def test_start_tls_on_ldaps_is_refused(tmp_path):
    env = {**GOOD, "SLIPWAY_LDAP_URL": "ldaps://ldap.example.org"}
    assert ldap_problems(env, tmp_path) == [
        "SLIPWAY_LDAP_START_TLS is for ldap:// URLs; ldaps:// is already encrypted"]


def test_group_dns_compare_without_case_or_spaces():
    roles, problems = parse_group_roles("CN=Admins, OU=Groups,DC=Example,DC=org=admin ; "
                                        "cn=staff,dc=example,dc=org=qvp")
    assert problems == []
    assert roles == {"cn=admins,ou=groups,dc=example,dc=org": "admin", "cn=staff,dc=example,dc=org": "qvp"}
    groups = [normalize_dn("cn=staff, dc=EXAMPLE, dc=org"),
              normalize_dn("cn=admins,ou=groups,dc=example,dc=org")]
    assert mapped_role(groups, roles) == "admin"
    assert mapped_role(groups[:1], roles) == "qvp"
    assert mapped_role([normalize_dn("cn=other,dc=example,dc=org")], roles) is None
    assert parse_dn_list("cn=a,dc=b; ;CN=A,DC=B") == (frozenset({"cn=a,dc=b"}), [])
