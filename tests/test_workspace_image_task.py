"""The first-run workspace image build: a task that runs the build script and streams its lines."""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import Task, TaskEvent
from app.services import task_queue
from app.services.default_image import TEST_IMAGE, default_workspace_image
from app.worker import workspace_image
from app.worker.runner import Runner
from tests.support import require_service, run_tasks

FAKE_BUILD = """#!/usr/bin/env bash
# Stands in for build-workspace-image.sh: a line on stdout, "docker build" lines in the log.
set -eu
echo "building $WORKSPACE_IMAGE (fake)"
for step in 1 2 3 4; do
  echo "Step $step/4 : RUN something $step" >>"$SLIPWAY_IMAGE_LOG"
  echo " ---> layer $step" >>"$SLIPWAY_IMAGE_LOG"
done
[ -z "${FAIL:-}" ] || { echo "pip: network unreachable" >&2; exit 3; }
[ -z "${HANG:-}" ] || sleep 60
echo "built $WORKSPACE_IMAGE (log in $SLIPWAY_IMAGE_LOG)"
"""


@pytest.fixture
def fake_script(tmp_path, monkeypatch):
    """The build script replaced by FAKE_BUILD; set FAIL or HANG in the environment to vary it."""
    script = tmp_path / "build.sh"
    script.write_text(FAKE_BUILD)
    monkeypatch.setattr(workspace_image, "BUILD_SCRIPT", script)
    return script


def events_of(app, task_id):
    """[(message, progress)] of a task."""
    with app.app_context():
        rows = db.session.execute(select(TaskEvent.message, TaskEvent.progress)
                                  .where(TaskEvent.task_id == task_id).order_by(TaskEvent.id)).all()
        return [tuple(row) for row in rows]


def test_first_run_queues_one_build_and_the_default_turns_real_when_it_succeeds(app, runner, fake_script):
    with app.app_context():
        assert default_workspace_image().ref == TEST_IMAGE
    result = runner.invoke(args=["build-workspace-image", "--if-missing"])
    assert "queued task #" in result.output, result.output
    again = runner.invoke(args=["build-workspace-image", "--if-missing"])
    assert "already queued or running" in again.output
    with app.app_context():
        default = default_workspace_image()
        assert default.is_test and "test image" in default.label and "being built" in default.label
    [task] = run_tasks(app)
    assert task.kind == "build_workspace_image" and task.state == "succeeded", task.message
    assert task.result["image"] == "slipway/workspace:latest" and task.progress == 100
    events = events_of(app, task.id)
    messages = [message for message, _ in events]
    assert "building slipway/workspace:latest (fake)" in messages
    assert " ---> layer 2" in messages
    assert any(m.startswith("built slipway/workspace:latest") for m in messages)
    steps = [(m, p) for m, p in events if m.startswith("Step ")]
    assert steps == [("Step 1/4 : RUN something 1", 5), ("Step 2/4 : RUN something 2", 27),
                     ("Step 3/4 : RUN something 3", 50), ("Step 4/4 : RUN something 4", 72)]
    with app.app_context():
        default = default_workspace_image()
        assert (default.ref, default.is_test) == ("slipway/workspace:latest", False)
    assert "was built before" in runner.invoke(args=["build-workspace-image", "--if-missing"]).output


def test_a_failed_build_fails_the_task_with_the_last_lines(app, runner, fake_script, monkeypatch):
    monkeypatch.setenv("FAIL", "1")
    runner.invoke(args=["build-workspace-image", "--if-missing"])
    [task] = run_tasks(app)
    assert task.state == "failed" and "exited with 3" in task.message
    assert "pip: network unreachable" in task.message
    with app.app_context():
        assert default_workspace_image().ref == TEST_IMAGE


def test_cancel_stops_the_build_process(app, runner, fake_script, monkeypatch):
    monkeypatch.setenv("HANG", "1")
    runner.invoke(args=["build-workspace-image"])
    with app.app_context():
        task_id = db.session.scalar(select(Task.id))
    worker = Runner(app, worker_id="build-runner", concurrency=1)
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,), daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not any(m.startswith("Step 4/4") for m, _ in events_of(app, task_id)):
            assert time.monotonic() < deadline, events_of(app, task_id)
            time.sleep(0.1)
        with app.app_context():
            task_queue.cancel(db.session.get(Task, task_id), "admin")
            db.session.commit()
        deadline = time.monotonic() + 20
        while True:
            with app.app_context():
                state = db.session.get(Task, task_id).state
            if state != "running" or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert state == "cancelled"
        sleeping = subprocess.run(["pgrep", "-f", str(fake_script)], capture_output=True, text=True)
        assert sleeping.stdout == ""  # the script (and its sleep) was stopped, not left behind
    finally:
        stop.set()
        thread.join(10)


@pytest.mark.integration
def test_the_real_script_runs_as_a_task_against_real_docker(app, runner):
    docker_up = shutil.which("docker") is not None and subprocess.run(
        ["docker", "image", "inspect", "slipway/workspace:latest"], capture_output=True).returncode == 0
    require_service("Docker with slipway/workspace:latest", docker_up)
    assert Path(workspace_image.BUILD_SCRIPT).is_file()
    runner.invoke(args=["build-workspace-image", "--if-missing"])
    # the image is there from the test stack's build, so the script reports it up to date and stops
    [task] = run_tasks(app, timeout=120)
    assert task.state == "succeeded", task.message
    assert "slipway/workspace:latest is up to date" in [m for m, _ in events_of(app, task.id)]
