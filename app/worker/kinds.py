"""The task contract: kinds are functions registered by name, run with a `TaskContext`.

A handler is `def handler(ctx: TaskContext) -> dict | None`. It must be idempotent:
a retry after a crash or a dead agent runs it again from the start. It reports with
`ctx.log()` and `ctx.progress()`, checks `ctx.cancelled()` between long steps, and
ends by returning (success; a returned dict is stored as the task's result), raising
`TaskFailed` (permanent failure, no retry) or raising anything else (a transient
failure: retried with exponential backoff until `max_attempts`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from flask import Flask

from app.models import Task
from app.models.task import PRIORITY_BACKGROUND, PRIORITY_INTERACTIVE, PRIORITY_NORMAL

__all__ = ["PRIORITY_BACKGROUND", "PRIORITY_INTERACTIVE", "PRIORITY_NORMAL", "TaskContext", "TaskFailed",
           "TaskCancelled", "TaskKind", "task_kind", "HANDLERS", "readable", "FINISH_HOOKS", "on_finish"]


def readable(value: Any) -> str:
    """A value as a person reads it in a log line: `{"vscode": 1}` → "vscode 1", lists joined by commas."""
    if isinstance(value, Mapping):
        return ", ".join(f"{key} {readable(item)}" for key, item in value.items()) or "none"
    if isinstance(value, (list, tuple, set, frozenset)):
        return ", ".join(readable(item) for item in value) or "none"
    return str(value)


class TaskFailed(Exception):  # noqa: N818 - reads as an outcome, like StopIteration
    """Raised by a handler to fail its task for good; the message is shown to the user."""


class TaskCancelled(Exception):  # noqa: N818
    """Raised inside a handler (by `TaskContext.check_cancelled`) when cancel was requested."""


@dataclass(frozen=True)
class TaskKind:
    """A registered kind: its handler, how often it may be attempted, and its claim priority."""

    name: str
    handler: Callable[[Any], dict[str, Any] | None]
    max_attempts: int
    priority: int = PRIORITY_NORMAL


HANDLERS: dict[str, TaskKind] = {}
# Called as hook(task, state) when a task ends, inside the commit that records its end.
FINISH_HOOKS: list[Callable[[Task, str], None]] = []


def on_finish(fn: Callable[[Task, str], None]) -> Callable[[Task, str], None]:
    """Register `fn` to run whenever a task ends (succeeded, failed or cancelled)."""
    if fn not in FINISH_HOOKS:
        FINISH_HOOKS.append(fn)
    return fn


def task_kind(
    name: str, *, max_attempts: int = 3, priority: int = PRIORITY_NORMAL
) -> Callable[[Callable], Callable]:
    """Register the decorated function as the handler of tasks of kind `name`.

    `priority` orders the claim (lower first): `PRIORITY_INTERACTIVE` for work someone waits
    for, `PRIORITY_BACKGROUND` for work nobody watches.
    """

    def register(fn: Callable) -> Callable:
        if name in HANDLERS and HANDLERS[name].handler is not fn:
            raise ValueError(f"task kind {name!r} registered twice")
        HANDLERS[name] = TaskKind(name, fn, max_attempts, priority)
        return fn

    return register


class TaskContext:
    """What a handler gets: its task row (read-only by convention), the app, and reporting."""

    def __init__(self, app: Flask, task: Task, reporter: Any) -> None:
        self.app = app
        self.task = task
        self.payload: dict[str, Any] = dict(task.payload or {})
        self._reporter = reporter

    def log(self, message: str, level: str = "info") -> None:
        """Append a log line to the task (committed at once, so streams see it)."""
        self._reporter.event(self.task.id, message, level=level)

    def progress(self, percent: int, message: str | None = None) -> None:
        """Record progress 0-100, with an optional log line."""
        self._reporter.progress(self.task.id, max(0, min(100, int(percent))), message)

    def cancelled(self) -> bool:
        """True when someone asked to cancel this task."""
        return self._reporter.cancel_requested(self.task.id)

    def check_cancelled(self) -> None:
        """Raise `TaskCancelled` when a cancel was requested."""
        if self.cancelled():
            raise TaskCancelled("cancelled on request")
