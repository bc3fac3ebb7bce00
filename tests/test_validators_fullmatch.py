"""Every validator refuses a trailing newline, carriage return, NUL and Unicode look-alikes.

`$` also matches before a final newline and `str.lower()` / `int()` accept look-alikes (the
Kelvin sign lowercases to `k`, fullwidth digits parse as digits), so each check is fed its own
valid value with each of those added and must refuse every one.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from wtforms import ValidationError

from agent import validation as av
from agent.errors import AgentError as AgentInputError
from app.agent_client.client import AgentError, _ref
from app.images import forms as image_forms
from app.images.policy import check_dockerfile
from app.security import outbound
from app.validators import agent_url_problem, host_problem, is_ip, username_problem

CYRILLIC_A = "\u0430"  # looks like a
FULLWIDTH_1 = "\uff11"  # looks like 1
KELVIN = "\u212a"  # lowercases to k


def _refuses(exceptions: tuple[type[Exception], ...], check):
    """A predicate: True when `check(value)` accepts the value (returns without raising)."""
    def accepts(value: str) -> bool:
        try:
            check(value)
        except exceptions:
            return False
        return True
    return accepts


def _field(check):
    return _refuses((ValidationError,), lambda value: check(None, SimpleNamespace(data=value)))


def _form_method(app, form_class, method):
    def accepts(value: str) -> bool:
        with app.test_request_context():
            form = form_class(meta={"csrf": False})
            try:
                getattr(form, method)(SimpleNamespace(data=value))
            except ValidationError:
                return False
        return True
    return accepts


def _agent(check):
    return _refuses((AgentInputError,), check)


def _policy_from(value: str) -> bool:
    """The build policy accepts `COPY --from=<value>` only for stage indexes it knows are indexes."""
    report = check_dockerfile(f"FROM debian:12\nCOPY --from={value} /x /x\n",
                              allowed_bases=["debian:12"], allowed_registries=[])
    return not any(error.rule == "allowed-base" for error in report.errors)


def _validators(app, tmp_path: Path):
    """(name, accepts(value) -> bool, a valid value, its look-alike) for every validator."""
    return [
        ("username", lambda v: username_problem(v) is None, "alice", f"{CYRILLIC_A}lice"),
        ("host name", lambda v: host_problem(v) is None, "agent.example", f"agent.example{KELVIN}"),
        ("host ip", lambda v: host_problem(v) is None, "10.0.0.1", f"{FULLWIDTH_1}0.0.0.1"),
        ("ipv6 literal", is_ip, "fe80::1", f"fe80::{FULLWIDTH_1}"),
        ("agent url", lambda v: agent_url_problem(v) is None, "http://agent.example:9100",
         f"http://{KELVIN}agent.example:9100"),
        ("agent url port", lambda v: agent_url_problem(v) is None, "http://127.0.0.1:9100",
         f"http://127.0.0.1:9{FULLWIDTH_1}00"),
        ("outbound registry host", lambda v: outbound.registry_host_problem(v) is None, "127.0.0.1:5000",
         f"127.0.0.1:5{FULLWIDTH_1}00"),
        ("repository", _field(image_forms.repository_check), "team/app", f"team/{CYRILLIC_A}pp"),
        ("tag", _field(image_forms.tag_check), "v1", f"v{FULLWIDTH_1}"),
        ("build arg", _refuses((ValueError,), lambda v: image_forms.parse_buildargs(f"{v}=1")), "NAME",
         f"N{CYRILLIC_A}ME"),
        ("registry host", _form_method(app, image_forms.RegistryForm, "validate_host"), "127.0.0.1:5000",
         f"127.0.0.1:{FULLWIDTH_1}000"),
        ("workspace image", _form_method(app, image_forms.WorkspaceImageForm, "validate_ref"), "team/app:v1",
         f"team/{CYRILLIC_A}pp:v1"),
        ("container ref", _refuses((AgentError,), _ref), "abc", f"{CYRILLIC_A}bc"),
        ("agent container name", _agent(lambda v: av.require_str(
            {"name": v}, "name", av.NAME_RE, "a name")), "box1", f"box{FULLWIDTH_1}"),
        ("agent repository", _agent(lambda v: av.require_str(
            {"r": v}, "r", av.REPOSITORY_RE, "a repository")), "team/app", f"team/{CYRILLIC_A}pp"),
        ("agent tag", _agent(lambda v: av.require_str(
            {"t": v}, "t", av.TAG_RE, "a tag")), "latest", f"l{CYRILLIC_A}test"),
        ("agent image", _agent(av.image_ref), "team/app:v1", f"team/{CYRILLIC_A}pp:v1"),
        ("agent container ref", _agent(av.container_ref), "abc", f"{CYRILLIC_A}bc"),
        ("agent app name", _agent(lambda v: av.ports({v: 8080})), "vscode", f"vsc{CYRILLIC_A}de"),
        ("agent env key", _agent(lambda v: av.env({v: "1"})), "HOME", f"H{CYRILLIC_A}ME"),
        ("agent label key", _agent(lambda v: av.labels({v: "1"})), "team", f"te{CYRILLIC_A}m"),
        ("agent label filter", _agent(lambda v: av.label_filters([v])), "team", f"te{CYRILLIC_A}m"),
        ("agent workspace", _agent(lambda v: av.workspace(v, tmp_path)), "alice", f"{CYRILLIC_A}lice"),
    ]


SUFFIXES = [("newline", "\n"), ("carriage return", "\r"), ("NUL", "\x00")]
NAMES = [name for name, *_ in _validators(None, Path("."))]


@pytest.mark.parametrize("name", NAMES)
def test_validator_accepts_its_valid_value(app, tmp_path, name):
    _, accepts, good, _ = next(item for item in _validators(app, tmp_path) if item[0] == name)
    assert accepts(good), f"{name} should accept {good!r}"


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize(("what", "suffix"), SUFFIXES)
def test_validator_refuses_control_suffixes(app, tmp_path, name, what, suffix):
    _, accepts, good, _ = next(item for item in _validators(app, tmp_path) if item[0] == name)
    assert not accepts(good + suffix), f"{name} accepted {good!r} + {what}"


@pytest.mark.parametrize("name", NAMES)
def test_validator_refuses_unicode_look_alikes(app, tmp_path, name):
    _, accepts, _, look_alike = next(item for item in _validators(app, tmp_path) if item[0] == name)
    assert not accepts(look_alike), f"{name} accepted the look-alike {look_alike!r}"


def test_a_fullwidth_stage_index_is_checked_as_an_image():
    assert _policy_from("0")
    assert not _policy_from(FULLWIDTH_1)


def test_numbers_read_by_the_agent_are_ascii_digits_only():
    from flask import Flask

    from agent.auth import precheck_headers
    from agent.routes_containers import _app_ports
    from agent.signing import NONCE_HEADER, TIMESTAMP_HEADER

    assert _app_ports({"slipway.ports": f"vscode=808{FULLWIDTH_1}"}) == {}
    assert _app_ports({"slipway.ports": "vscode=8081"}) == {"vscode": 8081}
    headers = {TIMESTAMP_HEADER: "\u00b2", NONCE_HEADER: "n" * 16}  # superscript two: isdigit() but not int()
    with Flask(__name__).test_request_context(headers=headers), pytest.raises(AgentInputError) as refused:
        precheck_headers()
    assert refused.value.status == 401


@pytest.mark.parametrize("field", ["name", "agent_url", "publish_host"])
@pytest.mark.parametrize("suffix", ["\n", "\r", "\x00", CYRILLIC_A])
def test_server_form_refuses_control_suffixes_and_look_alikes(app, client, auth, field, suffix):
    from sqlalchemy import func, select

    from app.extensions import db
    from app.models import Server
    from tests.builders import add_form
    from tests.support import form_post

    auth.as_role("admin")
    good = {"name": "alpha", "agent_url": "http://127.0.0.1:9100", "publish_host": "127.0.0.1"}[field]
    response = form_post(client, "/servers/new", add_form(**{field: good + suffix}), page="/servers/new")
    assert response.status_code == 200
    with app.app_context():
        assert db.session.scalar(select(func.count(Server.id))) == 0
