"""A fresh, empty benchmark database: `BENCH_DATABASE_URL`, or `sqlite` for a file under a temp dir."""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy import MetaData, create_engine


def fresh_database(default_url: str, tmp: Path) -> str:
    """Create the MariaDB database when missing and drop every table in it; returns the URL to use."""
    url = os.environ.get("BENCH_DATABASE_URL", default_url)
    if url == "sqlite":
        return f"sqlite:///{tmp / 'bench.db'}"
    if url.startswith("mysql"):
        server_url, _, name = url.rpartition("/")
        engine = create_engine(server_url)
        with engine.begin() as conn:
            conn.exec_driver_sql(f"CREATE DATABASE IF NOT EXISTS `{name}` CHARACTER SET utf8mb4")
        engine.dispose()
    engine = create_engine(url)
    meta = MetaData()
    meta.reflect(engine)
    meta.drop_all(engine)
    engine.dispose()
    return url
