"""Deletes after the fact: what a finished delete removed and left, and deletes a crash cut short.

*What a receipt says.* A delete removes exactly the scan's manifest files. Its receipt lists
them (`removed`), the manifest files it found already gone (`already_absent`, when the mover
can tell) and everything still found beside the scan afterwards (`left_behind`: the foreign
files, recorded once with a `delete.foreign_files` event; `engine/foreign.py` explains how they
stop counting as the scan). The local mover reports all three; for Globus, the executor lists
the scan's place afresh.

*A crash never skips the last look.* A delete task whose submission id was persisted but whose
answer was never recorded stays `preparing`. It is not simply resubmitted:

1. at the start of the next pass, before observation (`InterruptedDeletes.settle`), the mover
   is asked whether a task carries the submission id (`Mover.find_task`; for Globus a
   `task_list` lookup, see `storage/globus_submissions.py`). If one does, the submission
   arrived after its last look passed: the task is adopted and polled. If the mover cannot
   answer, nothing is assumed and the task waits for the next pass. If none does:
   - Globus: nothing ran; the task is cleared for step 2.
   - local: the worker died with the process, but may have run part of the task first
     (`LocalMover.submit` starts it before the executor records the task active). A fresh
     listing of every scan records a receipt for each one already gone (an expected absence,
     so it is not counted as missing by this pass's observation) and a `partial` receipt for
     a scan cut part-way; the task is cleared for step 2 with the rest.
2. after this pass's observation and plan (`InterruptedDeletes.resume`), each remaining action
   is resubmitted, under the same submission id, only if it is still in the current plan,
   approved where approval is needed (not rejected, not on hold) and passes the same last
   look as a fresh delete (`DeleteLook.passes`, `engine/delete_look.py`); right before the resubmission,
   decisions and holds are read again under the write lock (`DecisionLog.admit`). The
   approval it runs on is the one its submission spent: it is not asked for again. An action
   that does not pass is withdrawn (back to `planned`, with a recorded reason) and planned
   again from fresh observations; it removed nothing under this submission (or has a receipt
   for what it did), so its approval comes back (`DecisionLog.refund_unused`).

While cleared, a task's actions are not "in flight" for the planner (`action_ids`), so the plan
says whether each delete is still wanted.

A delete task that did end (succeeded, failed part-way, expired, or lost once recorded active)
is settled scan by scan by `engine/finished_deletes.py`, with the same fresh listing
(`fresh_leftovers`) and partial receipts (`record_partial`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, cast

from engine.changed_deletes import mark_unverified
from engine.decisions import DecisionLog
from engine.identity import IdentityCheck
from engine.model import Action, ActionKind, Plan, Scan
from engine.outcome import Outcome
from engine.state import PLANNED, SUBMITTED, ActionRow, TaskRow, TaskRowStatus
from engine.storage.base import ItemResult, Mover, ScanListing, TaskKind, TaskRequest
from engine.submitted import submitted_scan
from engine.tallies import ActionOutcome

if TYPE_CHECKING:
    from engine.executor import Executor
    from engine.observe.observation import Observation
    from engine.receipts import Receipt

log = logging.getLogger(__name__)

WITHDRAWN = TaskRowStatus.WITHDRAWN  # an interrupted delete that was not resubmitted


@dataclass(frozen=True, slots=True)
class Leftovers:
    """A fresh listing of a scan's place, read against the scan's manifest."""

    removed: tuple[str, ...]  # manifest files not listed any more
    remaining: tuple[str, ...]  # manifest files still listed
    foreign: tuple[str, ...]  # listed files that are not in the manifest

    @property
    def gone(self) -> bool:
        return not self.remaining


def leftovers(scan: Scan, listing: ScanListing | None) -> Leftovers:
    listed = {f.path for f in listing.files} if listing is not None else set()
    manifest = {f.path for f in scan.files}
    return Leftovers(
        removed=tuple(sorted(manifest - listed)),
        remaining=tuple(sorted(manifest & listed)),
        foreign=tuple(sorted(listed - manifest)),
    )


def receipted_earlier(executor: Executor, action: ActionRow, *, same: bool = False) -> set[str]:
    """Files a `partial` receipt of this action names removed (`same`: this submission's)."""
    return {
        name
        for r in executor.store.receipts(action.scan)
        if r.get("partial")
        and r.get("action_id") == action.id
        and (r.get("submission_id") == action.submission_id) == same
        for name in (r.get("removed") or ())
    }


def add_receipt_files(
    executor: Executor, action: ActionRow, result: ItemResult | None, receipt: Receipt
) -> None:
    """The receipt's account of files: `removed`, `already_absent`, `left_behind` (+ `note`).

    What the mover did not report (`left_behind` from Globus) comes from a fresh listing of
    the scan at the target; if that fails, `left_behind` is None and the note says so.
    """
    scan = submitted_scan(executor.store, action.submission_id, action.id)
    manifest = tuple(f.path for f in scan.files) if scan else ()
    # The mover's removed (Globus: its items), else the manifest, less a cut delete's receipted.
    claimed = result.removed if result is not None and result.removed is not None else manifest
    earlier = receipted_earlier(executor, action)
    ours = receipted_earlier(executor, action, same=True)
    receipt.removed = sorted((set(claimed) - earlier) | ours)
    absent = set(result.already_absent or ()) if result is not None else set()
    absent = (absent | (earlier & set(claimed))) - ours
    if absent:
        receipt.already_absent = sorted(absent)
    if result is not None and result.left_behind is not None:
        receipt.left_behind = sorted(result.left_behind)
        return
    storage = executor.backends.storages.get(action.target or "")
    try:
        if storage is None or scan is None:
            raise LookupError("no storage or no scan record")
        found = leftovers(scan, storage.stat_scan(executor.layout, action.scan))
    except Exception as exc:
        receipt.left_behind = None
        receipt.note = f"could not list what is left beside the scan: {exc}"
        return
    receipt.left_behind = list(found.foreign)
    if found.remaining:
        log.warning(
            "%s: %d file(s) of %r still listed after their delete succeeded, e.g. %r",
            action.target,
            len(found.remaining),
            action.scan,
            found.remaining[0],
        )
        receipt.still_listed = list(found.remaining)


def report_foreign(executor: Executor, action: ActionRow, paths: list[str], now: datetime) -> None:
    """Record, once per delete, the files it left beside the scan (a person should look)."""
    shown = ", ".join(repr(p) for p in paths[:5]) + (" …" if len(paths) > 5 else "")
    executor.recorder.event(
        now,
        "delete.foreign_files",
        f"{len(paths)} file(s) not part of the scan were left at {action.target}: {shown}",
        scan=action.scan,
        action_id=action.id,
        level="warning",
        data={"endpoint": action.target, "paths": paths},
    )


def fresh_leftovers(executor: Executor, action: ActionRow) -> Leftovers | None:
    """What a fresh listing shows of the scan at the delete's target; None if it cannot tell.

    The listing counts only while the target's identity holds (marker, mount): an empty mount
    point would "confirm" a delete that never ran, and another endpoint's root aliased in its
    place would show a scan the delete did remove. This runs before the pass observes (a crash
    is settled first), so the identity is checked here, afresh.
    """
    storage = executor.backends.storages.get(action.target or "")
    # The version the delete was submitted for: the scan may have changed since.
    scan = submitted_scan(executor.store, action.submission_id, action.id)
    if storage is None or scan is None or action.target is None:
        return None
    try:
        identity = IdentityCheck(executor.config, executor.store, may_initialise=False)
        identity.check(action.target, user="bl931", now=executor.clock())
        return leftovers(scan, storage.stat_scan(executor.layout, action.scan))
    except Exception as exc:
        log.warning(
            "could not list %r at %s to see what an interrupted delete did: %s",
            action.scan,
            action.target,
            exc,
            extra={"scan": action.scan, "action_id": action.id},
        )
        return None


def record_partial(
    executor: Executor, task: TaskRow, row: ActionRow, found: Leftovers, now: datetime, *, note: str
) -> None:
    """A `partial` receipt for the files of a scan a delete had removed before it stopped.

    If the same submission deletes the rest, its receipt completes this one (same row) and
    lists these files as `already_absent`; if not (withdrawn, failed, or a changed scan at the
    dtn becomes a new version), this one stays as the record of what went, and the approval
    stays spent.
    """
    assert row.target is not None
    receipt = executor.delete_records.receipt(row, task, now)
    receipt.partial = True
    receipt.removed = list(found.removed)
    receipt.remaining = list(found.remaining)
    receipt.left_behind = []
    receipt.note = note
    mark_unverified(executor, task, row, receipt, now)
    body = receipt.to_json()
    executor.store.record_deletion(
        row.scan, row.target, row.id, task.task_id, now, body, submission_id=task.submission_id
    )
    executor.recorder.event(
        now,
        "delete.partial",
        f"a delete had removed {len(found.removed)} of "
        f"{len(found.removed) + len(found.remaining)} files at {row.target} when it stopped",
        scan=row.scan,
        action_id=row.id,
        level="warning",
        data=body,
    )


class InterruptedDeletes:
    """Delete tasks left `preparing` by a crash: settled before observation, resumed after
    planning (see the module docstring)."""

    def __init__(self, executor: Executor) -> None:
        self._executor = executor
        self._cleared: dict[str, TaskRow] = {}  # submission id → task awaiting its last look

    @property
    def action_ids(self) -> frozenset[str]:
        """Actions of cleared tasks: not in flight for the planner, which plans them afresh."""
        return frozenset(aid for task in self._cleared.values() for aid in task.action_ids)

    def begin_pass(self) -> None:
        self._cleared.clear()

    def settle(self, task: TaskRow, mover: Mover, now: datetime) -> TaskRow | None:
        """Step 1: what did the interrupted task already do? Returns the task to poll, if any."""
        executor = self._executor
        found = executor.submission.find_interrupted(task, mover)
        if found is None:
            return None
        task_id = found.task_id
        if task_id is None:
            # A local worker dies with its process, but it may have run part of the task.
            if not mover.finishes_locally or self._record_what_is_gone(task, now):
                self._cleared[task.submission_id] = task
            return None
        executor.store.update_task(
            task.submission_id, now, task_id=task_id, status=TaskRowStatus.ACTIVE, error=None
        )
        for item in found.request.items:
            executor.recorder.event(
                now,
                "delete.submitted",
                f"{task.label} (task {task_id}, found at {mover.name} after an interruption)",
                scan=item.scan,
                action_id=item.action_id,
                outcome=ActionOutcome.SUBMITTED,
                action=task,
            )
        return replace(task, task_id=task_id, status=TaskRowStatus.ACTIVE)

    def _record_what_is_gone(self, task: TaskRow, now: datetime) -> bool:
        """Receipts for the scans a fresh listing shows gone; False if some could not be listed."""
        executor = self._executor
        listed_all = True
        for row in self._pending(task):
            found = fresh_leftovers(executor, row)
            if found is None:
                listed_all = False
            elif found.gone:
                executor.delete_records.record(
                    row,
                    task,
                    now,
                    note="task interrupted before it was recorded; the scan was confirmed "
                    "absent by a fresh listing",
                    result=ItemResult(
                        row.id, ok=True, removed=found.removed, left_behind=found.foreign
                    ),
                )
            elif found.removed:
                record_partial(
                    executor,
                    task,
                    row,
                    found,
                    now,
                    note="task interrupted part-way; these files were confirmed absent by a "
                    "fresh listing, the rest waits for its last look",
                )
        if not self._pending(task):
            executor.store.update_task(
                task.submission_id, now, status=TaskRowStatus.SUCCEEDED, error=None
            )
            return False
        return listed_all

    def _pending(self, task: TaskRow) -> list[ActionRow]:
        rows = [self._executor.store.get_action(aid) for aid in task.action_ids]
        return [r for r in rows if r is not None and r.status == SUBMITTED]

    def resume(
        self,
        plan: Plan,
        seen: Observation,
        relied_on: dict[tuple[str, str], str],
        now: datetime,
    ) -> Outcome:
        """Step 2: resubmit what is still planned, allowed and passes its last look."""
        outcome = Outcome()
        if not self._cleared:
            return outcome  # nothing interrupted: no index of the plan is needed
        executor = self._executor
        look = executor.delete_look
        planned = {a.id: a for a in plan.actions if a.kind is ActionKind.DELETE}
        blocked = {
            (b.scan, b.endpoint): f"{b.reason_code}: {b.reason}"
            for b in plan.blocked
            if b.kind is ActionKind.DELETE
        }
        decisions = DecisionLog(executor.store)
        for task in list(self._cleared.values()):
            mover = executor.backends.movers.get(task.mover)
            passing: list[Action] = []
            withdrawn: list[str] = []
            for row in self._pending(task):
                action = planned.get(row.id)
                why = _refusal(action, blocked.get((row.scan, row.target)))
                if why is not None:
                    assert row.target is not None
                    look.failed(_as_action(row), now, why, code="not_resubmitted")
                elif action is not None and look.passes(action, seen, relied_on, now):
                    passing.append(action)
                    continue
                executor.store.set_action_status([row.id], PLANNED, now)
                withdrawn.append(row.id)
            if passing and mover is not None:
                # As for a fresh delete: decisions and holds read again under the write lock,
                # right before the resubmission (a reject during these last looks counts).
                with executor.store.transaction():
                    passing, refused = decisions.admit(passing, task.submission_id, now)
                    executor.store.set_action_status([r.action.id for r in refused], PLANNED, now)
                for refusal in refused:
                    executor.submission.not_submitted(refusal, now)
                withdrawn += [r.action.id for r in refused]
            # A withdrawn delete removed nothing under this submission (or has a receipt for
            # what it did): nothing of its approval was used, so it stands for a later one.
            decisions.refund_unused(task.submission_id, withdrawn)
            if passing and mover is not None:
                request = TaskRequest(
                    cast(TaskKind, task.kind),
                    task.source,
                    task.target,
                    tuple(executor.submission.item(a.id, seen.scans[a.scan]) for a in passing),
                    task.submission_id,
                    task.label,
                    executor.submission.deadline(task.created_at),
                )
                if executor.submission.send(mover, task, request, now):
                    outcome.submitted += len(passing)
            else:
                executor.store.update_task(
                    task.submission_id,
                    now,
                    status=WITHDRAWN,
                    error="interrupted; not resubmitted (see the delete.recheck_failed events)",
                )
        self._cleared.clear()
        return outcome


def _refusal(action: Action | None, blocked: str | None) -> str | None:
    """Why an interrupted delete may not be resubmitted by the plan's verdict, or None."""
    if action is None:
        why = f"blocked ({blocked})" if blocked else "it is no longer planned"
        return f"an interrupted delete is not resubmitted: {why}"
    if action.requires_approval and not action.approved:
        return "an interrupted delete is not resubmitted: it is not approved"
    return None


def _as_action(row: ActionRow) -> Action:
    return Action(
        row.id, row.kind, row.scan, row.source, row.target, row.bytes, row.requires_approval, ""
    )
