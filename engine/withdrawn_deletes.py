"""A delete withdrawn after its submission: its running task is cancelled, what it did is kept.

Decisions and holds are read one last time when a delete is submitted (`DecisionLog.admit`).
An operator may still reject the delete, or hold its scan, while the task runs (a Globus task
can run for hours). Such a *withdrawal* stops what can still be stopped:

- At each poll of an open delete task (`Withdrawals.cancel_if_withdrawn`, before the task is
  polled), the task's scans are checked against the decisions and holds in force. If one of
  them is rejected or held, the task is cancelled (`Mover.cancel`; a Globus task is one
  Transfer task for the batch, so the whole batch stops). The request is recorded once, on the
  task (its `error` starts with `CANCEL_REQUESTED`) and as a `delete.cancel_requested` event
  per withdrawn scan naming who withdrew it; it is repeated at every poll until the task ends.
- A file of the task that changed at a mounted target since the last look cancels the task the
  same way (`engine/changed_deletes.py`): a delete by path would remove bytes nobody approved.
- The task ends as it ends: only its end (Transfer: status FAILED with a `completion_time`)
  lets its scans be settled, from a fresh listing (`engine/finished_deletes.py`). What was
  removed before the cancel took effect gets its receipt (`partial`, or a full one if the
  whole scan was gone); the rest stays. Each scan not fully removed is planned again from a
  fresh look (`settle_cancelled`): a withdrawn one stays blocked while its reject or hold
  stands; one that only shared the task with it runs again on its approval if nothing of it
  had been removed (the approval is returned), otherwise it needs a new one.
- A task that had already finished cannot be cancelled (Transfer answers "TaskComplete"): its
  receipts stand, naming the approval in force at the submission, and each withdrawal is
  recorded as too late (`delete.withdrawn_too_late`).
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING

from engine.changed_deletes import QueuedChanges
from engine.decisions import REJECT, DecisionLog
from engine.errors import classify
from engine.model import ErrorClass
from engine.state import SUBMITTED, ActionRow, TaskRow, TaskRowStatus, iso
from engine.storage.base import Mover

if TYPE_CHECKING:
    from engine.executor import Executor

log = logging.getLogger(__name__)

CANCEL_REQUESTED = "cancel requested: "


def cancel_requested(task: TaskRow) -> bool:
    """Did bl931 ask for this task to be cancelled because one of its deletes was withdrawn?"""
    return (task.error or "").startswith(CANCEL_REQUESTED)


class Withdrawals:
    """Withdrawn deletes of open tasks (see the module docstring)."""

    def __init__(self, executor: Executor) -> None:
        self._executor = executor

    def withdrawn(self, task: TaskRow, now: datetime) -> dict[str, str]:
        """action id → who withdrew it and how, for the task's deletes not yet settled that
        are rejected (latest decision) or whose scan is held now."""
        store = self._executor.store
        latest = DecisionLog(store).latest(task.action_ids)
        holds = store.active_holds(now)
        out: dict[str, str] = {}
        for aid in task.action_ids:
            action = store.get_action(aid)
            if action is None or action.status != SUBMITTED:
                continue
            decision = latest.get(aid)
            hold = holds.get(action.scan)
            if decision is not None and decision.decision == REJECT:
                out[aid] = f"rejected by {decision.by} at {iso(decision.at)}"
            elif hold is not None:
                out[aid] = f"held by {hold.placed_by} ({hold.reason})"
        return out

    def cancel_if_withdrawn(self, task: TaskRow, mover: Mover, now: datetime) -> TaskRow:
        """Cancel an open delete task one of whose deletes was withdrawn; returns the task as
        recorded now (marked once the cancel was asked for)."""
        if task.kind != "delete" or task.task_id is None or task.status != TaskRowStatus.ACTIVE:
            return task
        why = self.withdrawn(task, now)
        # A file changed at a mounted target since the last look: a delete by path would
        # remove bytes nobody approved, so it is stopped like a withdrawn one
        # (engine/changed_deletes.py).
        for aid, paths in QueuedChanges(self._executor).look(task, now).items():
            why.setdefault(
                aid, f"changed at {task.target} since its last look ({', '.join(paths[:3])})"
            )
        if not why:
            return task
        try:
            mover.cancel(task.task_id)
        except Exception as exc:
            log.warning(
                "cancelling delete task %s (%s) failed (%s): %s; asked again at the next poll",
                task.task_id,
                "; ".join(why.values()),
                classify(exc).value,
                exc,
            )
            return task
        if cancel_requested(task):
            return task
        executor = self._executor
        error = CANCEL_REQUESTED + "; ".join(dict.fromkeys(why.values()))
        executor.store.update_task(task.submission_id, now, error=error)
        for aid, reason in why.items():
            action = executor.store.get_action(aid)
            executor.recorder.event(
                now,
                "delete.cancel_requested",
                f"delete from {task.target} {reason} after it was submitted: asked "
                f"{mover.name} to cancel task {task.task_id} (what it removed before the cancel "
                "takes effect is receipted from a fresh listing, the rest stays)",
                scan=action.scan if action else None,
                action_id=aid,
                level="warning",
                data={"task_id": task.task_id, "submission_id": task.submission_id},
            )
        return replace(task, error=error)

    def too_late(self, task: TaskRow, action: ActionRow, why: str, now: datetime) -> None:
        """A withdrawn delete whose task removed the whole scan before it could be stopped."""
        spent = DecisionLog(self._executor.store).spent_by(task.submission_id, action.id)
        approval = f" (approved by {spent.by})" if spent is not None else ""
        self._executor.recorder.event(
            now,
            "delete.withdrawn_too_late",
            f"delete from {task.target} {why} after it was submitted, but task {task.task_id} "
            f"had already removed the scan: the receipt stands{approval}",
            scan=action.scan,
            action_id=action.id,
            level="warning",
        )

    def settle_cancelled(
        self,
        task: TaskRow,
        action: ActionRow,
        removed: int,
        total: int,
        why: str | None,
        now: datetime,
    ) -> None:
        """A scan of a cancelled task that was not fully removed: planned again from a fresh
        look (blocked while its own withdrawal stands). An approval whose submission removed
        nothing of it comes back."""
        executor = self._executor
        if not removed:
            DecisionLog(executor.store).refund_unused(task.submission_id, [action.id])
        if why is not None:
            message = f"task {task.task_id} cancelled: the delete was {why}"
        else:
            message = (
                f"task {task.task_id} cancelled by bl931 "
                f"({(task.error or '')[len(CANCEL_REQUESTED) :]})"
            )
        message += (
            f"; {removed} of {total} files were removed before the cancel took effect "
            "(partial receipt), the rest stays"
            if removed
            else "; nothing of this scan was removed"
        )
        if why is None:
            message += "; planned again" + (
                "" if removed else " on its approval, which is returned"
            )
        executor.store.record_failure(action.id, ErrorClass.TRANSIENT, message, now, now)
        executor.recorder.event(
            now,
            "delete.cancelled",
            message,
            scan=action.scan,
            action_id=action.id,
            level="warning",
            data={"task_id": task.task_id, "removed": removed, "withdrawn": why is not None},
        )
