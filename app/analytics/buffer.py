"""The per-process buffer of request rows and the background thread that writes it in batches.

A request only appends to a deque (no lock, no I/O); when the buffer is full the row is
dropped and counted, so a slow database can never make a request wait. The flusher writes
every `ANALYTICS_FLUSH_SECONDS` or as soon as `ANALYTICS_BATCH_ROWS` rows wait, with one
executemany per batch, inside its own app context. At process exit what is left is written.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
from collections import deque
from typing import Any

from flask import Flask
from sqlalchemy import insert
from sqlalchemy.exc import SQLAlchemyError

from app.extensions import db
from app.metrics.registry import ANALYTICS_OVERFLOWS
from app.models import RequestLog

log = logging.getLogger(__name__)

# Rows dropped because a buffer was full, over every buffer of this process (the traffic page
# shows it; the metrics exporter reads it).
overflowed = 0
# Rows lost because the database refused a batch (logged each time).
failed = 0
_count_lock = threading.Lock()


def _count_overflow() -> None:
    global overflowed
    with _count_lock:
        overflowed += 1
    ANALYTICS_OVERFLOWS.inc()


def _count_failed(rows: int) -> None:
    global failed
    with _count_lock:
        failed += rows


class RequestBuffer:
    """A bounded queue of row dicts plus the flusher thread that drains it into `request_logs`."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.max_rows: int = app.config["ANALYTICS_BUFFER_MAX"]
        self.batch_rows: int = app.config["ANALYTICS_BATCH_ROWS"]
        self.interval: float = app.config["ANALYTICS_FLUSH_SECONDS"]
        self.rows: deque[dict[str, Any]] = deque()
        self.written = 0
        self.overflowed = 0
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._flush_lock = threading.Lock()  # the flusher and the exit flush never write the same rows twice
        self._thread: threading.Thread | None = None
        self._pid: int | None = None
        self._exit_hook = False
        self._start_lock = threading.Lock()

    def add(self, row: dict[str, Any]) -> None:
        """Queue one row without blocking; a full buffer drops it and counts the overflow."""
        if len(self.rows) >= self.max_rows:
            self.overflowed += 1
            _count_overflow()
            return
        self.rows.append(row)
        if self._pid != os.getpid():
            self._start()
        if len(self.rows) >= self.batch_rows:
            self._wake.set()

    def _start(self) -> None:
        # Started on first use, not in the factory; a forked worker (gunicorn --preload) starts its own.
        with self._start_lock:
            if self._pid == os.getpid():
                return
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="slipway-analytics-flush", daemon=True)
            self._thread.start()
            if not self._exit_hook:
                atexit.register(self.stop)
                self._exit_hook = True
            self._pid = os.getpid()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.interval)
            self._wake.clear()
            self.flush()

    def _take(self) -> list[dict[str, Any]]:
        batch: list[dict[str, Any]] = []
        for _ in range(min(self.batch_rows, len(self.rows))):
            try:
                batch.append(self.rows.popleft())
            except IndexError:
                break
        return batch

    def flush(self) -> int:
        """Write everything buffered now, batch by batch; returns the rows written."""
        written = 0
        with self._flush_lock:
            while batch := self._take():
                try:
                    with self.app.app_context():
                        db.session.execute(insert(RequestLog), batch)
                        db.session.commit()
                except SQLAlchemyError:  # boundary: a database outage must not end the flusher
                    _count_failed(len(batch))
                    log.exception("could not write %d request analytics rows", len(batch))
                    break  # try the rest on the next round
                written += len(batch)
                self.written += len(batch)
        return written

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the flusher thread and write what is left (also run at process exit)."""
        self._stop.set()
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        self._pid = None  # a later row starts a new flusher
        self.flush()
