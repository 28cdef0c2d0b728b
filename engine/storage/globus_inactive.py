"""How long each Globus task has sat INACTIVE.

Transfer marks a task INACTIVE when it cannot go on without help (an endpoint down, expired
credentials, a pause rule); such a task would wait for its deadline. `GlobusMover` cancels one
that stays INACTIVE for longer than its grace and fails it, so its scans are planned again. The
clock starts at the first poll that sees the task INACTIVE and stops at the first that does not.
"""

from __future__ import annotations

import threading
from datetime import datetime


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
