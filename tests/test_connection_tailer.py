"""The access-log tailer on its own: partial lines, rotation mid-read, truncation, restart from a position."""

from __future__ import annotations

import os
from pathlib import Path

from app.connections.tailer import Position, Tailer


def _append(path: Path, text: str) -> None:
    with open(path, "ab") as handle:
        handle.write(text.encode())


def _drain(tailer: Tailer, position: Position, rounds: int = 20) -> tuple[list[bytes], Position, int]:
    """Read until two reads in a row bring nothing (bounded); all lines, the final position, drops."""
    lines: list[bytes] = []
    dropped = 0
    quiet = 0
    for _ in range(rounds):
        chunk = tailer.read(position)
        lines += chunk.lines
        dropped += chunk.dropped
        quiet = quiet + 1 if not chunk.lines and chunk.position == position else 0
        position = chunk.position
        if quiet >= 2:
            break
    return lines, position, dropped


def test_a_partial_last_line_waits_for_its_newline(tmp_path: Path) -> None:
    log = tmp_path / "access.json"
    _append(log, "one\ntwo\nthr")
    tailer = Tailer(log)
    chunk = tailer.read(Position())
    assert chunk.lines == [b"one", b"two"]
    assert chunk.position.offset == len(b"one\ntwo\n")
    assert tailer.read(chunk.position).lines == []
    _append(log, "ee\n")
    assert tailer.read(chunk.position).lines == [b"three"]


def test_small_reads_never_split_or_repeat_a_line(tmp_path: Path) -> None:
    log = tmp_path / "access.json"
    expected = [f"line {n:04d}".encode() for n in range(300)]
    _append(log, "".join(line.decode() + "\n" for line in expected))
    lines, position, dropped = _drain(Tailer(log, max_bytes=64), Position(), rounds=1000)
    assert lines == expected and dropped == 0
    assert position.offset == log.stat().st_size


def test_a_line_longer_than_a_read_is_dropped_and_counted(tmp_path: Path) -> None:
    log = tmp_path / "access.json"
    _append(log, "x" * 100 + "\nafter\n")
    lines, _, dropped = _drain(Tailer(log, max_bytes=64), Position())
    assert dropped == 1
    assert lines[-1] == b"after"


def test_rotation_mid_read_finishes_the_old_file_then_starts_the_new_one(tmp_path: Path) -> None:
    log = tmp_path / "access.json"
    old = [f"old {n}".encode() for n in range(50)]
    _append(log, "".join(line.decode() + "\n" for line in old))
    tailer = Tailer(log, max_bytes=40)
    first = tailer.read(Position())
    assert 0 < len(first.lines) < len(old)  # part of the old file read
    os.rename(log, tmp_path / "access.json.1")  # logrotate renames; the writer still appends to the old file
    _append(tmp_path / "access.json.1", "old late\n")
    _append(log, "new 0\nnew 1\n")
    rest, position, dropped = _drain(tailer, first.position, rounds=200)
    assert first.lines + rest == [*old, b"old late", b"new 0", b"new 1"]
    assert dropped == 0
    assert position.inode == log.stat().st_ino


def test_restart_after_a_rotation_finishes_the_rotated_file_first(tmp_path: Path) -> None:
    log = tmp_path / "access.json"
    _append(log, "a\nb\nc\n")
    chunk = Tailer(log).read(Position())
    assert chunk.lines == [b"a", b"b", b"c"]
    _append(log, "d\n")
    os.rename(log, tmp_path / "access.json.1")
    _append(log, "e\n")
    fresh = Tailer(log)  # a new worker process: only the stored position survives
    lines, _, _ = _drain(fresh, chunk.position)
    assert lines == [b"d", b"e"]


def test_restart_resumes_from_the_stored_position_without_duplicates(tmp_path: Path) -> None:
    log = tmp_path / "access.json"
    _append(log, "1\n2\n")
    position = Tailer(log).read(Position()).position
    _append(log, "3\n")
    assert Tailer(log).read(position).lines == [b"3"]


def test_truncation_starts_again_at_zero(tmp_path: Path) -> None:
    log = tmp_path / "access.json"
    _append(log, "first line\nsecond line\n")
    tailer = Tailer(log)
    position = tailer.read(Position()).position
    with open(log, "wb") as handle:  # copytruncate
        handle.write(b"z\n")
    assert tailer.read(position).lines == [b"z"]


def test_a_missing_file_reads_nothing(tmp_path: Path) -> None:
    chunk = Tailer(tmp_path / "absent.json").read(Position())
    assert chunk.lines == [] and chunk.position == Position()


def test_lines_the_writer_adds_to_the_old_file_before_reopening_are_not_lost(tmp_path: Path) -> None:
    log = tmp_path / "access.json"
    _append(log, "a\n")
    tailer = Tailer(log)
    position = tailer.read(Position()).position
    os.rename(log, tmp_path / "access.json.1")
    _append(log, "new\n")
    first = tailer.read(position)  # the old file's end, the new file present: one more round for the old
    assert first.lines == []
    _append(tmp_path / "access.json.1", "late\n")  # nginx writes here until it gets USR1
    lines, _, dropped = _drain(tailer, first.position)
    assert lines == [b"late", b"new"] and dropped == 0
