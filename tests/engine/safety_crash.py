"""Crashes placed at each persisted step of a delete, in-process (the engine objects are then
abandoned and built anew on the same state store: `World.restart`).

The crash is `Crash`, a `BaseException`, so no `except Exception` in the engine swallows it, as
nothing swallows a SIGKILL. Production code is not touched: the hooks wrap the mover's `submit`
and the executor's `submission.send` and `delete_records.record` on the objects of one `World`.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from tests.engine.safety_world import World

CRASH_POINTS = ("prepared", "some_unlinked", "all_unlinked", "submitted", "before_receipt")


class Crash(BaseException):
    """The process died here (raised by a hook; the engine must not catch it)."""

    def __init__(self, point: str, target: str) -> None:
        super().__init__(point)
        self.point, self.target = point, target  # the step, and the endpoint deleted from


@contextlib.contextmanager
def crash_in_delete(world: World, point: str) -> Iterator[None]:
    """Place a crash at one persisted step of the first delete task the pass submits.

    - `prepared`: the task row is `preparing` (submission id persisted), the mover never ran;
    - `some_unlinked`: the mover removed the first file of the first scan, then death;
    - `all_unlinked`: the mover removed every file of the task, then death (still `preparing`);
    - `submitted`: the mover removed everything and answered; the task is recorded `active`
      with its id, then death (the next process polls an id nobody knows: `lost`);
    - `before_receipt`: the real mover ran to the end; death as the receipt is written.
    """
    mover: Any = world.backends.movers["local"]
    executor: Any = world.reconciler.executor
    real_submit, real_send = mover.submit, executor.submission.send
    real_record = executor.delete_records.record

    def unlink(request: Any, limit: int | None) -> None:
        """What the mover's worker would have done before the process died."""
        root, done = world.configured(request.target), 0
        for item in request.items:
            for scan_file in item.files:
                if limit is not None and done >= limit:
                    return
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(root / scan_file.path)
                done += 1

    def submit(request: Any) -> str:
        if request.kind != "delete" or point == "before_receipt":
            return str(real_submit(request))
        if point == "some_unlinked":
            unlink(request, 1)
        elif point in ("all_unlinked", "submitted"):
            unlink(request, None)
        if point == "submitted":
            return f"local-crashed-{request.submission_id}"  # no worker: it "died" with us
        raise Crash(point, request.target)

    def send(m: Any, task: Any, request: Any, now: datetime) -> bool:
        sent = bool(real_send(m, task, request, now))
        if request.kind == "delete" and point == "submitted":
            raise Crash(point, request.target)
        return sent

    def record(action: Any, *args: Any, **kwargs: Any) -> None:
        raise Crash(point, action.target)

    mover.submit = submit
    executor.submission.send = send
    if point == "before_receipt":
        executor.delete_records.record = record
    try:
        yield
    finally:
        mover.submit, executor.submission.send = real_submit, real_send
        executor.delete_records.record = real_record
