"""`--reconcile --once` drains the tasks run in its own process before it exits; a task whose
poll raises is not waited for until the drain's hour is up. Found by the adversary round on
restores (a judgement that raised at every poll kept `--once` waiting): the pass logs the
error, leaves the task open for the next pass, and ends.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from engine.backends import build_backends
from engine.clock import FakeClock
from engine.reconciler import Reconciler
from engine.state import OPEN_TASK_STATES, StateStore
from engine.storage.base import TaskRequest, TaskStatus
from engine.workspace import create_workspace


class PollRaises:
    """The local mover, except that polling a copy raises (a bug, a judgement that fails)."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.copies: set[str] = set()
        self.polls = 0

    def submit(self, request: TaskRequest) -> str:
        task_id = str(self._inner.submit(request))
        if request.kind == "copy":
            self.copies.add(task_id)
        return task_id

    def poll(self, task_id: str) -> TaskStatus:
        if task_id in self.copies:
            self.polls += 1
            raise RuntimeError("cannot judge this task")
        return self._inner.poll(task_id)  # type: ignore[no-any-return]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def test_a_drain_does_not_wait_for_a_task_whose_poll_raises(tmp_path: Path) -> None:
    ws = create_workspace(tmp_path / "ws")
    ws.write_scan("2026/s.h5", os.urandom(256), mtime=datetime(2026, 1, 1, tzinfo=UTC))
    config = ws.config()
    store = StateStore(config.state.path)
    backends = build_backends(config)
    mover = PollRaises(backends.movers["local"])
    backends.movers["local"] = mover  # type: ignore[assignment]
    clock = FakeClock(datetime(2026, 6, 1, tzinfo=UTC))
    try:
        reconciler = Reconciler(config, store, backends, clock=clock)
        reconciler.reconcile_once(drain=True)
        assert mover.copies, "the pass submitted no copy"
        waited = clock.monotonic()
        assert waited < 60, (
            f"the drain waited {waited:.0f} s (of the clock) for a task it cannot poll"
        )
        assert mover.polls <= 3, mover.polls
        assert [t.kind for t in store.tasks(OPEN_TASK_STATES)] == ["copy"]  # left for next pass
    finally:
        backends.close()
        store.close()
