"""The bl931 TUI: per-scan lifecycle, transfer progress and approvals, over SSH.

The app reads the state store the service writes and writes only operator decisions (DESIGN §8).
Reads run in thread workers every `refresh_seconds`; a cheap fingerprint query skips the full
read when nothing changed, and results arrive as messages the UI thread only swaps in. With an
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

from bl931tui.alerts import acknowledge_refusal
from bl931tui.commands import RegistryCommands, bindings
from bl931tui.decision_channel import advisory_refusal
from bl931tui.decisions import DecisionRefused, Decisions
from bl931tui.details import ApprovalItem
from bl931tui.readmodel import CATALOG, Snapshot, connection, fingerprint, load_snapshot
from bl931tui.render import printable, size
from bl931tui.screens.activity import EventsScreen, TasksScreen
from bl931tui.screens.alerts import AlertsScreen
from bl931tui.screens.approvals import ApprovalsScreen
from bl931tui.screens.detail import DetailScreen
from bl931tui.screens.dialogs import AcknowledgeDialog, ConfirmDialog, HoldDialog
from bl931tui.screens.help import HelpScreen
from bl931tui.screens.scans import ScansScreen
from engine.alert_log import AlertRecord
from engine.approvals import needs_second_approver
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


class Bl931App(App[int]):
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
        self.snapshot: Snapshot | None = None
        self._held_back: Snapshot | None = None
        self._store: StateStore | None = None
        self._store_lock = threading.Lock()
        self.scans_screen = ScansScreen()

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
    def reader(self) -> StateStore | None:
        """The read-only store (opened once it exists; the service creates it)."""
        with self._store_lock:
            if self._store is None and self.config.state.path.exists():
                self._store = StateStore(self.config.state.path, readonly=True)
            return self._store

    def action_refresh_now(self) -> None:
        self.refresh_data(force=True)

    def refresh_data(self, *, force: bool = False) -> None:
        self._refresh(force, self.snapshot.fingerprint if self.snapshot else None)

    @work(thread=True, exclusive=True, group="refresh", exit_on_error=False, description="refresh")
    def _refresh(self, force: bool, last: tuple[object, ...] | None) -> None:
        store = self.reader()
        if store is None:
            self.call_from_thread(self.scans_screen.update_status)
            return
        if not force and last is not None and fingerprint(connection(store)) == last:
            self.call_from_thread(self.scans_screen.update_status)
            return
        if last is None:
            # First paint: the newest page now, everything a moment later.
            page = load_snapshot(
                store, self.policy, self.clock(), catalog=self.catalog_enabled, first=FIRST_PAGE
            )
            if page.partial:
                self.post_message(self.SnapshotReady(page))
        snapshot = load_snapshot(store, self.policy, self.clock(), catalog=self.catalog_enabled)
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

    # ---- decisions -----------------------------------------------------------------------
    def refused(self, what: str) -> bool:
        """In a read-only session, say so clearly and refuse."""
        if self.read_only:
            why = (
                f"{self.read_only_reason}."
                if self.read_only_reason
                else "Restart without --read-only to decide."
            )
            self.notify(
                f"Read-only session: {what} refused. {why}", title="read-only", severity="error"
            )
            return True
        return False

    def ask_approve(self, items: list[ApprovalItem], done: Callable[[], None]) -> None:
        if self.refused("approve") or not items:
            return
        total = sum(item.bytes for item in items)
        deletes = [item for item in items if item.kind == "delete"]
        where = sorted({item.target or "" for item in deletes})
        if deletes:
            typed = f"{len(items)} {size(total)}"
            body = (
                f"Approve {len(items)} action(s), {len(deletes)} of them deletes "
                f"from {', '.join(where)}, {size(total)} in all. Each delete is re-checked "
                "against a fresh observation before it runs; verified copies stay at "
                "the endpoints its policy requires.\n\nFirst: "
                + ", ".join(printable(item.scan) for item in items[:3])
                + (f" … and {len(items) - 3} more" if len(items) > 3 else "")
            )
            dialog = ConfirmDialog("Approve deletes?", body, confirm="Approve", typed=typed)
        else:
            dialog = ConfirmDialog(
                "Approve?", f"Approve {len(items)} action(s), {size(total)}?", confirm="Approve"
            )

        def answered(yes: bool | None) -> None:
            if yes:
                self._decide("approve", [item.id for item in items], done)

        self.push_screen(dialog, answered)

    def ask_reject(self, items: list[ApprovalItem], done: Callable[[], None]) -> None:
        if self.refused("reject") or not items:
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self._decide("reject", [item.id for item in items], done)

        self.push_screen(
            ConfirmDialog(
                "Reject?",
                f"Reject {len(items)} action(s)? The planner will not run them while "
                "the scan stays the same.",
                confirm="Reject",
            ),
            answered,
        )

    def ask_hold(self, scan_id: str) -> None:
        if self.refused("hold"):
            return

        def answered(result: tuple[str, datetime | None] | None) -> None:
            if result is not None:
                self._decide("hold", [scan_id], None, reason=result[0], expires=result[1])

        self.push_screen(HoldDialog(printable(scan_id), self.clock()), answered)

    def ask_lift(self, scan_id: str) -> None:
        if self.refused("lift hold"):
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self._decide("lift", [scan_id], None)

        self.push_screen(
            ConfirmDialog(
                "Lift hold?",
                f"Lift the hold on {printable(scan_id)}? Its copies can then be pruned "
                "when retention allows.",
                confirm="Lift hold",
            ),
            answered,
        )

    def ask_acknowledge(self, alert: AlertRecord, done: Callable[[], None]) -> None:
        """Acknowledge one standing alert: refused read-only, explained if it cannot be."""
        if self.refused("acknowledge"):
            return
        if refusal := acknowledge_refusal(alert):
            self.notify(refusal, title="not acknowledged", severity="error")
            return

        def answered(why: str | None) -> None:
            if why:
                self._decide("acknowledge", [alert.id], done, reason=why)

        self.push_screen(AcknowledgeDialog(alert, self.user), answered)

    def retry_scan(self, scan_id: str) -> None:
        if self.refused("retry"):
            return
        self._decide("retry", [scan_id], None)

    @work(thread=True, group="decide", exit_on_error=False, description="decision")
    def _decide(
        self,
        what: str,
        ids: list[str],
        done: Callable[[], None] | None,
        *,
        reason: str = "",
        expires: datetime | None = None,
    ) -> None:
        try:
            message = self._write_decision(what, ids, reason, expires)
        except DecisionRefused as exc:
            self.call_from_thread(self.notify, str(exc), severity="error")
            return
        except Exception as exc:
            log.exception("decision %s failed", what)
            self.call_from_thread(
                self.notify, f"{what} failed: {exc}", title="not recorded", severity="error"
            )
            return
        self.call_from_thread(self.notify, message, title=f"recorded as {self.user}")
        if done is not None:
            self.call_from_thread(done)
        self.call_from_thread(self.refresh_data, force=True)

    def _write_decision(
        self, what: str, ids: list[str], reason: str, expires: datetime | None
    ) -> str:
        if what == "approve":
            result = self.decisions.approve(ids)
            waiting = [aid for aid, names in result.approvals.items() if self._short_of(aid, names)]
            second = f"; {len(waiting)} wait for a second approver" if waiting else ""
            return f"approved {result.count} action(s){second}; the service acts on its next pass"
        if what == "reject":
            return f"rejected {self.decisions.reject(ids)} action(s)"
        if what == "acknowledge":
            result = self.decisions.acknowledge_alert(ids[0], reason)
            return f"acknowledged {result.detail}; applied next pass"
        scan = ids[0]
        if what == "hold":
            self.decisions.place_hold(scan, reason, expires)
            return f"hold placed on {printable(scan)}"
        if what == "lift":
            lifted = self.decisions.lift_hold(scan)
            return f"lifted {lifted} hold(s) on {printable(scan)}"
        store = self.reader()
        failed = [
            a.id for a in (store.actions_for_scan(scan) if store else []) if a.status == "failed"
        ]
        if not failed:
            return f"nothing failed to retry on {printable(scan)}"
        self.decisions.request_retry(failed)
        return f"retry requested for {len(failed)} action(s) of {printable(scan)}"

    def _short_of(self, action_id: str, approvers: list[str]) -> bool:
        """Whether an approved action still waits for a second, different approver."""
        over = self.config.approval.second_approver_over_bytes
        row = self.reader().get_action(action_id) if self.reader() else None
        return (
            row is not None
            and needs_second_approver(row.kind, None, row.bytes, over)
            and len(approvers) < 2
        )


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
