"""A delete task that ended — succeeded, failed part-way, expired or lost — settled scan by scan.

A delete task carries a batch of scans, and its end says little about each of them. Transfer
reports a FAILED task by its fatal error and counters only (`fatal_error`, `files_transferred`:
docs.globus.org/api/transfer/task, "Task Fields"), never which items it had done; a task lost
with its process says nothing at all. Marking every scan of such a task failed would leave the
scans it did remove without a receipt, and the next pass would count bl931's own deletes as
vanished replicas: over `max_missing_fraction` of an endpoint that raises the missing-fraction
alert and freezes every delete.

So each scan of a finished task is settled on its own (`FinishedDeletes.settle`):

- the mover reported the scan removed (a succeeded item: the local mover's own account of
  what it unlinked and left, or a SUCCEEDED Globus task, where `ignore_missing` makes success
  mean every listed file is gone): its receipt is written from that report;
- otherwise a fresh listing of the scan at the target decides, and only while the target
  still proves its identity (an unmounted or swapped filesystem proves nothing):
  - every manifest file gone: a receipt (an *expected* absence, never "missing");
  - some gone: a `partial` receipt for exactly those files, and the action is failed;
  - none gone: the action is failed with the task's error (its class decides: a permission
    problem waits for a person, an expired task is retried);
  - no listing possible: undecided. The task is kept open and settled by a later pass that
    can list (unknown is not absent). A lost task becomes `preparing`, settled before the
    next observation like a delete a crash cut short (`engine/deletes.py`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from engine.decisions import DecisionLog
from engine.deletes import fresh_leftovers, record_partial
from engine.model import ErrorClass
from engine.outcome import Outcome
from engine.state import SUBMITTED, ActionRow, TaskRow, TaskRowStatus
from engine.storage.base import ItemResult, TaskStatus
from engine.withdrawn_deletes import cancel_requested

if TYPE_CHECKING:
    from engine.executor import Executor

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _Verdict:
    """How one scan of a finished delete task was settled."""

    done: bool = False  # a full receipt was written
    failed: bool = False  # the action was failed (after a partial receipt, if any)
    undecided: bool = False  # the target could not be listed: settle it later


class FinishedDeletes:
    """Settles the scans of delete tasks that ended (see the module docstring)."""

    def __init__(self, executor: Executor) -> None:
        self._executor = executor
        # Tasks kept open in this process because their target could not be listed: an
        # in-process drain does not wait for them (a later pass settles them).
        self.unsettled: set[str] = set()

    def settle(self, task: TaskRow, status: TaskStatus, now: datetime) -> Outcome:
        """Record what the finished delete `task` did to each of its scans."""
        executor = self._executor
        outcome = Outcome()
        results = {r.action_id: r for r in status.results}
        # Deletes rejected or held since the submission (engine/withdrawn_deletes.py).
        withdrawn = executor.withdrawals.withdrawn(task, now)
        undecided = 0
        for aid in task.action_ids:
            action = executor.store.get_action(aid)
            if action is None or action.status != SUBMITTED:
                continue  # recorded already, or withdrawn from a resumed task
            verdict = self._settle_scan(
                task, status, action, results.get(aid), now, withdrawn.get(aid)
            )
            outcome.succeeded += verdict.done
            outcome.failed += verdict.failed
            undecided += verdict.undecided
        if not undecided:
            self.unsettled.discard(task.submission_id)
            executor.store.update_task(
                task.submission_id, now, status=status.state, error=status.error
            )
        elif status.state == "lost":
            # Nothing will poll a lost task again: it is what a delete interrupted before it
            # was recorded is, settled before a later observation (engine/deletes.py).
            executor.store.update_task(
                task.submission_id, now, status=TaskRowStatus.PREPARING, error=status.error
            )
        else:
            self.unsettled.add(task.submission_id)
            log.warning(
                "delete task %s ended %s, but %s could not be listed to tell which of its "
                "scans are gone (%d undecided); it is settled by a later pass",
                task.task_id,
                status.state,
                task.target,
                undecided,
                extra={"event": "delete.unsettled"},
            )
            executor.store.update_task(
                task.submission_id,
                now,
                error=f"ended {status.state}; {undecided} scan(s) wait for a listing of "
                f"{task.target} to tell what was removed",
            )
        return outcome

    def _settle_scan(
        self,
        task: TaskRow,
        status: TaskStatus,
        action: ActionRow,
        result: ItemResult | None,
        now: datetime,
        withdrawn: str | None = None,
    ) -> _Verdict:
        executor = self._executor
        if result is not None and result.ok:
            executor.delete_records.record(action, task, now, result=result)
            if withdrawn is not None:
                executor.withdrawals.too_late(task, action, withdrawn, now)
            return _Verdict(done=True)
        found = fresh_leftovers(executor, action)
        if found is None:
            return _Verdict(undecided=True)
        how = _how_it_ended(task, status, result)
        if found.gone:
            executor.delete_records.record(
                action,
                task,
                now,
                note=f"{how}; the scan was confirmed absent by a fresh listing",
                result=ItemResult(
                    action.id, ok=True, removed=found.removed, left_behind=found.foreign
                ),
            )
            if withdrawn is not None:
                executor.withdrawals.too_late(task, action, withdrawn, now)
            return _Verdict(done=True)
        cancelled = status.state == "failed" and cancel_requested(task)
        if cancelled:
            how = f"task {task.task_id} cancelled by bl931 ({withdrawn or 'another scan of it was withdrawn'})"
        if found.removed:
            record_partial(
                executor,
                task,
                action,
                found,
                now,
                note=f"{how}; these files were confirmed absent by a fresh listing",
            )
        if cancelled:
            total = len(found.removed) + len(found.remaining)
            executor.withdrawals.settle_cancelled(
                task, action, len(found.removed), total, withdrawn, now
            )
        elif status.state == "lost":
            if not found.removed:
                # Nothing removed, and the task died with its process: the approval is unused.
                DecisionLog(executor.store).refund_unused(task.submission_id, [action.id])
            executor.recorder.fail(
                action.id,
                action.scan,
                ErrorClass.TRANSIENT,
                f"task {task.task_id} was interrupted before its outcome was recorded; "
                "planning again from a fresh look",
                now,
                action=action,
                retry_now=True,
                interrupted=True,
            )
        else:
            message = (result.error if result else None) or status.error or "task failed"
            error_class = result.error_class if result else status.error_class
            if found.removed:
                message = (
                    f"{message} (after removing {len(found.removed)} of "
                    f"{len(found.removed) + len(found.remaining)} files; partial receipt written)"
                )
            executor.recorder.fail(action.id, action.scan, error_class, message, now, action=action)
        return _Verdict(failed=True)


def _how_it_ended(task: TaskRow, status: TaskStatus, result: ItemResult | None) -> str:
    """A receipt note's first words: what became of the task."""
    if status.state == "lost":
        return "task interrupted"
    error = (result.error if result else None) or status.error
    return f"task {task.task_id} ended {status.state}" + (f" ({error})" if error else "")
