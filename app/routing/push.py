"""Push route lines to every edge's admin listener, signed; an edge that is down heals by its pull."""

from __future__ import annotations

import http.client
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from app.routing.signing import SIGNATURE_HEADER, load_keys, sign

log = logging.getLogger(__name__)
PUSH_TIMEOUT_SECONDS = 5  # one workspace's lines
TABLE_TIMEOUT_SECONDS = 30  # a full table: 100,000 lines on a loaded machine
ADMIN_PATH = "/routes"


@dataclass(frozen=True)
class PushResult:
    """What each edge answered: changes applied, refusals (bad input) and unreachable edges."""

    changed: int
    refused: list[str]
    unreachable: list[str]
    edge_ms: list[float] = field(default_factory=list)  # each edge's own time to apply the push
    edge_cpu_ms: list[float] = field(default_factory=list)  # of which CPU (the rest: waiting on a busy host)


def _post(url: str, body: bytes, keys: list[str], timeout: float) -> tuple[int, str]:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80, timeout=timeout)
    try:
        conn.request("POST", ADMIN_PATH, body=body, headers={
            SIGNATURE_HEADER: sign(keys, "POST", ADMIN_PATH, body), "Content-Type": "text/plain"})
        response = conn.getresponse()
        return response.status, response.read(2000).decode(errors="replace").strip()
    finally:
        conn.close()


def push(lines: Sequence[str], urls: Sequence[str], key_file: Path) -> PushResult:
    """POST `lines` (a `replace` first line makes it the full table) to every edge admin URL."""
    body = ("\n".join(lines) + "\n").encode()
    keys = load_keys(key_file)
    timeout = TABLE_TIMEOUT_SECONDS if lines and lines[0] == "replace" else PUSH_TIMEOUT_SECONDS
    changed, refused, unreachable, edge_ms, edge_cpu_ms = 0, [], [], [], []
    for url in urls:
        try:
            status, text = _post(url, body, keys, timeout)
        except OSError as exc:
            # Not fatal: the edge loads the full table from the web app when it starts and every few seconds.
            log.warning("edge %s unreachable: %s", url, exc)
            unreachable.append(url)
            continue
        if status == 200 and text.startswith("ok "):
            words = text.split()
            changed += int(words[1])
            if len(words) > 3 and words[2].endswith("ms") and words[3].endswith("ms-cpu"):
                edge_ms.append(float(words[2][:-2]))
                edge_cpu_ms.append(float(words[3][:-6]))
        else:
            refused.append(f"{url}: {status} {text[:200]}")
    return PushResult(changed, refused, unreachable, edge_ms, edge_cpu_ms)
