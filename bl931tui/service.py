"""`bl931tui --reconcile`: the headless service (one pass with `--once`)."""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import sys
from types import FrameType

from engine.backends import build_backends
from engine.config import Config
from engine.inventory.watcher import watcher_for
from engine.lock import OwnerLock
from engine.reconciler import Reconciler
from engine.service import ServiceLoop
from engine.state import StateStore

log = logging.getLogger("bl931.service")


def run_service(config: Config, args: argparse.Namespace) -> int:
    with OwnerLock(config.state.path):
        store = StateStore(config.state.path)
        backends = build_backends(config)
        try:
            reconciler = Reconciler(config, store, backends)
            if args.once:
                report = reconciler.reconcile_once(drain=True)
                print(_one_line(report.summary()), file=sys.stderr)
                return 0 if report.ok else 1
            loop = ServiceLoop(
                reconciler, interval_seconds=args.interval or config.service.interval_seconds
            )

            def stop(signum: int, frame: FrameType | None) -> None:
                log.info(
                    "signal %s: finishing the current step, then exiting",
                    signal.Signals(signum).name,
                )
                loop.stop()

            signal.signal(signal.SIGTERM, stop)
            signal.signal(signal.SIGINT, stop)
            # The live watcher wakes the loop when a scan completes; the walk stays the truth.
            watcher = watcher_for(config, backends, on_complete=lambda scans: loop.wake())
            if watcher is not None:
                reconciler.completion_hint = watcher.completed
            log.info("reconciling every %gs (state %s)", loop.interval_seconds, config.state.path)
            with watcher if watcher is not None else contextlib.nullcontext():
                loop.run()
            return 0
        finally:
            backends.close()
            store.close()


def _one_line(summary: dict[str, int]) -> str:
    return "pass: " + ", ".join(f"{k}={v}" for k, v in summary.items())
