"""`bl931tui --reconcile`: the headless service (one pass with `--once`).

Under systemd (deploy/bl931.service) the service is the one owner of the state store:
- SIGTERM / SIGINT end the loop after the current pass; copies this process runs get a bounded
  grace period to finish, then stop before their next file (a restart re-plans them and adopts
  what is in place). Exit 0.
- SIGHUP re-reads the config file before the next pass. An invalid new config is logged and the
  running one kept; so is a change of `[state] path`, which needs a restart (the lock is on it).
- `--metrics-port` (or `[service] metrics_port`) serves Prometheus metrics on `metrics_host`.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from types import FrameType

from bl931tui.service_ops import (
    flight_metrics_for,
    observe_and_push,
    push_once,
    with_flight_desk,
)
from engine.backends import Backends, build_backends
from engine.clock import SYSTEM_CLOCK
from engine.config import Config, load_config
from engine.decision_socket import DecisionServer, socket_path
from engine.errors import Bl931Error, ConfigError
from engine.file_modes import (
    UnsafePermissions,
    check_startup,
    group_id,
    owned_store,
    unsafe_writers,
)
from engine.incremental.view import IncrementalView
from engine.inventory.watcher import ScanWatcher, watcher_for
from engine.lock import OwnerLock
from engine.metrics import ServiceMetrics
from engine.notify import NotifyDesk, with_notify
from engine.operator_decisions import DecisionDesk
from engine.pushgateway import Pusher, gateway_settings
from engine.reconciler import Reconciler
from engine.service import ServiceLoop
from engine.state import OPEN_TASK_STATES, StateStore

log = logging.getLogger("bl931.service")

# How long in-process copies may run on after a stop signal; systemd's TimeoutStopSec (120 s in
# deploy/bl931.service) must exceed it plus one pass.
SHUTDOWN_GRACE_SECONDS = 20.0


def run_service(config: Config, args: argparse.Namespace) -> int:
    # A store, folder or catalog others may write is reported, never used (exit 1).
    check_startup(config)
    gateway_settings(os.environ)  # a malformed PUSHGATEWAY_* is a config error (78) up front
    with OwnerLock(config.state.path):
        if args.once:
            return _run_once(config)
        return Service(config, args).run()


def _run_once(config: Config) -> int:
    """One pass. SIGTERM, like SIGINT, interrupts it: every step is checkpointed in the store
    (submission ids before submits, results as they come), so in-process copies stop before
    their next file and the next pass carries on from what was recorded. Exit 0."""
    store = owned_store(config)
    backends = build_backends(config)
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        reconciler = Reconciler(config, store, backends)
        report = reconciler.reconcile_once(drain=True)
        push_once(config, report, os.environ)
        print(_one_line(report.summary()), file=sys.stderr)
        return 0 if report.ok else 1
    except KeyboardInterrupt:
        log.info(
            "interrupted: in-process copies stop before their next file; the next pass resumes"
        )
        _say_what_is_waited_for(store, backends)
        _stop_local_tasks(backends)
        return 0
    finally:
        signal.signal(signal.SIGTERM, previous)
        backends.close()
        _beat_stopped(store)
        store.close()


def _beat_stopped(store: StateStore) -> None:
    """Tell readers (the TUI) at once that no service owns the store any more."""
    try:
        now = SYSTEM_CLOCK.now()
        store.beat(now, stopped_at=now)
    except Exception:  # a stop must never fail on its own report
        log.exception("could not record the stop in the heartbeat")


def _probe_catalog(backends: Backends) -> None:
    """The read-only SciCat probe of `--check`, logged at start-up (a failure does not stop the
    service: the catalog's state is re-read every pass, and deletes wait while it is unknown)."""
    from engine.catalog.scicat import ScicatCatalog
    from engine.catalog.scicat_probe import Verdict, probe_scicat

    if not isinstance(backends.catalog, ScicatCatalog):
        return
    for result in probe_scicat(backends.catalog):
        level = {
            Verdict.OK: logging.INFO,
            Verdict.WARNING: logging.WARNING,
            Verdict.FAILED: logging.ERROR,
        }[result.verdict]
        log.log(level, "SciCat %s: %s", result.check, result.message)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _stop_local_tasks(backends: Backends) -> None:
    for mover in backends.movers.values():
        if mover.finishes_locally:
            mover.close(wait=False)


class Service:
    """The long-running loop with its signals, config reloads, watcher and metrics."""

    def __init__(self, config: Config, args: argparse.Namespace) -> None:
        self.config = config
        self.interval_override: float | None = args.interval
        self.metrics_port: int | None = args.metrics_port
        self.store = owned_store(config)
        self.backends = build_backends(config)
        self.reconciler = Reconciler(config, self.store, self.backends)
        self.reconciler.incremental = IncrementalView(
            config.safety.full_walk_seconds, reverify_days=config.safety.reverify_days
        )
        self.decisions: DecisionServer | None = None
        self.metrics = ServiceMetrics()
        self.flight = flight_metrics_for(self.store, self.metrics)
        self.pusher = Pusher(config.beamline.name, self.metrics.registry, os.environ)
        self.loop = ServiceLoop(
            self.reconciler,
            interval_seconds=self._interval(config),
            on_pass=observe_and_push(self.metrics, self.pusher),
            on_crash=self.metrics.observe_crash,
            before_pass=self._apply_reload,
        )
        self.watcher: ScanWatcher | None = None
        self._reload_requested = False
        self._signals = 0

    def _interval(self, config: Config) -> float:
        return self.interval_override or config.service.interval_seconds

    # ---- signals ------------------------------------------------------------------------
    def _on_stop(self, signum: int, frame: FrameType | None) -> None:
        self._signals += 1
        name = signal.Signals(signum).name
        if self._signals == 1:
            log.info(
                "%s: finishing the current pass, then exiting (in-process copies get up to %gs "
                "to finish); %s again stops them at once (the next start resumes them)",
                name,
                SHUTDOWN_GRACE_SECONDS,
                "Ctrl-C" if signum == signal.SIGINT else name,
                extra={"signal": name},
            )
        else:
            log.warning("%s again: stopping in-process copies now", name, extra={"signal": name})
            self._stop_local_tasks()
        self.loop.stop()

    def _on_hup(self, signum: int, frame: FrameType | None) -> None:
        log.info("SIGHUP: reloading the config before the next pass", extra={"signal": "SIGHUP"})
        self._reload_requested = True
        self.loop.wake()

    # ---- reload -------------------------------------------------------------------------
    def _apply_reload(self) -> None:
        if not self._reload_requested:
            return
        self._reload_requested = False
        source = self.config.source
        try:
            new = load_config(source)
        except ConfigError as exc:
            log.error(
                "config reload failed; keeping the running config:\n%s",
                exc,
                extra={"error_class": "config"},
            )
            return
        if new.state.path != self.config.state.path:
            log.error(
                "config reload: [state] path changed (%s → %s); restart the service to move "
                "the state store; keeping the running config",
                self.config.state.path,
                new.state.path,
                extra={"error_class": "config"},
            )
            return
        try:
            backends = build_backends(new)
        except Bl931Error as exc:
            log.error(
                "config reload: building the backends failed (%s); keeping the running config",
                exc,
                extra={"error_class": exc.error_class.value},
            )
            return
        old_backends = self.backends
        # Tasks the old movers run in this process finish (bounded) and are recorded by the old
        # executor, so the new one never sees them as lost.
        self.reconciler.executor.drain(SHUTDOWN_GRACE_SECONDS)
        self._stop_watcher()
        self.config, self.backends = new, backends
        self.reconciler = Reconciler(new, self.store, backends)
        self.reconciler.incremental = IncrementalView(
            new.safety.full_walk_seconds, reverify_days=new.safety.reverify_days
        )
        self.loop.reconciler = self.reconciler
        self.loop.interval_seconds = self._interval(new)
        self._start_watcher()
        _close_backends(old_backends)
        log.info("config reloaded from %s", source)

    # ---- watcher --------------------------------------------------------------------------
    def _start_watcher(self) -> None:
        # The live watcher wakes the loop when a scan completes; the walk stays the truth.
        self.watcher = watcher_for(
            self.config, self.backends, on_complete=lambda scans: self.loop.wake()
        )
        if self.watcher is not None:
            self.reconciler.completion_hint = self.watcher.completed
            self.watcher.start()

    def _stop_watcher(self) -> None:
        if self.watcher is not None:
            self.watcher.stop()
            self.watcher = None

    def _stop_local_tasks(self) -> None:
        _stop_local_tasks(self.backends)

    # ---- operator decisions ---------------------------------------------------------------
    def _take_decisions(self) -> None:
        """Operators' decisions arrive on a socket beside the store; the kernel names each
        caller and this service checks them against its own config's approvers."""
        desk = DecisionDesk(self.store, lambda: self.config, self.reconciler.clock)
        # Notifies (--notify, the notify_new_scan flow) come the same way and wake a pass.
        hints = NotifyDesk(self.store, lambda: self.config, self.reconciler.clock, self.loop.wake)
        path = socket_path(self.config.state.path)
        group = group_id(self.config.approval.readers_group)
        handler = with_flight_desk(desk, self.store, self.reconciler.clock, self.flight)
        self.decisions = DecisionServer(path, with_notify(handler, hints), group=group).start()
        finding = unsafe_writers(path, group_may_write=True)
        if finding is not None:
            raise UnsafePermissions([finding])

    # ---- run ----------------------------------------------------------------------------
    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._on_stop)
        signal.signal(signal.SIGINT, self._on_stop)
        signal.signal(signal.SIGHUP, self._on_hup)
        try:
            port = self.metrics_port
            if port is None and self.config.service.metrics_port:
                port = self.config.service.metrics_port
            if port is not None:
                self.metrics.serve(port, self.config.service.metrics_host)
            self._start_watcher()
            self._take_decisions()
            _probe_catalog(self.backends)
            log.info(
                "reconciling every %gs (state %s, pid %d)",
                self.loop.interval_seconds,
                self.config.state.path,
                os.getpid(),
            )
            self.loop.run()
            self._finish_in_flight()
            log.info("stopped")
            return 0
        finally:
            if self.decisions is not None:
                self.decisions.close()
            self._stop_watcher()
            self.metrics.close()
            _close_backends(self.backends)
            _beat_stopped(self.store)
            self.store.close()

    def _finish_in_flight(self) -> None:
        """Give in-process copies a bounded time to finish and record them; stop the rest."""
        _say_what_is_waited_for(self.store, self.backends)
        if self._signals < 2:
            try:
                self.reconciler.executor.drain(SHUTDOWN_GRACE_SECONDS)
            except Exception:
                log.exception("recording the last tasks failed; the next start polls them")
        self._stop_local_tasks()


def _say_what_is_waited_for(store: StateStore, backends: Backends) -> None:
    """Name the in-process tasks a stop waits for (or abandons), so an operator is never left
    guessing why the process has not exited yet."""
    try:
        tasks = store.tasks(OPEN_TASK_STATES)
    except Exception:  # a stop must never fail on its own report
        return
    local = [
        t
        for t in tasks
        if (mover := backends.movers.get(t.mover)) is not None and mover.finishes_locally
    ]
    for task in local:
        log.info(
            "waiting for %s (task %s, %d of %d files done) to stop or finish",
            task.label,
            task.task_id or task.submission_id,
            task.files_done,
            task.files_total,
        )
    if not local:
        log.info("no in-process task is running; nothing to wait for")


def _close_backends(backends: Backends) -> None:
    backends.close()


def _one_line(summary: dict[str, int]) -> str:
    return "pass: " + ", ".join(f"{k}={v}" for k, v in summary.items())
