"""Validate a build context (tar or tar.gz) before it is sent anywhere near Docker.

Refused: anything that is not a tar archive, absolute paths, `..` components, links whose
target lies outside the context, device files, and more unpacked data than allowed.
"""

from __future__ import annotations

import io
import posixpath
import tarfile
from dataclasses import dataclass


class ContextError(ValueError):
    """The build context is refused; the message says which entry and why."""


@dataclass(frozen=True)
class ContextSummary:
    """What a valid context holds."""

    entries: int
    unpacked_bytes: int
    has_dockerfile: bool


def _inside(path: str) -> bool:
    """True when a normalised relative path stays inside the context root."""
    normal = posixpath.normpath(path)
    return not (normal == ".." or normal.startswith("../") or posixpath.isabs(normal))


def _check_name(name: str) -> None:
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise ContextError(f"entry '{name}' has an absolute path")
    if ".." in name.replace("\\", "/").split("/"):
        raise ContextError(f"entry '{name}' contains '..'")


def check_context(data: bytes, *, max_unpacked_bytes: int) -> ContextSummary:
    """Check a tar / tar.gz build context held in `data`; raises `ContextError` when refused."""
    try:
        archive = tarfile.open(fileobj=io.BytesIO(data), mode="r:*")
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise ContextError("the build context is not a tar or tar.gz archive") from exc
    entries = 0
    total = 0
    has_dockerfile = False
    try:
        with archive:
            for member in archive:
                entries += 1
                name = member.name
                _check_name(name)
                if member.issym():
                    target = member.linkname
                    if posixpath.isabs(target) or not _inside(
                        posixpath.join(posixpath.dirname(name), target)
                    ):
                        raise ContextError(f"link '{name}' points outside the context ({target})")
                elif member.islnk():
                    _check_name(member.linkname)
                    if not _inside(member.linkname):
                        raise ContextError(f"hard link '{name}' points outside the context")
                elif member.ischr() or member.isblk() or member.isfifo():
                    raise ContextError(f"entry '{name}' is a device or pipe")
                total += max(member.size, 0)
                if total > max_unpacked_bytes:
                    raise ContextError(f"the context unpacks to more than {max_unpacked_bytes} bytes")
                if posixpath.normpath(name) == "Dockerfile":
                    has_dockerfile = True
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise ContextError(f"the build context archive is damaged: {exc}") from exc
    if entries == 0:
        raise ContextError("the build context archive is empty")
    return ContextSummary(entries, total, has_dockerfile)
