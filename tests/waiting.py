"""The one wait of the tests: poll a condition with a deadline.

For what another process or thread makes true (a log line, a file, a row in the state store, a
filesystem event arriving); nothing sleeps for a fixed time hoping something happened. Time in
the engine itself is a `FakeClock`: this waits only for real concurrency, with generous limits.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(
    condition: Callable[[], T],
    *,
    timeout: float = 30.0,
    what: str = "condition",
    step: float = 0.02,
) -> T:
    """Poll `condition` until it returns something truthy (returned); fail with `what` after
    `timeout` real seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(step)
