"""One local task: its request, live progress and results (mutated by one worker, read by
pollers), for the local mover (`engine/storage/local_mover.py`)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field

from engine.model import ErrorClass
from engine.storage.base import ItemProgress, ItemResult, TaskRequest, TaskState, TaskStatus
from engine.storage.root_pin import RootPin


class Cancelled(Exception):
    """Raised between files once a task has been asked to stop."""


@dataclass
class LocalTask:
    """One submitted batch and its live progress (mutated by one worker, read by pollers)."""

    task_id: str
    request: TaskRequest
    bytes_total: int
    files_total: int
    monotonic: Callable[[], float]
    lock: threading.Lock = field(default_factory=threading.Lock)
    stop: threading.Event = field(default_factory=threading.Event)
    state: TaskState = "queued"
    bytes_done: int = 0
    files_done: int = 0
    started: float | None = None
    ended: float | None = None
    results: list[ItemResult] = field(default_factory=list)
    future: Future[None] | None = None
    current: str | None = None  # the action id of the scan being worked on
    per_item: dict[str, list[int]] = field(default_factory=dict)  # action id → [files, bytes]
    # endpoint → its root as the task was handed it (engine/storage/root_pin.py)
    pins: dict[str, RootPin] = field(default_factory=dict)

    def start_item(self, action_id: str) -> None:
        with self.lock:
            self.current = action_id
            self.per_item.setdefault(action_id, [0, 0])

    def add_bytes(self, count: int) -> None:
        with self.lock:
            self.bytes_done += count
            if self.current is not None:
                self.per_item[self.current][1] += count

    def add_files(self, count: int) -> None:
        with self.lock:
            self.files_done += count
            if self.current is not None:
                self.per_item[self.current][0] += count

    def check_stop(self) -> None:
        if self.stop.is_set():
            raise Cancelled

    def status(self) -> TaskStatus:
        with self.lock:
            elapsed = (self.ended or self.monotonic()) - self.started if self.started else 0.0
            finished = self.state in ("succeeded", "failed")
            failures = [r for r in self.results if not r.ok] if finished else []
            return TaskStatus(
                task_id=self.task_id,
                state=self.state,
                bytes_done=self.bytes_done,
                bytes_total=self.bytes_total,
                files_done=self.files_done,
                files_total=self.files_total,
                bytes_per_second=self.bytes_done / elapsed if elapsed > 0 else 0.0,
                error=summarise(failures, len(self.results)),
                error_class=worst_class(failures),
                results=tuple(self.results) if finished else (),
                item_progress=tuple(
                    ItemProgress(action_id, files, size)
                    for action_id, (files, size) in self.per_item.items()
                ),
            )


def summarise(failures: list[ItemResult], total: int) -> str | None:
    if not failures:
        return None
    return f"{len(failures)} of {total} item(s) failed; first: {failures[0].error}"


_SEVERITY = (ErrorClass.NEEDS_HUMAN, ErrorClass.TERMINAL, ErrorClass.TRANSIENT)


def worst_class(failures: list[ItemResult]) -> ErrorClass:
    """The class that decides what happens to the task as a whole: a person beats a retry."""
    classes = {f.error_class for f in failures}
    return next((c for c in _SEVERITY if c in classes), ErrorClass.TRANSIENT)
