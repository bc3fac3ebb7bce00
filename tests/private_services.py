"""Private MariaDB and Redis servers for fault tests: stopped and started at will, never the shared ones.

Each runs on its own free loopback port with its data under the test's temporary folder,
and is stopped (and its data left to pytest's tmp cleanup) when the `with` block ends.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine
from sqlalchemy.exc import OperationalError

from tests.agent.helpers import free_port

MARIADBD = shutil.which("mariadbd") or "/usr/sbin/mariadbd"
INSTALL_DB = shutil.which("mariadb-install-db") or "/usr/bin/mariadb-install-db"
REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


def mariadb_available() -> bool:
    """The server and its install script are installed."""
    return os.access(MARIADBD, os.X_OK) and os.access(INSTALL_DB, os.X_OK)


def redis_available() -> bool:
    """redis-server is installed."""
    return os.access(REDIS_SERVER, os.X_OK)


def _wait(predicate, seconds: float, what: str) -> float:  # type: ignore[no-untyped-def]
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        if predicate():
            return time.monotonic() - started
        time.sleep(0.1)
    raise AssertionError(f"{what} within {seconds} s")


class PrivateMariaDB:
    """One mariadbd on a free port with its own datadir; `stop()` and `start()` restart it in place."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.data = root / "data"
        self.port = free_port()
        self.process: subprocess.Popen | None = None
        self.server_url = f"mysql+pymysql://root@127.0.0.1:{self.port}"
        self.url = f"{self.server_url}/slipway"

    def install(self) -> None:
        """Create the system tables (mariadb-install-db), then start and create the `slipway` database."""
        self.root.mkdir(parents=True, exist_ok=True)
        subprocess.run([INSTALL_DB, "--no-defaults", f"--datadir={self.data}", "--user=root",
                        "--auth-root-authentication-method=normal", "--skip-test-db"],
                       check=True, capture_output=True, timeout=120)
        self.start()
        engine = create_engine(self.server_url)
        with engine.begin() as conn:
            conn.exec_driver_sql("CREATE DATABASE slipway CHARACTER SET utf8mb4")
        engine.dispose()

    def answers(self) -> bool:
        """True when a fresh connection gets `SELECT 1` through."""
        engine = create_engine(self.server_url, connect_args={"connect_timeout": 1})
        try:
            with engine.connect() as conn:
                conn.exec_driver_sql("SELECT 1")
            return True
        except OperationalError:
            return False
        finally:
            engine.dispose()

    def start(self) -> float:
        """Start mariadbd and wait until it answers; returns how long that took."""
        with open(self.root / "mariadbd.log", "ab") as log:
            self.process = subprocess.Popen(
                [MARIADBD, "--no-defaults", f"--datadir={self.data}", "--user=root", f"--port={self.port}",
                 "--bind-address=127.0.0.1", f"--socket={self.root / 'mysqld.sock'}",
                 f"--pid-file={self.root / 'mysqld.pid'}", "--skip-name-resolve", "--skip-log-bin",
                 "--innodb-buffer-pool-size=32M", "--max-connections=200"],
                stdout=log, stderr=subprocess.STDOUT)
        return _wait(self.answers, 60, "the private mariadbd did not answer")

    def stop(self) -> None:
        """Stop mariadbd cleanly (SIGTERM) and wait for it to exit."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.process = None


@contextmanager
def private_mariadb(root: Path) -> Iterator[PrivateMariaDB]:
    """A private, installed and running MariaDB, stopped afterwards."""
    server = PrivateMariaDB(root)
    try:
        server.install()
        yield server
    finally:
        server.stop()


class PrivateRedis:
    """One redis-server on a free port, no persistence."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        """Start redis-server and wait until it accepts connections."""
        import socket

        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / "redis.log", "ab") as log:
            self.process = subprocess.Popen(
                [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                 "--appendonly", "no", "--dir", str(self.root)], stdout=log, stderr=subprocess.STDOUT)

        def accepts() -> bool:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return True
            except OSError:
                return False

        _wait(accepts, 30, "the private redis-server did not listen")

    def stop(self) -> None:
        """Stop redis-server."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(30)
        self.process = None


@contextmanager
def private_redis(root: Path) -> Iterator[PrivateRedis]:
    """A private running Redis, stopped afterwards."""
    server = PrivateRedis(root)
    try:
        server.start()
        yield server
    finally:
        server.stop()
