"""Operator decisions: the only writes the TUI makes (approvals, rejections and taking them
back, holds, retries, alert acknowledgements).

Every decision is recorded with the OS user who made it, in the tables the reconciler consumes.
A read-only session refuses them all with one clear message rather than greying keys silently.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path

from engine.alert_log import AlertLog, AlertRecord
from engine.decision_undo import Decision, undo_decisions
from engine.errors import UsageError
from engine.state import StateStore


class DecisionRefused(Exception):
    """A decision the session may not make (read-only), with the message to show."""


READ_ONLY_MESSAGE = "read-only session: {what} refused (started with --read-only)"


class Decisions:
    """Writes decisions through a writable store opened on first use (never in read-only mode)."""

    def __init__(
        self,
        state_path: Path,
        *,
        user: str,
        clock: Callable[[], datetime],
        read_only: bool,
    ) -> None:
        self.state_path = state_path
        self.user = user
        self.clock = clock
        self.read_only = read_only
        self._store: StateStore | None = None
        self._lock = threading.Lock()

    def _writable(self, what: str) -> StateStore:
        if self.read_only:
            raise DecisionRefused(READ_ONLY_MESSAGE.format(what=what))
        with self._lock:
            if self._store is None:
                self._store = StateStore(self.state_path)
            return self._store

    def approve(self, action_ids: Iterable[str], note: str = "") -> int:
        ids = list(action_ids)
        self._writable("approve").approve(ids, self.user, self.clock(), note)
        return len(ids)

    def reject(self, action_ids: Iterable[str], note: str = "") -> int:
        ids = list(action_ids)
        self._writable("reject").reject(ids, self.user, self.clock(), note)
        return len(ids)

    def place_hold(self, scan: str, reason: str, expires_at: datetime | None) -> int:
        return self._writable("hold").place_hold(scan, reason, self.user, self.clock(), expires_at)

    def lift_hold(self, scan: str) -> int:
        return self._writable("lift hold").lift_hold(scan, self.user, self.clock())

    def request_retry(self, scan: str, action_ids: Iterable[str]) -> int:
        """Make the scan's failed actions due now; recorded with who asked (one event each)."""
        ids = list(action_ids)
        store = self._writable("retry")
        now = self.clock()
        store.request_retry(ids, self.user, now)
        for aid in ids:
            store.event(
                now,
                "action.retry_requested",
                f"retry requested by {self.user}",
                scan=scan,
                action_id=aid,
            )
        return len(ids)

    def undo(self, action_ids: Iterable[str], decision: Decision) -> int:
        """Un-reject (`decision` "reject") or revoke approvals (`decision` "approve"), as
        `--unreject` / `--revoke` do (see `engine.decision_undo`)."""
        store = self._writable("un-reject" if decision == "reject" else "revoke")
        try:
            undone = undo_decisions(store, action_ids, decision, by=self.user, now=self.clock())
        except UsageError as exc:
            raise DecisionRefused(exc.message) from exc
        return len(undone)

    def acknowledge_alert(self, alert_id: str, why: str) -> AlertRecord:
        """Record that this user acknowledges a standing alert, and why (as `--acknowledge` does).

        Args:
            alert_id: the alert's stable id.
            why: the operator's reason, recorded with their name and the time.

        Returns:
            The alert's record with the acknowledgement in it.

        Raises:
            DecisionRefused: a read-only session, no reason, an alert that no longer stands, or
                one that only its condition clears.
        """
        store = self._writable("acknowledge")
        try:
            return AlertLog(store).acknowledge(alert_id, by=self.user, why=why, now=self.clock())
        except UsageError as exc:
            raise DecisionRefused(exc.message) from exc

    def close(self) -> None:
        with self._lock:
            if self._store is not None:
                self._store.close()
                self._store = None
