"""Refuse a workspace image that does not run the Slipway gate on its published app ports.

A port that answers without the edge's secret would bypass the owner check. The gate answers
such a request 403 with `X-Slipway-Gate: closed`; the agent asks once, right after creating
the container, from this host (local connections do not pass DOCKER-USER). It catches an image
that lost the gate by mistake (a replaced ENTRYPOINT, an app on 0.0.0.0:8080), not one built
to deceive: whoever can build images already runs code in the workspaces.
"""

from __future__ import annotations

import http.client
import time
from collections.abc import Mapping


def _answer(host_ip: str, port: int) -> tuple[int, str | None]:
    """(status, X-Slipway-Gate header) of a GET / without the secret."""
    conn = http.client.HTTPConnection(host_ip, port, timeout=3)
    try:
        conn.request("GET", "/", headers={"Host": "slipway-gate-check"})
        response = conn.getresponse()
        response.read(4096)
        return response.status, response.getheader("X-Slipway-Gate")
    finally:
        conn.close()


def gate_problem(host_ip: str, ports: Mapping[str, int], timeout: float = 15) -> str | None:
    """None when every published app port answers as the gate does; else what answered instead."""
    deadline = time.monotonic() + timeout
    for app, port in ports.items():
        while True:
            try:
                status, mark = _answer(host_ip, port)
            except (OSError, http.client.HTTPException):
                if time.monotonic() > deadline:  # refused or reset while the container starts
                    return f"{app} (port {port}) did not answer within {timeout:.0f} s"
                time.sleep(0.05)
                continue
            if status == 403 and mark == "closed":
                break
            return f"{app} (port {port}) answered {status} to a request without the edge's secret"
    return None
