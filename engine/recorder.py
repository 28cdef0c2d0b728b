"""The one place the executor records what happened: a log line and an audit-log row per event.

Every lifecycle event (`copy.submitted`, `delete.done`, `action.failed`, …) is written to the
state store's audit log (`engine/store/events.py`) and logged once, at the event's level, with
the same identifiers as the row (`event`, `scan`, `action_id`, `error_class` as log-record
extras), so journald's JSON lines can be filtered by scan or action without parsing prose.

A failed action is recorded here too (`Recorder.fail`): its failure and retry time in the
store, then its `action.failed` (or `action.interrupted`) event.

The recorder also counts what became of each action as it records it (engine/tallies.py): the
caller says which outcome an event records (`outcome=`, with the action it is about), a failure
counts as failed (an interruption does not), and the counts go to the innermost `counting()`
block open, the executor's entry point that is running. Outside every block nothing is
counted: an outcome belongs to the `execute`, `poll_tasks` or `drain` that recorded it, so it
is counted once, in that call's `Outcome`, and never carried into a later one.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

from engine.backoff import backoff_seconds
from engine.config import Config
from engine.model import ErrorClass
from engine.state import StateStore, iso
from engine.tallies import Acted, ActionOutcome, ActionTallies

log = logging.getLogger("engine.executor")  # the logger operators filter on, as before

LEVELS = {"info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


class Recorder:
    """Logs and stores the executor's events; records failed actions with their retry time."""

    def __init__(self, store: StateStore, config: Config) -> None:
        self.store = store
        self.config = config
        self._tallies: ActionTallies | None = None  # the open `counting()` block's

    @contextmanager
    def counting(self) -> Iterator[ActionTallies]:
        """Count the action outcomes recorded inside the block, and only there, into the
        tallies it yields (an enclosing block does not see them: its caller adds the inner
        call's `Outcome`, which carries them)."""
        outer, self._tallies = self._tallies, ActionTallies()
        try:
            yield self._tallies
        finally:
            self._tallies = outer

    def _count(
        self, action: Acted, outcome: ActionOutcome, error_class: ErrorClass | None = None
    ) -> None:
        if self._tallies is not None:
            self._tallies.count(action, outcome, error_class)

    def event(
        self,
        now: datetime,
        kind: str,
        message: str,
        *,
        scan: str | None = None,
        action_id: str | None = None,
        level: str = "info",
        data: dict[str, Any] | None = None,
        outcome: ActionOutcome | None = None,
        action: Acted | None = None,
    ) -> None:
        """Log the event (at `level`: info, warning or error; any other word logs as info)
        and append it to the audit log; with `outcome`, count it as that outcome of `action`."""
        if outcome is not None and action is None:
            raise ValueError(f"{kind}: an action outcome needs the action it is about")
        extra = _extra(kind, scan, action_id)
        if data and "class" in data:
            extra["error_class"] = data["class"]
        log.log(
            LEVELS.get(level, logging.INFO),
            "%s%s%s: %s",
            kind,
            f" [{action_id}]" if action_id else "",
            f" {scan!r}" if scan else "",
            message,
            extra=extra,
        )
        self.store.event(now, kind, message, scan=scan, action_id=action_id, level=level, data=data)
        if outcome is not None and action is not None:
            self._count(action, outcome)

    def events(
        self,
        now: datetime,
        kind: str,
        entries: list[tuple[str, str | None, str | None]],
        *,
        outcome: ActionOutcome,
        action: Acted,
    ) -> None:
        """`event` for many (message, scan, action id) of one kind, stored in one transaction;
        each counted as `outcome` of `action` (a batch's actions share its kind and target)."""
        for message, scan, action_id in entries:
            log.info(
                "%s%s%s: %s",
                kind,
                f" [{action_id}]" if action_id else "",
                f" {scan!r}" if scan else "",
                message,
                extra=_extra(kind, scan, action_id),
            )
        self.store.add_events(
            (now, "info", kind, scan, action_id, message, None)
            for message, scan, action_id in entries
        )
        for _ in entries:
            self._count(action, outcome)

    def retry_at(self, action_id: str, error_class: ErrorClass, now: datetime) -> datetime | None:
        """When a failed action is tried again: backoff for a transient failure, else never
        by itself (a person retries it)."""
        if error_class is not ErrorClass.TRANSIENT:
            return None  # needs a person (or never works): held until an operator retries
        attempts = self.store.attempts(action_id) if self.store.get_action(action_id) else 0
        delay = backoff_seconds(
            attempts, self.config.retry.base_seconds, self.config.retry.max_seconds
        )
        return now + timedelta(seconds=delay)

    def fail(
        self,
        action_id: str,
        scan: str,
        error_class: ErrorClass,
        message: str,
        now: datetime,
        *,
        action: Acted,
        retry_now: bool = False,
        interrupted: bool = False,
    ) -> None:
        """Record a failed action (its class, message and retry time) and its event, and count
        it as failed (an interruption is not a failure: not counted)."""
        retry_at = now if retry_now else self.retry_at(action_id, error_class, now)
        self.store.record_failure(action_id, error_class, message, now, retry_at)
        # An interruption (the process stopped mid-task) is not a failure of the action: it is
        # logged as what it is, and the action is planned again at once.
        self.event(
            now,
            "action.interrupted" if interrupted else "action.failed",
            message if interrupted else f"{error_class.value}: {message}",
            scan=scan,
            action_id=action_id,
            level="warning" if interrupted else "error",
            data={"class": error_class.value, "retry_at": iso(retry_at)},
        )
        if not interrupted:
            self._count(action, ActionOutcome.FAILED, error_class)


def _extra(kind: str, scan: str | None, action_id: str | None) -> dict[str, Any]:
    extra: dict[str, Any] = {"event": kind}
    if scan is not None:
        extra["scan"] = scan
    if action_id is not None:
        extra["action_id"] = action_id
    return extra
