"""Forward TCP on loopback to a unix socket, or a unix socket to TCP on loopback (no dependencies).

The spawned containers sit on Docker's bridge with their port published on 127.0.0.1, and the hub
listens on the host's 127.0.0.1, which a container cannot reach. Rather than send the hub's API
traffic over the bridge, a unix socket in a bind-mounted folder joins the two loopbacks:
    host:      python3 hub_forward.py unix-to-tcp /run/dir/hub.sock 127.0.0.1 8081
    container: python3 hub_forward.py tcp-to-unix 127.0.0.1 8081 /run/dir/hub.sock
so jupyterhub-singleuser reaches http://127.0.0.1:8081/hub/api inside its container as on the host.
"""

from __future__ import annotations

import asyncio
import os
import sys


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy bytes until EOF, then close the writing side."""
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()


async def main(argv: list[str]) -> None:
    """Serve one forwarding direction until killed."""
    mode = argv[0]

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            if mode == "tcp-to-unix":
                up_reader, up_writer = await asyncio.open_unix_connection(argv[3])
            else:
                up_reader, up_writer = await asyncio.open_connection(argv[2], int(argv[3]))
        except OSError:
            writer.close()
            return
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    if mode == "tcp-to-unix":
        server = await asyncio.start_server(handle, argv[1], int(argv[2]))
    elif mode == "unix-to-tcp":
        server = await asyncio.start_unix_server(handle, argv[1])
        try:  # only the container's user (uid 1000, the workspace image's) may connect
            os.chown(argv[1], 1000, 1000)
            os.chmod(argv[1], 0o600)
        except PermissionError:  # not root: the socket's folder (0755, this run's) is the only guard
            os.chmod(argv[1], 0o666)  # noqa: S103 - a uid 1000 process must be able to connect
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
