"""Time as one dependency: the only module in `engine/` that reads the system clock.

Every component that needs the time (the reconciler's passes, the movers' deadlines and evidence
stamps, the executor's drain, the catalog's timestamps, the watcher's walks) is handed one `Clock`
when it is built, so a test can run the whole engine at any date — and the suite never depends on
the day it runs. A `Clock` is callable (`clock()` is `clock.now()`) so that code which only needs
the current moment can take it as a plain `Callable[[], datetime]`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta


class Clock:
    """The system clock: aware UTC wall time, a monotonic counter, and a real sleep."""

    def now(self) -> datetime:
        """The current moment, timezone-aware in UTC."""
        return datetime.now(UTC)

    def monotonic(self) -> float:
        """Seconds on a counter that never goes backwards (for durations and timeouts)."""
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        """Wait this long (the fake clock only advances its monotonic counter)."""
        time.sleep(seconds)

    def __call__(self) -> datetime:
        return self.now()


SYSTEM_CLOCK = Clock()


class FakeClock(Clock):
    """A clock tests set and advance by hand; nothing about it depends on the real date.

    `sleep` advances the monotonic counter by the requested time and yields the processor
    briefly, so loops that wait for worker threads still make progress without ever measuring
    real time.
    """

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("a FakeClock needs a timezone-aware start")
        self._now = start
        self._monotonic = 0.0
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def monotonic(self) -> float:
        with self._lock:
            return self._monotonic

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self._monotonic += max(0.0, seconds)
        time.sleep(0.001)  # let worker threads run; the amount is irrelevant to any result

    def advance(self, seconds: float = 0.0, **delta: float) -> datetime:
        """Move wall time and the monotonic counter forward; returns the new now."""
        step = timedelta(seconds=seconds, **delta)
        with self._lock:
            self._now += step
            self._monotonic += step.total_seconds()
            return self._now

    def set(self, moment: datetime) -> None:
        """Jump wall time to `moment` (the monotonic counter is left alone)."""
        with self._lock:
            self._now = moment


class _CallableClock(Clock):
    """Wall time from a function (e.g. a test's fixed moment); monotonic time and sleep real."""

    def __init__(self, now: Callable[[], datetime]) -> None:
        self._now = now

    def now(self) -> datetime:
        return self._now()


def as_clock(clock: Clock | Callable[[], datetime] | None) -> Clock:
    """A `Clock` for whatever a caller passed: a clock, a function returning now, or None."""
    if clock is None:
        return SYSTEM_CLOCK
    if isinstance(clock, Clock):
        return clock
    return _CallableClock(clock)


def filesystem_now() -> float:
    """The system's wall time (epoch seconds), only to compare with the mtimes a filesystem
    stamps with it (e.g. "was this folder still being written to when it was read?"). Engine
    decisions (due dates, deadlines, evidence) use a `Clock`, never this."""
    return time.time()
