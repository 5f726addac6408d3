"""What the engine knows about its own work: each sync's live status, each task's state.

:class:`SyncHealth` is a running sync's status (its source's, plus the engine's counters);
the API renders it as a sync's ``health`` block (:mod:`upsync.api.sync_health`).

:class:`TaskHealth` is the state of one supervised task (a managed consumer, the sync runner,
the consumer supervisor): ``running``, ``retrying`` after a transient error, or ``stopped``
after an error that retrying cannot fix (see :mod:`upsync.engine.supervision`). The engine keeps
them in a :class:`TaskBoard`, which ``/healthz`` shows.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Literal

from upsync.redact import redact
from upsync.sources.stripe.source import SourceStatus

__all__ = ["SyncHealth", "TaskBoard", "TaskHealth", "TaskState"]


@dataclass
class SyncHealth(SourceStatus):
    """A source's status plus what the engine counts around it.

    Assigning a non-empty ``last_error`` (the source does so on each failed poll) also counts
    an error and stamps ``last_error_at``, so a failure between two scrapes is not missed even
    though the next good poll clears ``last_error``.
    """

    errors: int = 0
    last_error_at: float | None = None
    restarts: int = 0
    webhooks_accepted: int = 0
    webhooks_refused: int = 0
    stopped: bool = False
    """the sync could not be started or failed for good: it is not retried until its
    configuration changes (``last_error`` says why)"""

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "last_error" and value:
            object.__setattr__(self, "errors", getattr(self, "errors", 0) + 1)
            object.__setattr__(self, "last_error_at", time.time())
        object.__setattr__(self, name, value)


TaskState = Literal["running", "retrying", "stopped"]


@dataclass
class TaskHealth:
    """One supervised task: its state, consecutive failures and last error (redacted)."""

    name: str
    state: TaskState = "running"
    failures: int = 0
    last_error: str | None = None
    since: float = field(default_factory=time.time)
    """when the task entered its current state"""

    def ok(self) -> None:
        """The task did a round of work without error."""
        if self.state != "running" or self.failures:
            self._enter("running")
            self.failures = 0
            self.last_error = None

    def retrying(self, error: BaseException) -> None:
        """A transient error: the task waits and tries again."""
        self.failures += 1
        self.last_error = _describe(error)
        if self.state != "retrying":
            self._enter("retrying")

    def stop(self, error: BaseException | str) -> None:
        """An error retrying cannot fix: the task has stopped."""
        self.failures += 1
        self.last_error = error if isinstance(error, str) else _describe(error)
        self._enter("stopped")

    def _enter(self, state: TaskState) -> None:
        self.state = state
        self.since = time.time()

    def to_dict(self) -> dict[str, Any]:
        """JSON form, for ``/healthz``."""
        return {
            "task": self.name,
            "state": self.state,
            "failures": self.failures,
            "last_error": self.last_error,
            "since": self.since,
        }


class TaskBoard:
    """The engine's tasks by name; a task that ends is removed by its owner."""

    def __init__(self) -> None:
        self._tasks: dict[str, TaskHealth] = {}

    def task(self, name: str) -> TaskHealth:
        """The health of task ``name``, created as ``running`` on first use."""
        return self._tasks.setdefault(name, TaskHealth(name))

    def forget(self, name: str) -> None:
        """Drop a task that no longer exists (a deleted consumer)."""
        self._tasks.pop(name, None)

    def all(self) -> list[TaskHealth]:
        """Every known task, by name."""
        return [self._tasks[k] for k in sorted(self._tasks)]

    def troubled(self) -> list[TaskHealth]:
        """Tasks that are retrying or stopped."""
        return [t for t in self.all() if t.state != "running"]


def _describe(error: BaseException) -> str:
    return redact(f"{type(error).__name__}: {error}")
