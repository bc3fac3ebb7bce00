"""Whitelists for everything a caller sends before it reaches Docker or the filesystem."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from agent.errors import bad_input

NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$")
REF_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$")  # container id or name
_LABEL = r"[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,62}[a-zA-Z0-9])?"
_HOST = rf"(?:{_LABEL}(?:\.{_LABEL})*(?::[0-9]{{1,5}})?/)"
_PATH = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*"
TAG_PATTERN = r"[a-zA-Z0-9_][a-zA-Z0-9_.-]{0,127}"
REPOSITORY_RE = re.compile(rf"^{_HOST}?{_PATH}$")
TAG_RE = re.compile(rf"^{TAG_PATTERN}$")
IMAGE_RE = re.compile(rf"^{_HOST}?{_PATH}(?::{TAG_PATTERN})?(?:@sha256:[a-f0-9]{{64}})?$")
IMAGE_ID_RE = re.compile(r"^(?:sha256:)?[a-f0-9]{12,64}$")
APP_RE = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
ENV_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
LABEL_KEY_RE = re.compile(r"^[a-z0-9][a-z0-9._/-]{0,127}$")
# Set by the agent itself (managed marker, app → port map, workspace folder): never from a caller.
RESERVED_LABELS = frozenset({"slipway.managed", "slipway.ports", "slipway.workspace"})


def require_str(data: dict, field: str, pattern: re.Pattern[str], what: str) -> str:
    """A string field that matches `pattern`."""
    value = data.get(field)
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise bad_input(field, f"must be {what}")
    return value


def image_ref(value: Any, field: str = "image") -> str:
    """An image reference (repo[:tag][@digest]) or an image id."""
    text = value if isinstance(value, str) and len(value) <= 255 else ""
    if not (IMAGE_RE.fullmatch(text) or IMAGE_ID_RE.fullmatch(text)):
        raise bad_input(field, "must be an image reference like registry:5000/name:tag")
    return value


def container_ref(value: str) -> str:
    """A container id or name from the URL."""
    if not REF_RE.fullmatch(value):
        raise bad_input("id", "must be a container id or name")
    return value


def cpu(value: Any) -> float:
    """CPU limit in cores: positive and no more than this host has."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise bad_input("cpu", "must be a number of cores")
    cores = os.cpu_count() or 1
    if not 0.01 <= float(value) <= cores:
        raise bad_input("cpu", f"must be between 0.01 and {cores} cores")
    return float(value)


def memory_mb(value: Any) -> int:
    """Memory limit in MiB, an integer of at least 16."""
    if isinstance(value, bool) or not isinstance(value, int) or not 16 <= value <= 1 << 22:
        raise bad_input("memory_mb", "must be an integer number of MiB, at least 16")
    return value


def ports(value: Any) -> dict[str, int]:
    """App name → container port, at most 8 apps."""
    if not isinstance(value, dict) or not 1 <= len(value) <= 8:
        raise bad_input("ports", "must map 1 to 8 app names to container ports")
    result: dict[str, int] = {}
    for app, port in value.items():
        if not isinstance(app, str) or not APP_RE.fullmatch(app):
            raise bad_input("ports", f"app name {str(app)[:40]!r} must be lowercase letters, digits, - or _")
        if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
            raise bad_input("ports", f"port of {app} must be an integer between 1 and 65535")
        result[app] = port
    if len(set(result.values())) != len(result):
        raise bad_input("ports", "two apps use the same container port")
    return result


def env(value: Any) -> dict[str, str]:
    """Environment variables: NAME → string."""
    if value is None:
        return {}
    if not isinstance(value, dict) or len(value) > 100:
        raise bad_input("env", "must map at most 100 variable names to strings")
    for key, item in value.items():
        if not isinstance(key, str) or not ENV_KEY_RE.fullmatch(key):
            raise bad_input("env", f"variable name {str(key)[:40]!r} is not valid")
        if not isinstance(item, str) or len(item) > 4096 or "\x00" in item:
            raise bad_input("env", f"value of {key} must be a string under 4096 characters")
    return dict(value)


def labels(value: Any) -> dict[str, str]:
    """Caller labels; the few keys the agent sets itself are refused."""
    if value is None:
        return {}
    if not isinstance(value, dict) or len(value) > 50:
        raise bad_input("labels", "must map at most 50 label keys to strings")
    for key, item in value.items():
        if not isinstance(key, str) or not LABEL_KEY_RE.fullmatch(key):
            raise bad_input("labels", f"key {str(key)[:40]!r} must be lowercase letters, digits, . _ / -")
        if key in RESERVED_LABELS:
            raise bad_input("labels", f"key {key!r} is reserved for the agent")
        if not isinstance(item, str) or len(item) > 1024 or "\x00" in item:
            raise bad_input("labels", f"value of {key} must be a string under 1024 characters")
    return dict(value)


def label_filters(values: list[str]) -> list[str]:
    """`k=v` (or `k`) label filters from the query string."""
    for item in values:
        key = item.split("=", 1)[0]
        if not LABEL_KEY_RE.fullmatch(key) or len(item) > 1100 or "\x00" in item:
            raise bad_input("label", "must be key=value")
    return values


def workspace(value: Any, root: Path) -> tuple[str, Path]:
    """A folder relative to the workspace root that resolves inside it (no traversal, no symlink out)."""
    if not isinstance(value, str) or not value or len(value) > 255 or "\x00" in value:
        raise bad_input("workspace", "must be a relative folder name")
    relative = Path(value)
    if relative.is_absolute() or ".." in relative.parts or value.startswith("~"):
        raise bad_input("workspace", "must stay inside the workspace root")
    if not all(re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", part) for part in relative.parts):
        raise bad_input("workspace", "each part must be letters, digits, . _ -")
    real_root = root.resolve()
    target = (real_root / relative).resolve()
    if target == real_root or not target.is_relative_to(real_root):
        raise bad_input("workspace", "must stay inside the workspace root")
    return relative.as_posix(), target
