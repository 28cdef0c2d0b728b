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
    def __init__(
        self,
        reconciler: Reconciler,
        *,
        interval_seconds: float,
        on_pass: Callable[[PassReport], None] | None = None,
    ) -> None:
        self.reconciler = reconciler
        self.interval_seconds = interval_seconds
        self.on_pass = on_pass
        self._stop = threading.Event()
        self._wake = threading.Event()
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
            log.error("pass failed (%s): %s", exc.error_class.value, exc)
            return None
        except Exception:
            self.failed_passes += 1
            log.exception("pass failed unexpectedly; retrying at the next interval")
            return None
        self.passes += 1
        if self.on_pass is not None:
            self.on_pass(report)
        return report

    def run(self) -> None:
        while not self._stop.is_set():
            self.run_pass()
            self._wake.wait(self.interval_seconds)
            self._wake.clear()
