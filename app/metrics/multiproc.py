"""The multiprocess directory, apart from prometheus_client: the mode is chosen before it is imported."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def multiproc_dir() -> str | None:
    """The multiprocess directory when this process runs in multiprocess mode."""
    return os.environ.get(MULTIPROC_ENV) or None


def prepare_multiproc_dir(path: str | Path) -> Path:
    """Empty (or create) the multiprocess directory: values of processes from a previous run must go."""
    directory = Path(path)
    if directory.is_dir():
        for entry in directory.iterdir():
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def enable_multiproc(path: str | Path) -> Path:
    """Clean `path` and select it for this process and its children (before prometheus_client loads)."""
    directory = prepare_multiproc_dir(path)
    os.environ[MULTIPROC_ENV] = str(directory)
    return directory
