"""AgentClient against a signature-checking stub: signing, error mapping, retries, timeouts."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from app.agent_client import AgentClient, AgentConflict, AgentError, AgentNotFound, AgentUnavailable
from tests.stub_agent import StubAgent

TOKEN = "t" * 40


def test_signed_calls_reach_data_and_wrong_token_is_refused():
    with StubAgent(TOKEN) as stub:
        assert AgentClient(stub.url, TOKEN).system_stats()["memory"]["percent"] == 25.0
        assert AgentClient(stub.url, TOKEN).list_containers({"slipway.managed": "true"}) == []
        assert stub.requests[-1] == ("GET", "/api/containers?label=slipway.managed%3Dtrue")
        with pytest.raises(AgentError) as refused:
            AgentClient(stub.url, "wrong" * 10).system_stats()
        assert refused.value.status == 401 and refused.value.message == "unauthorized"


def test_errors_carry_the_agents_message():
    with StubAgent(TOKEN) as stub:
        client = AgentClient(stub.url, TOKEN, retries=0)
        with pytest.raises(AgentNotFound) as missing:
            client.delete_container("missing")
        assert missing.value.message == "container missing not found"
        with pytest.raises(AgentConflict):
            client.create_container({"name": "x"})
        with pytest.raises(AgentError):
            client.start_container("../etc")


def test_idempotent_calls_retry_on_503_but_creates_do_not():
    with StubAgent(TOKEN, mode="down") as stub:
        client = AgentClient(stub.url, TOKEN, retries=2, backoff=0.01)
        with pytest.raises(AgentUnavailable) as down:
            client.system_stats()
        assert down.value.message == f"agent at {stub.url.removeprefix('http://')}: Docker is not reachable"
        assert len(stub.requests) == 3
        with pytest.raises(AgentUnavailable):
            client.create_container({"name": "x"})
        assert len(stub.requests) == 4


def test_dead_and_slow_agents_cost_at_most_their_timeout():
    dead = StubAgent(TOKEN, mode="dead")
    started = time.monotonic()
    assert AgentClient(dead.url, TOKEN, retries=0).health() is False
    assert time.monotonic() - started < 1
    with StubAgent(TOKEN, mode="slow", delay=3) as slow:
        client = AgentClient(slow.url, TOKEN, connect_timeout=0.5, read_timeout=0.5, retries=0)
        started = time.monotonic()
        with pytest.raises(AgentUnavailable):
            client.system_stats()
        assert time.monotonic() - started < 1.5


def test_token_is_not_in_repr_or_errors():
    client = AgentClient("http://127.0.0.1:9", TOKEN, retries=0)
    assert TOKEN not in repr(client)
    with pytest.raises(AgentUnavailable) as error:
        client.system_stats()
    assert TOKEN not in str(error.value)


def test_unavailable_names_the_agent_without_credentials():
    client = AgentClient("http://ops:url-secret@127.0.0.1:9", TOKEN, retries=0, name="host-1")
    with pytest.raises(AgentUnavailable) as error:
        client.system_stats()
    assert error.value.message == "agent 'host-1' (127.0.0.1:9) unreachable: connection refused"
    assert error.value.reason == "agent unreachable: connection refused"  # shown beside the server's name
    assert "url-secret" not in str(error.value) and "url-secret" not in repr(client)


def _cut_stream_server() -> tuple[socket.socket, int]:
    """A listener that answers one request with the start of an NDJSON stream, then hangs up."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.settimeout(5)
            data = b""
            while b"\r\n\r\n" not in data and len(data) < 65536:
                data += conn.recv(4096)
            line = b'{"type": "log", "line": "Step 1/2 : FROM busybox"}\n'
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\n"
                         b"Transfer-Encoding: chunked\r\n\r\n" + b"%x\r\n%s\r\n" % (len(line), line))

    threading.Thread(target=serve, daemon=True).start()
    return listener, listener.getsockname()[1]


def test_a_stream_cut_off_mid_build_names_the_agent():
    listener, port = _cut_stream_server()
    with listener:
        stream = AgentClient(f"http://127.0.0.1:{port}", TOKEN, name="host-1").build_image(
            tag="x:1", dockerfile="FROM busybox\n")
        assert next(stream)["line"] == "Step 1/2 : FROM busybox"
        with pytest.raises(AgentUnavailable) as cut:
            next(stream)
    assert cut.value.message == (f"agent 'host-1' (127.0.0.1:{port}) stopped answering during the build: "
                                 "the connection was cut off")
