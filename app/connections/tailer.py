"""Read complete lines from a log file that grows, is rotated (renamed) or truncated.

The position (inode and byte offset of the first unread byte) belongs to the caller, which
stores it with whatever it made of the lines in one transaction: a restart resumes exactly
where the last commit ended, so no line is ingested twice. A partial last line stays unread
until its newline arrives. After a rotation the old file is read to its end before the new
one is started at 0 (and at start-up, an old file still found as `<log>.1` is finished first).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

MAX_READ_BYTES = 4 * 1024 * 1024  # per read; a longer line is counted as garbled and skipped


@dataclass(frozen=True)
class Position:
    """The file (by inode; 0 = none yet) and the byte offset of the first unread byte."""

    inode: int = 0
    offset: int = 0


@dataclass(frozen=True)
class Chunk:
    """Complete lines read (without newlines), the position after them, and lines given up on."""

    lines: list[bytes]
    position: Position
    dropped: int = 0


class Tailer:
    """Reads a log file incrementally; keeps the open file across calls so a renamed one is finished."""

    def __init__(self, path: Path, max_bytes: int = MAX_READ_BYTES) -> None:
        self.path = Path(path)
        self.max_bytes = max_bytes
        self._fd: int | None = None
        self._inode = 0
        self._eof_after_rotation = False

    def close(self) -> None:
        """Close the open file, if any."""
        if self._fd is not None:
            os.close(self._fd)
        self._fd, self._inode, self._eof_after_rotation = None, 0, False

    def _open(self, path: Path) -> int | None:
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            return None
        self.close()
        self._fd, self._inode = fd, os.fstat(fd).st_ino
        return self._inode

    def _attach(self, position: Position) -> Position | None:
        """Open the file `position` points into (the log, or its rotated `.1`), else the log from 0."""
        if self._fd is not None and self._inode == position.inode:
            return position
        if position.inode:
            for candidate in (self.path, self.path.with_name(self.path.name + ".1")):
                try:
                    if candidate.stat().st_ino == position.inode and self._open(candidate) == position.inode:
                        return position
                except FileNotFoundError:
                    continue
        inode = self._open(self.path)
        return None if inode is None else Position(inode, 0)

    def _current_inode(self) -> int | None:
        try:
            return self.path.stat().st_ino
        except FileNotFoundError:
            return None

    def read(self, position: Position) -> Chunk:
        """Up to `max_bytes` of complete lines from `position` (following a rotation once at EOF)."""
        attached = self._attach(position)
        if attached is None or self._fd is None:
            return Chunk([], position)
        offset = attached.offset
        if os.fstat(self._fd).st_size < offset:  # truncated in place (copytruncate)
            offset = 0
        data = os.pread(self._fd, self.max_bytes, offset)
        end = data.rfind(b"\n")
        if end >= 0:
            self._eof_after_rotation = False
            return Chunk(data[:end].split(b"\n"), Position(self._inode, offset + end + 1))
        if len(data) >= self.max_bytes:  # one line longer than a whole read: give it up
            return Chunk([], Position(self._inode, offset + len(data)), dropped=1)
        current = self._current_inode()
        if current is None or current == self._inode:
            return Chunk([], Position(self._inode, offset))
        # Renamed away and a new file in its place. The writer may append to the old file until it
        # reopens its log, so the old one is given one more round before it is left.
        if not self._eof_after_rotation:
            self._eof_after_rotation = True
            return Chunk([], Position(self._inode, offset))
        dropped = 1 if data else 0  # a last line the writer never finished
        self.close()
        inode = self._open(self.path)
        if inode is None:
            return Chunk([], Position(), dropped)
        chunk = self.read(Position(inode, 0))
        return Chunk(chunk.lines, chunk.position, chunk.dropped + dropped)
