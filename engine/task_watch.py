"""Watching open remote tasks for faults that never pass by themselves, and for stalls.

Globus keeps a task that hits an error ACTIVE and retries it for as long as its deadline allows;
its `nice_status` names the fault (Transfer docs, "Task Behavior"). A fault only a person can
clear (a permission, a missing file, a full quota, a missing identity mapping) would keep a task
open for days while nobody knows. So each poll of a remote task passes through `TaskWatch.check`:

- a fault of the needs-human class is recorded with the time it was first seen and raised at
  once as a `notify` alert naming the collections (audit, TUI); once it has lasted
  `[globus] persistent_fault_minutes`, the task is cancelled;
- a copy task that has made no progress (files or bytes done) for `[globus] stall_hours` is
  cancelled (Transfer extends the deadline of a transfer submitted without one while it makes
  progress, so bl931 bounds the wait itself);
- busy endpoints and dropped connections are transient: the task is left to Globus.

The fault clock runs while faults a person must clear follow one another on the task (a
PERMISSION_DENIED, then a QUOTA_EXCEEDED: one persistent fault); a poll that shows no such fault
(the task runs, or only retries a busy endpoint) stops it, and the next one starts afresh. The
stall clock starts when bl931 submits the task; a task with no record (in flight when this
table came with an upgrade) starts it at the first poll that sees it.

A cancel is recorded (why, and that a person is needed) before it is sent, so a process that
dies right after sending it still ends the task's scans as needing attention, with the reason.
A cancelled task still counts as open until Transfer shows it ended; its scans then fail as
needing attention, with the reason the cancel was made. What is watched is kept in the state
store (`task_watch`), so a fault's age survives restarts and `--once` passes.
"""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from engine.config import Config
from engine.model import Alert, AlertEffect, ErrorClass
from engine.state import StateStore, TaskRow, iso, parse_time
from engine.storage.base import Mover, TaskStatus

log = logging.getLogger(__name__)

ALERT_CODE = "task_fault"


@dataclass(frozen=True, slots=True)
class Watched:
    """What is known about one open task."""

    submission_id: str
    progress_at: datetime
    files_done: int = 0
    bytes_done: int = 0
    fault: str | None = None
    fault_class: str | None = None
    fault_message: str | None = None
    fault_since: datetime | None = None
    cancelled_at: datetime | None = None
    cancel_reason: str | None = None


class TaskWatch:
    """The `task_watch` table of one state store, and the rules above.

    Args:
        store: the state store (its one writer is the reconciler).
        config: for `[globus] persistent_fault_minutes` and `stall_hours`.
    """

    def __init__(self, store: StateStore, config: Config) -> None:
        self.store = store
        self.fault_limit = timedelta(minutes=config.globus.persistent_fault_minutes)
        self.stall_limit = timedelta(hours=config.globus.stall_hours)

    def check(self, task: TaskRow, status: TaskStatus, mover: Mover, now: datetime) -> TaskStatus:
        """Record what this poll shows, cancel the task if its time is up, and return the
        status to act on (a task bl931 cancelled ends as needing attention, with the reason)."""
        if mover.finishes_locally or task.task_id is None:
            return status
        watched = self._load(task.submission_id)
        if status.finished:
            if watched is not None:
                self._drop(task.submission_id)
                # A cancel bl931 saw through, or one it meant and may have sent before the
                # process died (the task then ended CANCELED, and nobody else cancels it).
                ours = watched.cancelled_at is not None or status.fault == "CANCELED"
                if watched.cancel_reason is not None and status.state == "failed" and ours:
                    return _as_cancelled(status, watched.cancel_reason)
            return status
        if watched is None:
            # No record: a task in flight when this table came (an upgrade), or whose record
            # was lost. Its progress is counted from now, never from its creation, so a copy
            # that progressed all along is not taken for one stalled since it was submitted.
            watched = Watched(task.submission_id, now, status.files_done, status.bytes_done)
        if status.files_done > watched.files_done or status.bytes_done > watched.bytes_done:
            watched = replace(
                watched, progress_at=now, files_done=status.files_done, bytes_done=status.bytes_done
            )
        if status.fault is not None and status.error_class is ErrorClass.NEEDS_HUMAN:
            # The clock runs while faults only a person can clear follow one another (a
            # PERMISSION_DENIED, then a QUOTA_EXCEEDED...): each code seen is kept.
            running = watched.fault_since is not None and watched.fault is not None
            codes = watched.fault.split(", ") if running and watched.fault else []
            if status.fault not in codes:
                codes.append(status.fault)
            watched = replace(
                watched,
                fault=", ".join(codes),
                fault_since=watched.fault_since or now,
                fault_class=status.error_class.value,
                fault_message=status.error,
            )
        else:
            watched = replace(
                watched, fault=None, fault_class=None, fault_message=None, fault_since=None
            )
        if watched.cancel_reason is None:
            reason = self._why_cancel(task, watched, now)
            if reason is not None:
                # The intent first: if the process dies once the cancel has reached Transfer,
                # the next pass still knows why the task ended CANCELED.
                watched = replace(watched, cancel_reason=reason)
                self._save(watched)
        pending = watched.cancel_reason is not None and watched.cancelled_at is None
        if pending and self._cancel(mover, task.task_id, str(watched.cancel_reason)):
            watched = replace(watched, cancelled_at=now)
        self._save(watched)
        return status

    def started(self, task: TaskRow, mover: Mover, now: datetime) -> None:
        """A remote task was just submitted: its stall clock starts now (a task without a
        record, in flight across an upgrade, starts it at the first poll that sees it)."""
        if mover.finishes_locally:
            return
        with self.store.transaction() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO task_watch(submission_id, progress_at) VALUES (?, ?)",
                (task.submission_id, iso(now)),
            )

    def _why_cancel(self, task: TaskRow, watched: Watched, now: datetime) -> str | None:
        if watched.fault_since is not None and now - watched.fault_since >= self.fault_limit:
            minutes = int(self.fault_limit.total_seconds() // 60)
            return (
                f"{watched.fault_message}; it persisted {minutes} minutes "
                f"([globus] persistent_fault_minutes), so the task was cancelled: fix "
                f"{watched.fault} on the collection, then retry the action"
            )
        # A tape bundle job reports no progress until it ends, and Slurm bounds it by its own
        # walltime (it ends TIMEOUT): the Globus stall rule does not apply to it.
        if (
            task.kind == "copy"
            and not task.mover.startswith("tape:")
            and now - watched.progress_at >= self.stall_limit
        ):
            hours = self.stall_limit.total_seconds() / 3600
            return (
                f"task {task.task_id} made no progress for {hours:g} hours ([globus] "
                f"stall_hours), so it was cancelled: check both collections, then retry"
            )
        return None

    @staticmethod
    def _cancel(mover: Mover, task_id: str, reason: str) -> bool:
        try:
            mover.cancel(task_id)
        except Exception as exc:  # tried again at the next poll
            log.warning("cancelling task %s failed (%s); retrying next pass", task_id, exc)
            return False
        log.error("cancelled task %s: %s", task_id, reason)
        return True

    def alerts(self, targets: dict[str, str]) -> list[Alert]:
        """One `notify` alert per target endpoint with a task retrying a fault a person must
        clear (or cancelled for one and not yet ended).

        Args:
            targets: submission id → the endpoint the task writes to (or deletes from).
        """
        alerts = []
        for watched in self._all():
            endpoint = targets.get(watched.submission_id)
            if endpoint is None:
                continue
            if watched.cancel_reason is not None:
                step = (
                    "waiting for Transfer to stop it"
                    if watched.cancelled_at is not None
                    else "the cancel is sent again at the next pass"
                )
                message = f"{watched.cancel_reason} ({step})"
            elif watched.fault_class == ErrorClass.NEEDS_HUMAN.value and watched.fault_since:
                message = (
                    f"{watched.fault_message} since {iso(watched.fault_since)}; it is cancelled "
                    f"after {int(self.fault_limit.total_seconds() // 60)} minutes"
                )
            else:
                continue
            alerts.append(Alert(ALERT_CODE, AlertEffect.NOTIFY, message, endpoint=endpoint))
        return alerts

    # ---- the table ---------------------------------------------------------------------
    def _all(self) -> list[Watched]:
        if not self.store.has_table("task_watch"):
            return []  # a read-only store at an older schema
        rows = self.store.connection().execute("SELECT * FROM task_watch ORDER BY submission_id")
        return [_watched(row) for row in rows]

    def _load(self, submission_id: str) -> Watched | None:
        row = (
            self.store.connection()
            .execute("SELECT * FROM task_watch WHERE submission_id = ?", (submission_id,))
            .fetchone()
        )
        return _watched(row) if row is not None else None

    def _save(self, w: Watched) -> None:
        with self.store.transaction() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO task_watch(submission_id, fault, fault_class, "
                "fault_message, fault_since, progress_at, files_done, bytes_done, cancelled_at, "
                "cancel_reason, cancel_class) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (
                    w.submission_id,
                    w.fault,
                    w.fault_class,
                    w.fault_message,
                    iso(w.fault_since),
                    iso(w.progress_at),
                    w.files_done,
                    w.bytes_done,
                    iso(w.cancelled_at),
                    w.cancel_reason,
                    ErrorClass.NEEDS_HUMAN.value if w.cancel_reason else None,
                ),
            )

    def _drop(self, submission_id: str) -> None:
        with self.store.transaction() as conn:
            conn.execute("DELETE FROM task_watch WHERE submission_id = ?", (submission_id,))


def _watched(row: sqlite3.Row) -> Watched:
    get = row.__getitem__
    return Watched(
        submission_id=get("submission_id"),
        progress_at=parse_time(get("progress_at")) or datetime.min,
        files_done=int(get("files_done") or 0),
        bytes_done=int(get("bytes_done") or 0),
        fault=get("fault"),
        fault_class=get("fault_class"),
        fault_message=get("fault_message"),
        fault_since=parse_time(get("fault_since")),
        cancelled_at=parse_time(get("cancelled_at")),
        cancel_reason=get("cancel_reason"),
    )


def _as_cancelled(status: TaskStatus, reason: str) -> TaskStatus:
    """A task bl931 cancelled ended: every scan it had not finished needs attention."""
    results = tuple(
        r if r.ok else replace(r, error=reason, error_class=ErrorClass.NEEDS_HUMAN, retry_now=False)
        for r in status.results
    )
    return replace(status, error=reason, error_class=ErrorClass.NEEDS_HUMAN, results=results)
