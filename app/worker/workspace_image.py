"""Task kind `build_workspace_image`: build the real workspace image on this host, as a task.

`make run` queues it on first run (`flask build-workspace-image --if-missing`), so a newcomer's
first workspace can be the real one (VS Code and JupyterLab) instead of the test image. The
task runs docker/images/build-workspace-image.sh, which skips the build when the image is up
to date, and turns its output and the `docker build` log into task events, with progress from
the build's "Step N/M" lines. It runs where the worker runs: the local Docker of `make run`.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import IO, Any

import click
from flask.cli import with_appcontext
from sqlalchemy import select

from app.extensions import db
from app.models import ArchivedTask, Task
from app.services import task_queue
from app.worker.kinds import PRIORITY_BACKGROUND, TaskCancelled, TaskContext, TaskFailed, task_kind

KIND = "build_workspace_image"
LOCK_KEY = "workspace-image:build"
REAL_IMAGE = "slipway/workspace:latest"
BUILD_SCRIPT = Path(__file__).resolve().parents[2] / "docker" / "images" / "build-workspace-image.sh"
BUILD_TIMEOUT_SECONDS = 3600
MAX_LOGGED_LINES = 3000  # a build prints thousands of pip/npm lines; the rest stay in the log file
STEP_RE = re.compile(r"^Step (\d+)/(\d+) :")


def _progress_of(line: str) -> int | None:
    """Percent done for a `docker build` "Step N/M" line (5-95: the script's own work is the rest)."""
    match = STEP_RE.match(line)
    if not match:
        return None
    step, total = int(match.group(1)), max(int(match.group(2)), 1)
    return 5 + 90 * (step - 1) // total


class _Lines:
    """Lines from the script's output and the growing build log, in the order they were written."""

    def __init__(self, log_path: Path) -> None:
        self.log_path = log_path
        self.position = 0
        self.lines: list[tuple[str, str]] = []
        self.lock = threading.Lock()

    def tail_log(self) -> None:
        """Queue the build log's complete new lines."""
        with self.lock:
            try:
                with self.log_path.open("r", encoding="utf-8", errors="replace") as handle:
                    handle.seek(self.position)
                    while (line := handle.readline()).endswith("\n"):
                        self.lines.append(("build", line.rstrip("\r\n")))
                        self.position = handle.tell()
            except FileNotFoundError:
                pass

    def add_script_line(self, line: str) -> None:
        """Queue one line of the script's output, after the log lines written before it."""
        self.tail_log()
        with self.lock:
            self.lines.append(("script", line.rstrip("\r\n")))

    def take(self) -> list[tuple[str, str]]:
        """Every line queued since the last call."""
        self.tail_log()
        with self.lock:
            lines, self.lines = self.lines, []
        return lines


def _read_pipe(pipe: IO[str], sink: _Lines) -> None:
    for line in pipe:
        sink.add_script_line(line)


@task_kind(KIND, max_attempts=1, priority=PRIORITY_BACKGROUND)
def build_workspace_image(ctx: TaskContext) -> dict[str, Any]:
    """Run the workspace image build script, streaming its lines as events, until it ends."""
    if not BUILD_SCRIPT.is_file():
        raise TaskFailed(f"the build script is missing: {BUILD_SCRIPT}")
    ctx.progress(1, f"building {REAL_IMAGE} on this host (the first build takes about 8 minutes)")
    # The full build log stays in the data directory (the task keeps the first lines only).
    log_path = Path(ctx.app.config["DATA_DIR"]) / "workspace-image-build.log"
    log_path.write_text("")
    env = {**os.environ, "SLIPWAY_IMAGE_LOG": str(log_path), "WORKSPACE_IMAGE": REAL_IMAGE}
    process = subprocess.Popen(  # noqa: S603 - a fixed script from this repository, no user input
        ["/bin/bash", str(BUILD_SCRIPT)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL, text=True, env=env, start_new_session=True,
    )
    sink = _Lines(log_path)
    reader = threading.Thread(target=_read_pipe, args=(process.stdout, sink), daemon=True)
    reader.start()
    started, logged, tail_lines = time.monotonic(), 0, []
    try:
        while True:
            finished = process.poll() is not None
            if finished:
                reader.join(5)
            for source, line in sink.take():
                if source == "script":  # on failure the script prints the log's end itself
                    tail_lines = (tail_lines + [line])[-3:]
                percent = _progress_of(line) if source == "build" else None
                if percent is not None:
                    ctx.progress(percent, line)
                elif logged < MAX_LOGGED_LINES and line.strip():
                    ctx.log(line)
                logged += 1
            if finished:
                break
            if ctx.cancelled():
                raise TaskCancelled("cancelled on request; the build was stopped")
            if time.monotonic() - started > BUILD_TIMEOUT_SECONDS:
                raise TaskFailed(f"the build took longer than {BUILD_TIMEOUT_SECONDS // 60} minutes")
            time.sleep(0.5)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)
    if logged > MAX_LOGGED_LINES:
        ctx.log(f"{logged - MAX_LOGGED_LINES} more build lines were not stored")
    seconds = round(time.monotonic() - started)
    if process.returncode != 0:
        raise TaskFailed(f"the build script exited with {process.returncode}: {' / '.join(tail_lines)}")
    ctx.progress(100, f"{REAL_IMAGE} is ready after {seconds} s; new workspaces get it by default")
    return {"image": REAL_IMAGE, "seconds": seconds}


def last_build() -> Task | ArchivedTask | None:
    """The newest workspace image build task, in flight or finished (archived ones too)."""
    task = db.session.scalar(select(Task).where(Task.kind == KIND).order_by(Task.id.desc()).limit(1))
    if task is None:
        task = db.session.scalar(
            select(ArchivedTask).where(ArchivedTask.kind == KIND).order_by(ArchivedTask.id.desc()).limit(1)
        )
    return task


def real_image_built() -> bool:
    """True once a workspace image build task has succeeded (the hot table or the archive)."""
    for model in (Task, ArchivedTask):
        if db.session.scalar(select(model.id).where(model.kind == KIND, model.state == "succeeded").limit(1)):
            return True
    return False


@click.command("build-workspace-image")
@click.option("--if-missing", is_flag=True, help="Do nothing when a build succeeded before or is in flight.")
@with_appcontext
def build_workspace_image_command(if_missing: bool) -> None:
    """Queue a build of the real workspace image (the worker runs it; follow it on the task page)."""
    if if_missing and real_image_built():
        click.echo(f"{REAL_IMAGE} was built before")
        return
    try:
        task = task_queue.enqueue(KIND, target=f"image:{REAL_IMAGE}", requested_by=None, lock_key=LOCK_KEY)
    except task_queue.TaskConflict as exc:
        click.echo(f"a build of {REAL_IMAGE} is already queued or running ({exc})")
        return
    db.session.commit()
    click.echo(f"queued task #{task.id}: building {REAL_IMAGE} in the background (see /tasks/{task.id})")
