"""The `Mover` protocol's answers for a mover whose tasks need no telling and no holds.

A mover whose state lives in the state store (the tape mover's bundles and jobs) can answer for
any task after a restart (`knows` is True), needs no request re-told (`track`), is never asked to
wait by its service (`keep_holds_in`), and runs nothing in this process that `close` must stop.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine.storage.base import TaskRequest

if TYPE_CHECKING:
    from engine.retry_holds import HoldBook


class StoredTasks:
    """Mixin: the protocol's `knows`, `track`, `keep_holds_in` and `close` for such a mover."""

    def knows(self, task_id: str) -> bool:
        return True

    def track(self, task_id: str, request: TaskRequest) -> None:
        return None

    def keep_holds_in(self, book: HoldBook) -> None:
        return None

    def close(self, *, wait: bool = True) -> None:
        return None
