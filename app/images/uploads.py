"""Receive a guest OS tarball by streaming the request body to disk in chunks.

Flask's `request.files` is never touched: the multipart body is read from `request.stream`
with Werkzeug's sans-IO decoder, so memory stays flat whatever the size. The file lands
under a server-chosen name; the sha256 and size are computed on the way; the first bytes
must be a tar archive (plain, gzip, bzip2 or xz). On any refusal the partial file is removed.
"""

from __future__ import annotations

import bz2
import errno
import hashlib
import lzma
import os
import re
import secrets
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import IO

from flask import current_app
from werkzeug.http import parse_options_header
from werkzeug.sansio.multipart import Data, Epilogue, Field, File, MultipartDecoder, NeedData

CHUNK_BYTES = 1024 * 1024
FIELD_MAX_BYTES = 4096
HEAD_BYTES = 512
STORED_NAME_RE = re.compile(r"^[0-9a-f]{32}\.tar(\.gz|\.bz2|\.xz)?$")
_COMPRESSIONS: dict[str, tuple[bytes, str]] = {
    "gzip": (b"\x1f\x8b", ".tar.gz"),
    "bzip2": (b"BZh", ".tar.bz2"),
    "xz": (b"\xfd7zXZ\x00", ".tar.xz"),
}


class UploadRefused(Exception):  # noqa: N818 - an outcome shown to the user
    """The upload is refused; `status` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass(frozen=True)
class ReceivedUpload:
    """A tarball stored on disk, with its form fields."""

    stored_name: str
    original_name: str
    size: int
    sha256: str
    compression: str
    fields: dict[str, str]


def upload_dir() -> Path:
    """Where uploads are stored (`UPLOAD_DIR`, default `$DATA_DIR/uploads`), created if missing."""
    path = Path(current_app.config.get("UPLOAD_DIR") or Path(current_app.config["DATA_DIR"]) / "uploads")
    path.mkdir(parents=True, exist_ok=True)
    return path


def context_dir() -> Path:
    """Where uploaded build contexts wait for their build task."""
    path = Path(current_app.config["DATA_DIR"]) / "build-contexts"
    path.mkdir(parents=True, exist_ok=True)
    return path


def remove_stale_contexts(older_than: timedelta) -> int:
    """Delete build contexts last written before `older_than` ago (kept for a retry nobody made)."""
    cutoff = time.time() - older_than.total_seconds()
    removed = 0
    for path in context_dir().glob("*.tar"):
        if STORED_NAME_RE.fullmatch(path.name) and path.stat().st_mtime < cutoff:
            path.unlink(missing_ok=True)
            removed += 1
    return removed


def safe_display_name(filename: str) -> str:
    """The client's file name reduced to a printable base name, for display only."""
    base = filename.replace("\\", "/").rsplit("/", 1)[-1]
    base = "".join(ch for ch in base if ch.isprintable()).strip().lstrip(".")
    return base[:255] or "upload"


def sniff_tar(head: bytes) -> str:
    """The compression ("none", "gzip", "bzip2", "xz") of a tar stream starting with `head`.

    Compressed data is decompressed just far enough to see the tar header; raises
    `UploadRefused` when the bytes are not a tar archive.
    """
    kind = "none"
    inner = head
    for name, (magic, _suffix) in _COMPRESSIONS.items():
        if head.startswith(magic):
            kind = name
            try:
                if name == "gzip":
                    inner = zlib.decompressobj(wbits=31).decompress(head, HEAD_BYTES)
                elif name == "bzip2":
                    inner = bz2.BZ2Decompressor().decompress(head, HEAD_BYTES)
                else:
                    inner = lzma.LZMADecompressor().decompress(head, HEAD_BYTES)
            except (zlib.error, OSError, lzma.LZMAError, EOFError) as exc:
                raise UploadRefused("the file is damaged: it does not decompress") from exc
            break
    if len(inner) < 262 or inner[257:262] != b"ustar":
        raise UploadRefused("the file is not a tar archive (plain, .gz, .bz2 or .xz)", 415)
    return kind


class _Sink:
    """Writes the file part to a temporary name, hashing and counting as it goes."""

    def __init__(self, directory: Path, max_bytes: int) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self.partial = directory / f".partial-{secrets.token_hex(16)}"
        self.handle: IO[bytes] | None = open(self.partial, "xb", buffering=0)  # noqa: SIM115
        self.digest = hashlib.sha256()
        self.size = 0
        self.head = b""
        self.compression: str | None = None

    def write(self, data: bytes) -> None:
        self.size += len(data)
        if self.size > self.max_bytes:
            raise UploadRefused(f"the file is larger than the limit of {self.max_bytes} bytes", 413)
        if self.compression is None:
            self.head += data
            if len(self.head) < HEAD_BYTES * 4:
                return
            self.compression = sniff_tar(self.head)
            data, self.head = self.head, b""
        self.digest.update(data)
        assert self.handle is not None
        self.handle.write(data)

    def finish(self) -> tuple[str, str]:
        """Close the file and move it to its final name; returns (stored_name, compression)."""
        if self.compression is None:
            self.compression = sniff_tar(self.head)
            self.digest.update(self.head)
            assert self.handle is not None
            self.handle.write(self.head)
        self.close()
        suffix = _COMPRESSIONS[self.compression][1] if self.compression != "none" else ".tar"
        stored = secrets.token_hex(16) + suffix
        os.replace(self.partial, self.directory / stored)
        return stored, self.compression

    def close(self) -> None:
        if self.handle is not None:
            self.handle.close()
            self.handle = None

    def discard(self) -> None:
        self.close()
        self.partial.unlink(missing_ok=True)


def receive_upload(
    stream: IO[bytes],
    content_type: str | None,
    *,
    max_bytes: int,
    field_name: str = "file",
    check_fields: Callable[[dict[str, str]], None] | None = None,
) -> ReceivedUpload:
    """Stream a multipart body to disk; `check_fields` runs on the fields sent before the file.

    Raises `UploadRefused` (with the status to answer) and leaves no file behind then.
    """
    mimetype, options = parse_options_header(content_type or "")
    boundary = options.get("boundary", "")
    if mimetype != "multipart/form-data" or not boundary:
        raise UploadRefused("send the file as a multipart/form-data form")
    decoder = MultipartDecoder(boundary.encode(), max_form_memory_size=CHUNK_BYTES * 2, max_parts=16)
    fields: dict[str, str] = {}
    current: str | None = None
    field_buffer = bytearray()
    sink: _Sink | None = None
    original = ""
    in_file = False
    done = False
    try:
        while not done:
            chunk = stream.read(CHUNK_BYTES)
            decoder.receive_data(chunk or None)
            while True:
                event = decoder.next_event()
                if isinstance(event, NeedData):
                    break
                if isinstance(event, File) and event.name == field_name and sink is None:
                    if check_fields is not None:
                        check_fields(fields)
                    sink = _Sink(upload_dir(), max_bytes)
                    original = safe_display_name(event.filename or "")
                    in_file = True
                elif isinstance(event, Field | File):
                    current, in_file = event.name, False
                    field_buffer.clear()
                elif isinstance(event, Data):
                    if in_file and sink is not None:
                        sink.write(event.data)
                    elif current is not None:
                        field_buffer += event.data
                        if len(field_buffer) > FIELD_MAX_BYTES:
                            raise UploadRefused(f"the form field {current!r} is too long")
                    if not event.more_data:
                        if not in_file and current is not None:
                            fields[current] = field_buffer.decode("utf-8", "replace")
                        current, in_file = None, False
                elif isinstance(event, Epilogue):
                    done = True
                    break
            if not chunk and not done:
                raise UploadRefused("the upload ended before it was complete")
        if sink is None:
            raise UploadRefused("choose a file to upload")
        stored, compression = sink.finish()
        return ReceivedUpload(stored, original, sink.size, sink.digest.hexdigest(), compression, fields)
    except ValueError as exc:
        if sink is not None:
            sink.discard()
        raise UploadRefused(f"the upload is malformed: {exc}") from exc
    except OSError as exc:
        if sink is not None:
            sink.discard()
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise UploadRefused("the server has no space left for this upload; nothing was kept. "
                                "Ask an administrator to free space, then try again.", 507) from exc
        raise
    except BaseException:
        if sink is not None:
            sink.discard()
        raise
