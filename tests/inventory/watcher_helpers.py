"""Shared helpers for the watcher tests: a watcher factory and a stepper that drives it on a
fake clock.

The observer (inotify or polling) is real; everything the watcher decides from time — quiet
periods, the spacing of its two agreeing stats, walks, retries — runs on a `FakeClock` that only
the test moves, and the checker's turns run when the test calls `step`. The one real wait is for
the observer to deliver events: `sync` writes a barrier file after the test's own writes and
waits (with a generous timeout) until the watcher has handled the barrier's event; inotify and
the polling observer both deliver events in order, so every earlier event has been handled by
then. No assertion depends on how fast the machine is.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from watchdog.events import FileSystemEvent

from engine.clock import FakeClock
from engine.config import InventoryConfig
from engine.inventory.watcher import ScanWatcher
from engine.layout import ScanLayout

EVENT_TIMEOUT = 60.0  # real seconds an event may take to arrive (only ever waited for, positively)


class RecordingWatcher(ScanWatcher):
    """A `ScanWatcher` that remembers the paths of the events it has handled (for `sync`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._handled = threading.Condition()
        self._handled_paths: set[str] = set()

    def _on_event(self, event: FileSystemEvent) -> None:
        try:
            super()._on_event(event)
        finally:
            with self._handled:
                self._handled_paths.add(os.fsdecode(event.src_path))
                if event.dest_path:  # the polling observer may report a new barrier as moved
                    self._handled_paths.add(os.fsdecode(event.dest_path))  # from the last one
                self._handled.notify_all()

    def wait_handled(self, path: Path, timeout: float) -> bool:
        with self._handled:
            return self._handled.wait_for(lambda: str(path) in self._handled_paths, timeout)


def make_watcher(
    root: Path, *, clock: FakeClock | None = None, **inventory: Any
) -> RecordingWatcher:
    """A watcher over `root` with an `[inventory]` section built from keyword arguments.

    `check_seconds` and `poll_seconds` are passed to the watcher itself; the rest to the config.
    """
    tuning = {k: inventory.pop(k) for k in ("check_seconds", "poll_seconds") if k in inventory}
    config = InventoryConfig(**inventory)
    completions: list[str] = []
    watcher = RecordingWatcher(
        root,
        ScanLayout.from_config(config),
        config,
        on_complete=completions.extend,
        clock=clock or FakeClock(datetime.now(UTC)),
        **tuning,
    )
    watcher.completion_log = completions  # type: ignore[attr-defined]
    return watcher


def fake_clock() -> FakeClock:
    """A fake clock whose wall time starts at the real moment, only because the kernel stamps
    the files the tests write with real mtimes and the watcher compares those with its clock;
    from then on only the test moves it, so no result depends on the date or on elapsed time."""
    return FakeClock(datetime.now(UTC))


class Stepper:
    """Drives a watcher started without its checker thread: events in, turns on a fake clock."""

    def __init__(self, watcher: ScanWatcher, clock: FakeClock, root: Path) -> None:
        self.w = watcher
        self.clock = clock
        self.root = root
        self._barriers = 0

    def now(self) -> float:
        return self.clock.monotonic()

    def sync(self, timeout: float = EVENT_TIMEOUT) -> None:
        """Return once the watcher has handled every event of what was written so far."""
        assert isinstance(self.w, RecordingWatcher)
        self._barriers += 1
        barrier = self.root / f".bl931-sync-{self._barriers}"  # hidden: never a scan
        barrier.write_bytes(b"")
        try:
            assert self.w.wait_handled(barrier, timeout), f"no event for {barrier} arrived"
        finally:
            barrier.unlink()

    def step(self, seconds: float = 0.0) -> list[str]:
        """Move the clock `seconds` forward and run one checker turn."""
        if seconds:
            self.clock.advance(seconds)
        return self.w.step()

    def run(self, seconds: float, every: float = 0.05) -> None:
        """Let `seconds` of fake time pass, a checker turn every `every` seconds."""
        end = self.now() + seconds
        self.step()
        while self.now() < end - 1e-9:
            self.step(min(every, end - self.now()))

    def run_until(
        self, predicate: Callable[[], bool], *, limit: float, every: float = 0.05
    ) -> bool:
        """Turn the checker every `every` fake seconds until `predicate` holds (or `limit`
        fake seconds pass); returns the predicate's last answer."""
        end = self.now() + limit
        self.step()
        while not predicate() and self.now() < end:
            self.step(every)
        return predicate()


@contextmanager
def stepped(root: Path, **inventory: Any) -> Iterator[Stepper]:
    """A watcher over `root` (see `make_watcher`) with its observer running, its checker turns
    driven by the test on a fake clock; the first turn (the start-up walk) has run."""
    clock = fake_clock()
    watcher = make_watcher(root, clock=clock, **inventory)
    watcher.start(checker=False)
    try:
        stepper = Stepper(watcher, clock, root)
        stepper.step()
        yield stepper
    finally:
        watcher.stop()
