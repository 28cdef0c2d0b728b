"""The long-running loop: a thin `while` around `reconcile_once`.

A failed pass is logged and retried at the next interval; the loop ends only when asked to (a
signal in the service, the TUI closing in the demo). `wake()` starts the next pass early — the
inventory watcher calls it when a scan completes.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from engine.errors import Bl931Error, ConfigError
from engine.reconciler import PassReport, Reconciler

log = logging.getLogger(__name__)


class ServiceLoop:
    """Runs passes until stopped.

    Args:
        reconciler: does the passes; a front end may replace it between passes (config reload).
        interval_seconds: pause between passes (a `wake()` cuts it short).
        on_pass: called with each finished pass's report (metrics).
        on_crash: called when a pass raised instead of reporting (metrics).
        before_pass: called before each pass, in the loop's thread: where a reload requested by
            a signal handler is applied, so the running pass never sees its config change.
    """

    def __init__(
        self,
        reconciler: Reconciler,
        *,
        interval_seconds: float,
        on_pass: Callable[[PassReport], None] | None = None,
        on_crash: Callable[[], None] | None = None,
        before_pass: Callable[[], None] | None = None,
    ) -> None:
        self.reconciler = reconciler
        self.interval_seconds = interval_seconds
        self.on_pass = on_pass
        self.on_crash = on_crash
        self.before_pass = before_pass
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._stopped = threading.Event()  # set when `run` has returned (or never ran)
        self._stopped.set()
        self.passes = 0
        self.failed_passes = 0

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def run_pass(self) -> PassReport | None:
        try:
            report = self.reconciler.reconcile_once()
        except ConfigError:
            raise
        except Bl931Error as exc:
            self.failed_passes += 1
            log.error(
                "pass failed (%s): %s",
                exc.error_class.value,
                exc,
                extra={"error_class": exc.error_class.value},
            )
            if self.on_crash is not None:
                self.on_crash()
            return None
        except Exception:
            self.failed_passes += 1
            log.exception(
                "pass failed unexpectedly; retrying at the next interval",
                extra={"error_class": "unexpected"},
            )
            if self.on_crash is not None:
                self.on_crash()
            return None
        self.passes += 1
        if self.on_pass is not None:
            self.on_pass(report)
        return report

    def run(self) -> None:
        self._stopped.clear()
        try:
            while not self._stop.is_set():
                if self.before_pass is not None:
                    self.before_pass()
                self.run_pass()
                self._wake.wait(self.interval_seconds)
                self._wake.clear()
        finally:
            self._stopped.set()

    def wait_stopped(self, timeout: float | None = None) -> bool:
        """Wait until `run` (in another thread) has returned: the store and backends it uses may
        be closed only then (closing a SQLite connection a pass is using can crash the process).
        Returns whether it has."""
        return self._stopped.wait(timeout)
