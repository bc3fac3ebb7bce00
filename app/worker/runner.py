"""The task runner: claims queued tasks atomically, runs them in a bounded pool, keeps leases.

Several runners (threads or processes) may share one database. Candidates are read in claim
order (priority, then due time, then id: the `ix_tasks_claim` index serves exactly this) and
each is claimed by a conditional UPDATE (`... WHERE id = ? AND state = 'queued'`), so exactly
one runner wins it; a running task carries a lease that its runner's heartbeat renews, and any runner
requeues (or fails, when out of attempts) tasks whose lease expired because their runner
died. Finishing is conditional on still holding the claim, so a runner that lost its
lease cannot overwrite the outcome of the runner that took over.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

from flask import Flask
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.extensions import db
from app.logs.feed import add_task_outcome
from app.metrics.heartbeat import beat
from app.models import Task, TaskEvent
from app.timeutil import utcnow
from app.worker.kinds import FINISH_HOOKS, HANDLERS, TaskCancelled, TaskContext, TaskFailed

log = logging.getLogger(__name__)


class Reporter:
    """Writes events and progress in their own short transactions, apart from the handler's."""

    def event(self, task_id: int, message: str, *, level: str = "info", progress: int | None = None) -> None:
        """Append one event line."""
        with Session(db.engine) as session:
            session.add(TaskEvent(task_id=task_id, message=message[:20000], level=level, progress=progress))
            session.commit()

    def progress(self, task_id: int, percent: int, message: str | None) -> None:
        """Store the task's progress, and an event when there is a message."""
        with Session(db.engine) as session:
            session.execute(update(Task).where(Task.id == task_id).values(progress=percent))
            if message:
                session.add(TaskEvent(task_id=task_id, message=message[:20000], progress=percent))
            session.commit()

    def cancel_requested(self, task_id: int) -> bool:
        """Read the cancel flag fresh from the database."""
        with Session(db.engine) as session:
            return bool(session.scalar(select(Task.cancel_requested).where(Task.id == task_id)))


class Runner:
    """Claims and executes tasks for one worker process."""

    def __init__(self, app: Flask, *, worker_id: str | None = None, concurrency: int | None = None) -> None:
        self.app = app
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.concurrency = concurrency or app.config["WORKER_CONCURRENCY"]
        self.lease = timedelta(seconds=app.config["TASK_LEASE_SECONDS"])
        self.poll_seconds = app.config["TASK_POLL_MS"] / 1000
        self.retry_base = app.config["TASK_RETRY_BASE_SECONDS"]
        self.reporter = Reporter()
        self._pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="slipway-task")
        self._busy = threading.Semaphore(self.concurrency)
        self._running: set[int] = set()
        self._lock = threading.Lock()

    # -- the loop ---------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Claim and run tasks until `stop` is set, then let running tasks finish or release them."""
        heartbeat = threading.Thread(target=self._heartbeat_loop, args=(stop,), daemon=True)
        heartbeat.start()
        while not stop.is_set():
            try:
                claimed = self.run_once()
            except Exception:  # the loop must survive a database outage
                log.exception("task runner round failed")
                claimed = 0
            if not claimed:
                stop.wait(self.poll_seconds * random.uniform(0.8, 1.2))
        self.shutdown(grace_seconds=self.app.config["WORKER_SHUTDOWN_GRACE_SECONDS"])

    def run_once(self) -> int:
        """One round: requeue expired leases, then claim as many tasks as there are free slots."""
        with self.app.app_context():
            self.reclaim_expired()
            claimed = 0
            while self._busy.acquire(blocking=False):
                task_id = self._claim_one()
                if task_id is None:
                    self._busy.release()
                    break
                with self._lock:
                    self._running.add(task_id)
                self._pool.submit(self._execute, task_id)
                claimed += 1
            return claimed

    def shutdown(self, grace_seconds: float) -> None:
        """Stop taking work; wait up to `grace_seconds` for running tasks, then release the rest."""
        deadline = utcnow() + timedelta(seconds=grace_seconds)
        while self._running and utcnow() < deadline:
            threading.Event().wait(0.1)
        with self.app.app_context():
            self.release_own()
        self._pool.shutdown(wait=False, cancel_futures=True)

    # -- claiming ---------------------------------------------------------------------------

    def _claim_one(self) -> int | None:
        now = utcnow()
        candidates = db.session.scalars(
            select(Task.id)
            .where(Task.state == "queued", Task.run_after <= now)
            .order_by(Task.priority, Task.run_after, Task.id)
            .limit(self.concurrency * 2)
        ).all()
        db.session.rollback()  # end the read snapshot before racing for a row
        for task_id in candidates:
            won = db.session.execute(
                update(Task)
                .where(Task.id == task_id, Task.state == "queued")
                .values(
                    state="running",
                    claimed_by=self.worker_id,
                    lease_expires_at=now + self.lease,
                    attempts=Task.attempts + 1,
                    started_at=now,
                )
            ).rowcount
            if won:
                # The attempt's event is written with the claim, in one commit: a worker killed right
                # after claiming still leaves "attempt N" behind for whoever takes the task over.
                attempts, most = db.session.execute(
                    select(Task.attempts, Task.max_attempts).where(Task.id == task_id)).one()
                db.session.add(TaskEvent(task_id=task_id,
                                         message=f"attempt {attempts} of {most} on {self.worker_id}"))
            db.session.commit()
            if won:
                return task_id
        return None

    def reclaim_expired(self) -> int:
        """Requeue running tasks whose runner stopped renewing their lease; fail those out of tries."""
        now = utcnow()
        expired = db.session.execute(
            select(Task.id, Task.attempts, Task.max_attempts, Task.claimed_by).where(
                Task.state == "running", Task.lease_expires_at < now
            )
        ).all()
        count = 0
        for task_id, attempts, max_attempts, owner in expired:
            exhausted = attempts >= max_attempts
            values: dict[str, Any] = {"claimed_by": None, "lease_expires_at": None}
            if exhausted:
                values.update(state="failed", finished_at=now, active_lock=None,
                              message="the worker running it stopped and no attempts are left")
            else:
                values.update(state="queued", run_after=now)
            done = db.session.execute(
                update(Task).where(Task.id == task_id, Task.state == "running",
                                   Task.claimed_by == owner).values(**values)
            ).rowcount
            if done:
                count += 1
                db.session.add(TaskEvent(task_id=task_id, level="warning",
                                         message=f"lease of worker {owner} expired; "
                                         + ("giving up" if exhausted else "requeued")))
                if exhausted:  # ends like any failed task: its outcome entry and its finish hooks (mail)
                    add_task_outcome(db.session.get(Task, task_id), "failed", values["message"])
                    self._run_finish_hooks(task_id, "failed")
        db.session.commit()
        return count

    def release_own(self) -> None:
        """Put this runner's unfinished tasks back in the queue (clean shutdown)."""
        rows = db.session.scalars(
            select(Task.id).where(Task.state == "running", Task.claimed_by == self.worker_id)
        ).all()
        for task_id in rows:
            db.session.execute(
                update(Task).where(Task.id == task_id, Task.claimed_by == self.worker_id)
                .values(state="queued", claimed_by=None, lease_expires_at=None, run_after=utcnow(),
                        attempts=Task.attempts - 1)
            )
            db.session.add(TaskEvent(task_id=task_id, level="warning",
                                     message="worker shutting down; task released"))
        db.session.commit()

    def _heartbeat_loop(self, stop: threading.Event) -> None:
        interval = max(self.lease.total_seconds() / 3, 0.2)
        while True:
            try:
                with self.app.app_context():
                    self.renew_leases()
                    beat("runner", self.worker_id)  # /health/ready and /metrics read it
            except Exception:  # a missed beat is retried next interval
                log.exception("lease heartbeat failed")
            if stop.wait(interval):
                return

    def renew_leases(self) -> None:
        """Extend the lease of every task this runner is executing."""
        db.session.execute(
            update(Task)
            .where(Task.claimed_by == self.worker_id, Task.state == "running")
            .values(lease_expires_at=utcnow() + self.lease)
        )
        db.session.commit()

    # -- executing --------------------------------------------------------------------------

    def _execute(self, task_id: int) -> None:
        try:
            with self.app.app_context():
                self._execute_in_context(task_id)
        except Exception:  # boundary: the pool thread must never die silently
            log.exception("task %s crashed the runner", task_id)
        finally:
            with self._lock:
                self._running.discard(task_id)
            self._busy.release()

    def _execute_in_context(self, task_id: int) -> None:
        task = db.session.get(Task, task_id)
        kind = HANDLERS.get(task.kind)
        if kind is None:
            self._finish(task_id, "failed", f"no handler for task kind {task.kind!r}")
            return
        context = TaskContext(self.app, task, self.reporter)
        try:
            context.check_cancelled()
            result = kind.handler(context)
        except TaskCancelled as exc:
            db.session.rollback()
            self._finish(task_id, "cancelled", str(exc))
        except TaskFailed as exc:
            db.session.rollback()
            self._finish(task_id, "failed", str(exc))
        except Exception as exc:  # boundary: any other error is transient and retried
            db.session.rollback()
            log.warning("task %s (%s) failed: %s", task_id, task.kind, exc)
            self._retry_or_fail(task_id, f"{type(exc).__name__}: {exc}")
        else:
            db.session.rollback()
            self._finish(task_id, "succeeded", "done", result=result)

    def _finish(self, task_id: int, state: str, message: str, result: dict | None = None) -> None:
        values: dict[str, Any] = {
            "state": state, "message": message[:1000], "finished_at": utcnow(),
            "active_lock": None, "lease_expires_at": None,
        }
        if state == "succeeded":
            values["progress"] = 100
        if result is not None:
            values["result"] = result
        held = db.session.execute(
            update(Task).where(Task.id == task_id, Task.claimed_by == self.worker_id,
                               Task.state == "running").values(**values)
        ).rowcount
        if held:
            db.session.add(TaskEvent(task_id=task_id, level="error" if state == "failed" else "info",
                                     message=f"{state}: {message}"))
            add_task_outcome(db.session.get(Task, task_id), state, message)
            self._run_finish_hooks(task_id, state)
        db.session.commit()

    def _run_finish_hooks(self, task_id: int, state: str) -> None:
        task = db.session.get(Task, task_id)
        for hook in FINISH_HOOKS:
            try:
                with db.session.begin_nested():
                    hook(task, state)
            except Exception:  # boundary: a hook (e.g. queueing a mail) must never keep a task unfinished
                log.exception("finish hook %s failed for task %s", getattr(hook, "__name__", hook), task_id)

    def _retry_or_fail(self, task_id: int, message: str) -> None:
        task = db.session.get(Task, task_id)
        if task.attempts >= task.max_attempts:
            self._finish(task_id, "failed", message)
            return
        delay = self.retry_base * (2 ** (task.attempts - 1)) * random.uniform(0.5, 1.5)
        held = db.session.execute(
            update(Task).where(Task.id == task_id, Task.claimed_by == self.worker_id,
                               Task.state == "running")
            .values(state="queued", claimed_by=None, lease_expires_at=None, message=message[:1000],
                    run_after=utcnow() + timedelta(seconds=delay))
        ).rowcount
        if held:
            db.session.add(TaskEvent(task_id=task_id, level="warning",
                                     message=f"{message}; retrying in {delay:.1f}s"))
        db.session.commit()
