"""How long each Globus task has sat INACTIVE, kept where a restart finds it.

Transfer marks a task INACTIVE when it cannot go on without help (an endpoint down, expired
credentials, a pause rule); such a task would wait for its deadline. `GlobusMover` cancels one
that stays INACTIVE for longer than its grace and fails it, so its scans are planned again. The
clock starts at the first poll that sees the task INACTIVE and stops at the first that does not.

The moment it started is written on the task's row in the state store (`tasks.inactive_since`)
once the reconciler attaches the store (`GlobusMover.attach`), so a service restarted while a
task waits, and every `--reconcile --once` pass, counts from the same moment: a task INACTIVE
for over its grace is given up whether or not the process was replaced meanwhile. A task with
no row to write on (a mover used on its own, a read-only store) is timed in memory.
"""

from __future__ import annotations

import threading
from datetime import datetime
from typing import Protocol


class InactiveRecords(Protocol):
    """Where a task's INACTIVE clock outlives a process (the state store's tasks)."""

    readonly: bool

    def task_inactive_since(self, task_id: str) -> datetime | None: ...

    def set_task_inactive_since(self, task_id: str, since: datetime | None) -> bool: ...


class InactiveClocks:
    """Since when each task has been seen INACTIVE, in this process's memory."""

    def __init__(self) -> None:
        self._since: dict[str, datetime] = {}
        self._lock = threading.Lock()

    def start(self, task_id: str, now: datetime) -> datetime:
        """The task is INACTIVE at `now`: since when it has been (`now` if it was not)."""
        with self._lock:
            return self._since.setdefault(task_id, now)

    def stop(self, task_id: str) -> None:
        """The task is no longer INACTIVE (it runs again, or it ended)."""
        with self._lock:
            self._since.pop(task_id, None)


class StoredInactiveClocks(InactiveClocks):
    """The clocks on the tasks' rows in the state store; memory for a task without a row.

    Args:
        records: the state store (read-only: nothing is written, memory only).
    """

    def __init__(self, records: InactiveRecords) -> None:
        super().__init__()
        self._records = records

    def start(self, task_id: str, now: datetime) -> datetime:
        if self._records.readonly:
            return super().start(task_id, now)
        since = self._records.task_inactive_since(task_id)
        if since is not None:
            return since
        if self._records.set_task_inactive_since(task_id, now):
            return now
        return super().start(task_id, now)

    def stop(self, task_id: str) -> None:
        super().stop(task_id)
        if self._records.readonly:
            return
        # Read first: most polls find a running task, and a write per poll would be wasted.
        if self._records.task_inactive_since(task_id) is not None:
            self._records.set_task_inactive_since(task_id, None)
