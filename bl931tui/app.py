"""The bl931 TUI: per-scan lifecycle, transfer progress and approvals, over SSH.

The app reads the state store the service writes and writes only operator decisions (DESIGN §8).
Reads run in thread workers every `refresh_seconds`; a cheap fingerprint query skips the read
when nothing changed (and no retention date passed), a read rebuilds only the rows that changed
(`bl931tui.incremental`), and results arrive as messages the UI thread only swaps in. With an
`engine_loop` (the demo) the reconciler runs in a thread worker of this process.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
import termios
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import ClassVar

from textual import on, work
from textual.app import App
from textual.binding import BindingType
from textual.message import Message
from textual.screen import Screen

from bl931tui.commands import RegistryCommands, bindings
from bl931tui.decision_channel import advisory_refusal
from bl931tui.decision_dialogs import DecisionDialogs
from bl931tui.decisions import Decisions
from bl931tui.incremental import RowCache
from bl931tui.readmodel import CATALOG, Snapshot, fingerprint, load_snapshot
from bl931tui.screens.activity import EventsScreen, TasksScreen
from bl931tui.screens.alerts import AlertsScreen
from bl931tui.screens.approvals import ApprovalsScreen
from bl931tui.screens.detail import DetailScreen
from bl931tui.screens.help import HelpScreen
from bl931tui.screens.scans import ScansScreen
from engine.clock import SYSTEM_CLOCK
from engine.config import Config
from engine.operators import Operator, current_operator
from engine.policy import Policy
from engine.service import ServiceLoop
from engine.state import StateStore

log = logging.getLogger("bl931.tui")

Clock = Callable[[], datetime]
FIRST_PAGE = 500
"""Scans read for the first paint, before the full read of a large store completes."""


class Bl931App(DecisionDialogs, App[int]):
    """Scans (home), detail, approvals, alerts, tasks and events over one read-only store."""

    TITLE = "bl931"
    BINDINGS: ClassVar[list[BindingType]] = bindings("app")  # type: ignore[assignment]
    COMMANDS = App.COMMANDS | {RegistryCommands}
    CSS = "Screen { background: $surface; }"

    class SnapshotReady(Message):
        def __init__(self, snapshot: Snapshot) -> None:
            super().__init__()
            self.snapshot = snapshot

    def __init__(
        self,
        config: Config,
        *,
        read_only: bool = False,
        clock: Clock = SYSTEM_CLOCK,
        user: str | None = None,
        operator: Operator | None = None,
        refresh_seconds: float | None = 2.0,
        engine_loop: ServiceLoop | None = None,
    ) -> None:
        super().__init__()
        self.config = config
        self.clock = clock
        # Who decides is the kernel's user of this process; `user` only renames it (tests).
        self.operator = operator or current_operator()
        if user is not None:
            self.operator = replace(self.operator, name=user)
        self.user = self.operator.name
        # Not an approver, or nobody to record a decision: read-only, saying why.
        self.read_only_reason = None if read_only else advisory_refusal(config, self.operator)
        self.read_only = read_only or self.read_only_reason is not None
        self.refresh_seconds = refresh_seconds
        self.engine_loop = engine_loop
        self.policy = Policy.from_config(config)
        self.catalog_enabled = config.catalog.kind != "none"
        self.stages = tuple(self.policy.endpoints) + ((CATALOG,) if self.catalog_enabled else ())
        self.decisions = Decisions(
            config, operator=self.operator, clock=clock, read_only=self.read_only
        )
        self.paused = False
        self.checked_at: datetime | None = None  # when the store was last looked at
        self.snapshot: Snapshot | None = None
        self._held_back: Snapshot | None = None
        self._store: StateStore | None = None
        self._store_lock = threading.Lock()
        self.scans_screen = ScansScreen()
        self.rows = RowCache()

    # ---- lifecycle -----------------------------------------------------------------------
    def get_default_screen(self) -> Screen[None]:
        return self.scans_screen

    def on_mount(self) -> None:
        if self.engine_loop is not None:
            self.run_worker(
                self.engine_loop.run,
                thread=True,
                group="engine",
                name="engine",
                exit_on_error=False,
            )
        self.refresh_data(force=True)
        if self.refresh_seconds:
            self.set_interval(self.refresh_seconds, self._tick, name="refresh")
        if not self.is_headless:
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGHUP, signal.SIGTERM):
                loop.add_signal_handler(signum, self._terminal_lost, signum)

    def _terminal_lost(self, signum: int = 0) -> None:
        """SIGHUP, SIGTERM or a dead terminal: leave at once; the service keeps going."""
        log.info("leaving the TUI (%s)", signal.Signals(signum).name if signum else "tty lost")
        if self.engine_loop is not None:
            self.engine_loop.stop()
        self.exit(0)

    def _terminal_alive(self) -> bool:
        stream = sys.__stdin__
        if stream is None:
            return False
        try:
            termios.tcgetattr(stream.fileno())
        except (termios.error, OSError, ValueError):
            return False
        return True

    def on_unmount(self) -> None:
        if self.engine_loop is not None:
            self.engine_loop.stop()
        self.decisions.close()
        with self._store_lock:
            if self._store is not None:
                self._store.close()

    def _tick(self) -> None:
        if not self.is_headless and not self._terminal_alive():
            self._terminal_lost()
            return
        self.refresh_data()

    # ---- reading -------------------------------------------------------------------------
    @property
    def state_path_shown(self) -> str:
        """The state store's path as an operator reads it: relative to the config's folder."""
        path = self.config.state.path
        base = self.config.source.parent if self.config.source else None
        if base is not None and path.is_relative_to(base):
            return str(path.relative_to(base))
        return str(path)

    @property
    def store_missing(self) -> bool:
        """No state store yet: no service has run with this config."""
        return self._store is None and not self.config.state.path.exists()

    def reader(self) -> StateStore | None:
        """The read-only store (opened once it exists; the service creates it)."""
        with self._store_lock:
            if self._store is None and self.config.state.path.exists():
                self._store = StateStore(self.config.state.path, readonly=True)
            return self._store

    def action_refresh_now(self) -> None:
        self.refresh_data(force=True, full=True)

    def refresh_data(self, *, force: bool = False, full: bool = False) -> None:
        """Read the store again: rows that changed (`force`: even if the fingerprint did not
        move; `full`: every row, as on the first paint)."""
        self._refresh(force, full, self.snapshot.fingerprint if self.snapshot else None)

    @work(thread=True, exclusive=True, group="refresh", exit_on_error=False, description="refresh")
    def _refresh(self, force: bool, full: bool, last: tuple[object, ...] | None) -> None:
        store = self.reader()
        self.checked_at = self.clock()
        if store is None:
            self.call_from_thread(self.scans_screen.update_status)
            return
        if full:
            self.rows.forget()
        unchanged = not force and last is not None and fingerprint(store) == last
        if unchanged and not self.rows.dates_pass(self.policy, self.clock()):
            self.call_from_thread(self.scans_screen.update_status)
            return
        if last is None:
            # First paint: the newest page now, everything a moment later.
            page = load_snapshot(
                store, self.policy, self.clock(), catalog=self.catalog_enabled, first=FIRST_PAGE
            )
            if page.partial:
                self.post_message(self.SnapshotReady(page))
        snapshot = self.rows.snapshot(
            store, self.policy, self.clock(), catalog=self.catalog_enabled
        )
        self.post_message(self.SnapshotReady(snapshot))

    @on(SnapshotReady)
    def _snapshot_ready(self, message: SnapshotReady) -> None:
        if self.paused:
            self._held_back = message.snapshot
            return
        self._apply(message.snapshot)

    def _apply(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot
        self.scans_screen.show_snapshot(snapshot)
        self.scans_screen.update_status()
        screen = self.screen
        if screen is not self.scans_screen and hasattr(screen, "on_snapshot"):
            screen.on_snapshot()

    def action_toggle_pause(self) -> None:
        self.paused = not self.paused
        if not self.paused and self._held_back is not None:
            held, self._held_back = self._held_back, None
            self._apply(held)
        self.scans_screen.update_status()
        self.notify("live updates paused" if self.paused else "live updates resumed")

    # ---- navigation ----------------------------------------------------------------------
    def _go(self, screen: Screen[None] | None) -> None:
        while len(self.screen_stack) > 1:
            self.pop_screen()
        if screen is not None:
            self.push_screen(screen)

    def action_show_scans(self) -> None:
        self._go(None)

    def action_show_approvals(self) -> None:
        if not isinstance(self.screen, ApprovalsScreen):
            self._go(ApprovalsScreen())

    def action_show_alerts(self) -> None:
        if not isinstance(self.screen, AlertsScreen):
            self._go(AlertsScreen())

    def action_show_tasks(self) -> None:
        if not isinstance(self.screen, TasksScreen):
            self._go(TasksScreen())

    def action_show_events(self) -> None:
        if not isinstance(self.screen, EventsScreen):
            self._go(EventsScreen())

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(self.read_only))

    def open_detail(self, scan_id: str) -> None:
        self.push_screen(DetailScreen(scan_id))


class _RecentLogs(logging.Handler):
    """Keeps the engine's log lines off the screen while the TUI owns the terminal."""

    def __init__(self, capacity: int = 500) -> None:
        super().__init__()
        self.records: deque[str] = deque(maxlen=capacity)

    def emit(self, record: logging.LogRecord) -> None:
        with contextlib.suppress(Exception):
            self.records.append(self.format(record))


def run_app(
    config: Config, args: argparse.Namespace, *, engine_loop: ServiceLoop | None = None
) -> int:
    """Run the TUI until the operator quits or the terminal goes; returns the exit code."""
    app = Bl931App(
        config, read_only=bool(getattr(args, "read_only", False)), engine_loop=engine_loop
    )
    root = logging.getLogger()
    saved = root.handlers[:]
    root.handlers = [_RecentLogs()]
    try:
        app.run(mouse=not getattr(args, "no_mouse", False))
    finally:
        root.handlers = saved
        if engine_loop is not None:
            engine_loop.stop()
    if os.environ.get("BL931_TUI_DEBUG") and app.return_code:
        print(f"bl931tui: exit {app.return_code}", file=sys.stderr)
    return app.return_code or 0
