"""Where Slipway sends requests: agent URLs and registry hosts, checked at save and connect time."""

from __future__ import annotations

import ipaddress
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlalchemy import func, select

from app.agent_client import AgentClient, AgentError
from app.extensions import db
from app.images.registry_routes import test_login as registry_login
from app.models import Registry, Server
from app.security import outbound
from app.settings_checks import validate
from config import TestingConfig
from tests.builders import TOKEN, add_form, make_server
from tests.support import form_post

REAL_GETADDRINFO = socket.getaddrinfo


@pytest.fixture
def dns(monkeypatch):
    """A fake resolver: names in the returned dict resolve to their address, others as usual."""
    names: dict[str, str] = {}

    def fake(host, port, *args, **kwargs):
        if host in names:
            family = socket.AF_INET6 if ":" in names[host] else socket.AF_INET
            return [(family, socket.SOCK_STREAM, 6, "", (names[host], port or 0))]
        return REAL_GETADDRINFO(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    return names


@pytest.mark.parametrize("text", ["127.0.0.1", "2130706433", "0x7f000001", "0177.0.0.1", "127.1", "0x7f.1",
                                  "1.2.3", "10.0.0.5", "4294967295", "0xffffffff", "1.2.65535"])
def test_numeric_spellings_are_read_as_the_c_resolver_reads_them(text):
    assert str(outbound.parse_address(text)) == socket.inet_ntoa(socket.inet_aton(text))


@pytest.mark.parametrize(("url", "message"), [
    ("http://169.254.169.254", "169.254.169.254 is a cloud metadata address"),
    ("http://169.254.1.1:9100", "link-local"),
    ("http://0x7f000001:9100", "write it as 127.0.0.1"),
    ("http://2130706433:9100", "write it as 127.0.0.1"),
    ("http://0177.0.0.1:9100", "write it as 127.0.0.1"),
    ("http://0xa9fea9fe", "write it as 169.254.169.254"),
    ("http://[::ffff:127.0.0.1]:9100", "write it as 127.0.0.1"),
    ("http://[::ffff:a9fe:a9fe]:9100", "write it as 169.254.169.254"),
    ("http://0.0.0.0:9100", "unspecified"),
    ("http://[::]:9100", "unspecified"),
    ("http://224.0.0.1:9100", "multicast"),
    ("http://[ff02::1]:9100", "multicast"),
    ("http://240.0.0.1:9100", "reserved"),
    ("http://[fe80::1]:9100", "link-local"),
    ("http://[fd00:ec2::254]:9100", "cloud metadata"),
    ("http://10.0.0.5:9100", "list its network in SLIPWAY_AGENT_NETWORKS"),
    ("http://192.168.1.10:9100", "list its network in SLIPWAY_AGENT_NETWORKS"),
    ("http://[fd12::5]:9100", "list its network in SLIPWAY_AGENT_NETWORKS"),
    ("http://no-such-host.invalid:9100", "does not resolve"),
])
def test_forbidden_agent_urls_are_refused_with_a_message_and_nothing_saved(app, client, auth, url, message):
    auth.as_role("admin")
    response = form_post(client, "/servers/new", add_form(agent_url=url), page="/servers/new")
    assert response.status_code == 200
    assert message in response.get_data(as_text=True).replace("&#39;", "'")
    with app.app_context():
        assert db.session.scalar(select(func.count(Server.id))) == 0


def test_loopback_is_allowed_by_default_and_refused_when_the_policy_leaves_it_out(app, client, auth):
    auth.as_role("admin")
    for name, url in (("one", "http://127.0.0.1:9100"), ("two", "http://[::1]:9100"),
                      ("three", "http://localhost:9100")):
        response = form_post(client, "/servers/new", add_form(name=name, agent_url=url), page="/servers/new")
        assert response.status_code == 302, url
    app.config["AGENT_NETWORKS"] = (ipaddress.ip_network("10.0.0.0/8"),)
    for url, message in (("http://127.0.0.1:9100", "127.0.0.1 is a loopback address"),
                         ("http://[::1]:9100", "::1 is a loopback address"),
                         ("http://localhost:9100", "'localhost' (which resolves to")):
        response = form_post(client, "/servers/new", add_form(name="four", agent_url=url),
                             page="/servers/new")
        assert message in response.get_data(as_text=True).replace("&#39;", "'"), url
    response = form_post(client, "/servers/new", add_form(name="five", agent_url="http://10.1.2.3:9100"),
                         page="/servers/new")
    assert response.status_code == 302
    with app.app_context():
        assert db.session.scalar(select(func.count(Server.id))) == 4


def test_a_name_is_checked_by_every_address_it_resolves_to(app, client, auth, dns):
    auth.as_role("admin")
    dns["agent.example"] = "169.254.169.254"
    response = form_post(client, "/servers/new", add_form(agent_url="http://agent.example:9100"),
                         page="/servers/new")
    assert "'agent.example' (which resolves to 169.254.169.254) is a cloud metadata address" in (
        response.get_data(as_text=True).replace("&#39;", "'"))
    with app.app_context():
        assert db.session.scalar(select(func.count(Server.id))) == 0


def test_publish_host_follows_the_agent_policy(app, client, auth):
    auth.as_role("admin")
    response = form_post(client, "/servers/new", add_form(publish_host="169.254.169.254"),
                         page="/servers/new")
    assert "cloud metadata" in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(select(func.count(Server.id))) == 0


def test_register_local_server_refuses_a_forbidden_url(app, runner, tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    result = runner.invoke(args=["register-local-server", "--agent-url", "http://0x7f000001:9100",
                                 "--token-file", str(token_file)])
    assert result.exit_code != 0 and "write it as 127.0.0.1" in result.output
    with app.app_context():
        assert db.session.scalar(select(func.count(Server.id))) == 0
    result = runner.invoke(args=["register-local-server", "--agent-url", "http://127.0.0.1:9100",
                                 "--token-file", str(token_file)])
    assert result.exit_code == 0, result.output


def test_dns_rebinding_is_refused_at_connect_time(app, dns):
    dns["agent.example"] = "127.0.0.1"
    with app.app_context():
        server = make_server(agent_url="http://agent.example:9")
        assert outbound.agent_url_problem(server.agent_url) is None  # what the form saw at save time
        dns["agent.example"] = "169.254.169.254"
        with pytest.raises(AgentError) as refused:
            AgentClient.for_server(server, retries=0).system_stats()
    assert "agent address refused" in refused.value.message and "cloud metadata" in refused.value.message


@pytest.mark.parametrize(("host", "message"), [
    ("169.254.169.254:5000", "cloud metadata"),
    ("0x7f000001:5000", "write it as 127.0.0.1"),
    ("2130706433:5000", "write it as 127.0.0.1"),
    ("10.0.0.1:5000", "SLIPWAY_REGISTRY_NETWORKS"),
])
def test_forbidden_registry_hosts_are_refused_and_nothing_saved(app, client, auth, host, message):
    auth.as_role("admin")
    response = form_post(client, "/images/registries",
                         {"name": "r", "host": host, "username": "", "password": ""},
                         page="/images/registries")
    assert response.status_code == 400 and message in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(select(Registry)) is None


def test_registry_login_check_resolves_again_before_connecting(app, dns):
    dns["registry.example"] = "169.254.169.254"
    with app.app_context():
        ok, message = registry_login(Registry(name="r", host="registry.example:5000"))
    assert not ok and "cloud metadata" in message


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - http.server's naming
        self.server.hits.append(self.path)
        body = json.dumps({"success": True, "data": {"memory": {"percent": 1.0}}}).encode()
        self.send_response(302 if self.server.location else 200)
        if self.server.location:
            self.send_header("Location", self.server.location)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def _serve(location: str | None) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.hits, server.location = [], location
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_a_redirecting_agent_is_not_followed_and_its_answer_not_used():
    target = _serve(None)
    agent = _serve(f"http://127.0.0.1:{target.server_address[1]}/get_system_stats")
    try:
        with pytest.raises(AgentError) as refused:
            AgentClient(f"http://127.0.0.1:{agent.server_address[1]}", TOKEN, retries=0).system_stats()
        assert refused.value.status == 302
        assert agent.hits == ["/get_system_stats"] and target.hits == []
    finally:
        for server in (agent, target):
            server.shutdown()
            server.server_close()


def test_network_settings_are_parsed_and_checked(tmp_path):
    settings, problems = TestingConfig.load({"SLIPWAY_AGENT_NETWORKS": "10.0.0.0/8, fd00::/8",
                                             "SLIPWAY_REGISTRY_NETWORKS": "none"})
    assert problems == []
    assert settings["AGENT_NETWORKS"] == (ipaddress.ip_network("10.0.0.0/8"),
                                          ipaddress.ip_network("fd00::/8"))
    assert settings["REGISTRY_NETWORKS"] == ()
    _, problems = TestingConfig.load({"SLIPWAY_AGENT_NETWORKS": "10.0.0.1/8,nope"})
    assert len(problems) == 2 and all("SLIPWAY_AGENT_NETWORKS" in p for p in problems)
    settings, _ = TestingConfig.load({"SLIPWAY_REGISTRY_NETWORKS": "169.254.0.0/16",
                                      "SLIPWAY_DATA_DIR": str(tmp_path)})
    assert any("169.254.0.0/16" in p for p in validate(settings))
