"""Polling the open tasks and recording how each one ended.

At the start of a pass every open task is looked at: a copy whose submission was interrupted
(`preparing`) is sent again under the same submission id; an interrupted delete or replace is
settled first (`engine/deletes.py`, `engine/interrupted_replaces.py`) and resumed only after its
last look; an active task is polled, and a delete rejected or held since its submission is
cancelled (`engine/withdrawn_deletes.py`), and so is a copy into an off-site endpoint whose scan
was flagged export-controlled since (`engine/export_flights.py`: such a copy is never counted).
A finished copy counts only with checksum evidence;
a finished delete is settled scan by scan (`engine/finished_deletes.py`).
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING

from engine import submitted
from engine.copy_evidence import settled_signature
from engine.decisions import DecisionLog
from engine.errors import classify
from engine.export_flights import ExportFlights
from engine.model import ActionKind, ErrorClass, Level
from engine.outcome import Outcome
from engine.replace_receipts import replace_receipt
from engine.state import OPEN_TASK_STATES, SUBMITTED, ActionRow, TaskRow, TaskRowStatus
from engine.storage.base import ItemResult, TaskStatus
from engine.tallies import ActionOutcome
from engine.task_progress import record_item_progress

if TYPE_CHECKING:
    from engine.executor import Executor

log = logging.getLogger("engine.executor")


class TaskPolling:
    """Polls open tasks, settles interrupted submissions, and records finished tasks."""

    def __init__(self, executor: Executor) -> None:
        self._executor = executor
        self.store = executor.store
        self.export_flights = ExportFlights(executor)
        # Tasks whose poll raised since the drain began: it stops waiting for them (the next
        # pass polls them again) instead of polling an error until its timeout.
        self.unpollable: set[str] = set()

    def poll_tasks(self, now: datetime, *, local_only: bool = False) -> Outcome:
        """Resubmit copies whose submission was interrupted, settle such deletes (they are
        resumed by `execute` after their last look); poll the active tasks."""
        ex = self._executor
        outcome = Outcome()
        if not local_only:
            ex.interrupted.begin_pass()
            ex.interrupted_replaces.begin_pass()
        for task in self.store.tasks(OPEN_TASK_STATES):
            mover = ex.backends.movers.get(task.mover)
            if mover is None:
                log.error("task %s uses mover %r, which is not configured", task.label, task.mover)
                continue
            if local_only and not mover.finishes_locally:
                continue
            if task.status == TaskRowStatus.PREPARING and task.kind == "delete":
                adopted = None if local_only else ex.interrupted.settle(task, mover, now)
                if adopted is None:
                    continue
                task = adopted
            elif task.status == TaskRowStatus.PREPARING and ex.interrupted_replaces.carries_replace(
                task
            ):
                # It may have overwritten the older version already: settled from a fresh
                # listing, resumed only after a last look (engine/interrupted_replaces.py).
                adopted = None if local_only else ex.interrupted_replaces.settle(task, mover, now)
                if adopted is None:
                    continue
                task = adopted
            elif task.status == TaskRowStatus.PREPARING:
                if local_only and task.submission_id in ex.submission.unsent:
                    continue  # kept back this pass: an endpoint is not provably its storage
                request = ex.submission.rebuild_request(task)
                if request is not None:
                    ex.submission.send(mover, task, request, now)
                continue
            # A delete rejected (or its scan held) since its submission: cancel what still runs.
            task = ex.withdrawals.cancel_if_withdrawn(task, mover, now)
            # A copy off site whose scan was flagged export-controlled since its submission.
            task = self.export_flights.cancel_if_controlled(task, mover, now)
            assert task.task_id is not None
            # A mover that answers per scan only for tasks it was told about (Globus, in a new
            # process) is told which scans the task carries.
            if not mover.knows(task.task_id):
                request = ex.submission.rebuild_request(task)
                if request is not None:
                    mover.track(task.task_id, request)
            try:
                status = mover.poll(task.task_id)
            except Exception as exc:
                log.warning(
                    "polling task %s failed (%s): %s", task.task_id, classify(exc).value, exc
                )
                self.unpollable.add(task.submission_id)
                continue
            status = ex.task_watch.check(task, status, mover, now)
            self.store.update_task(
                task.submission_id,
                now,
                bytes_total=status.bytes_total,
                bytes_done=status.bytes_done,
                files_total=status.files_total,
                files_done=status.files_done,
                rate=status.bytes_per_second,
            )
            record_item_progress(self.store, task.submission_id, status.item_progress)
            if status.finished:
                outcome += self.finish(task, status, now)
        return outcome

    def drain(self, timeout_seconds: float = 3600) -> Outcome:
        """Wait for every task run by an in-process mover to finish, recording each outcome."""
        ex = self._executor
        outcome = Outcome()
        clock = ex.clock
        deadline = clock.monotonic() + timeout_seconds
        self.unpollable = set()
        while clock.monotonic() < deadline:
            open_local = [
                t
                for t in self.store.tasks(OPEN_TASK_STATES)
                if (m := ex.backends.movers.get(t.mover)) is not None
                and m.finishes_locally
                and not (
                    t.status == TaskRowStatus.PREPARING and t.kind == "delete"
                )  # next pass's look
                and not (
                    t.status == TaskRowStatus.PREPARING
                    and ex.interrupted_replaces.carries_replace(t)
                )
                and t.submission_id not in ex.finished_deletes.unsettled  # settled later
                and t.submission_id not in ex.submission.unsent  # waits for its endpoint
                and t.submission_id not in self.unpollable  # polled again by the next pass
            ]
            if not open_local:
                break
            outcome += self.poll_tasks(clock(), local_only=True)
            clock.sleep(0.02)
        return outcome

    def finish(self, task: TaskRow, status: TaskStatus, now: datetime) -> Outcome:
        """Record how a finished task's actions ended."""
        ex = self._executor
        if task.kind == "delete":
            return ex.finished_deletes.settle(task, status, now)  # scan by scan
        outcome = Outcome()
        results: dict[str, ItemResult] = {r.action_id: r for r in status.results}
        undecided = False
        for aid in task.action_ids:
            action = self.store.get_action(aid)
            if action is None or action.status != SUBMITTED:
                continue  # recorded already
            result = results.get(aid)
            if result is None or not result.ok:
                overwrote = ex.interrupted_replaces.overwritten(
                    action, task, now, f"task {task.task_id} ended {status.state}"
                )
                if overwrote is None:
                    # A replace that may have overwritten the older version: kept open until
                    # a listing of its target tells (a later pass settles it).
                    undecided = True
                    continue
                replaces = submitted.replaced_version(self.store, task.submission_id, aid)
                if status.state == "lost" and replaces is not None and not overwrote:
                    # Died with its process and overwrote nothing: its approval was not used.
                    DecisionLog(self.store).refund_unused(task.submission_id, [aid])
            if status.state == "lost":
                ex.recorder.fail(
                    aid,
                    action.scan,
                    ErrorClass.TRANSIENT,
                    f"task {task.task_id} was interrupted before its outcome was recorded; "
                    "planning again from a fresh look (a finished copy is adopted)",
                    now,
                    action=action,
                    retry_now=True,
                    interrupted=True,
                )
                outcome.failed += 1
            elif result is None or not result.ok:
                message = (result.error if result else None) or status.error or "task failed"
                error_class = result.error_class if result else status.error_class
                retry_now = result.retry_now if result else False
                ex.recorder.fail(
                    aid, action.scan, error_class, message, now, action=action, retry_now=retry_now
                )
                outcome.failed += 1
            elif self.record_success(task, action, result, now):
                outcome.succeeded += 1
            else:
                outcome.failed += 1
        if undecided:
            self.store.update_task(
                task.submission_id,
                now,
                status=TaskRowStatus.PREPARING,
                error=f"ended {status.state}; a replace waits for a listing of {task.target} to "
                "tell what it overwrote",
            )
            return outcome
        self.store.update_task(task.submission_id, now, status=status.state, error=status.error)
        return outcome

    def record_success(
        self, task: TaskRow, action: ActionRow, result: ItemResult, now: datetime
    ) -> bool:
        """A copy counts with checksum evidence only; a delete gets its receipt."""
        ex = self._executor
        if action.kind is not ActionKind.COPY:
            ex.delete_records.record(action, task, now, result=result)
            return True
        evidence = result.evidence
        if self.export_flights.refuse(task, action, evidence, now):
            return False  # export-controlled since its submission: never counted off site
        if evidence is None or evidence.level < Level.CHECKSUM:
            ex.recorder.fail(
                action.id,
                action.scan,
                ErrorClass.NEEDS_HUMAN,
                "the transfer finished without checksum verification; not counted",
                now,
                action=action,
            )
            return False
        assert action.target is not None
        # Files a checksum-sync skipped keep their own mtimes (engine/copy_evidence.py).
        evidence = settled_signature(ex, task, action.scan, action.target, evidence)
        # The evidence is about the storage the task wrote to, even if the config was
        # repointed while it ran.
        storages = ex.storage_identities()
        evidence = storages.stamp(
            action.target, evidence, storages.task_target(task.submission_id, action.target)
        )
        # A versioned object on tape keeps its evidence under its own name, beside the
        # older version's (engine/tape_versions.py).
        _, kept_as = submitted.names(self.store, task.submission_id, action.id)
        self.store.record_evidence(kept_as or action.scan, action.target, evidence)
        self.store.record_success(action.id, now)
        receipt = replace_receipt(self.store, action.id, evidence, task.task_id, now)
        if receipt is not None:
            ex.recorder.event(
                now,
                "copy.replaced",
                f"version {receipt['old_checksum']} at {action.target} replaced by "
                f"{receipt['new_checksum']} (approved by {receipt['approval_by']})",
                scan=action.scan,
                action_id=action.id,
                data=receipt,
            )
        ex.recorder.event(
            now,
            "copy.verified",
            f"copied {action.source} → {action.target}, {evidence.algorithm} "
            f"{evidence.value} verified ({evidence.how}, task {evidence.task_id})",
            scan=action.scan,
            action_id=action.id,
            outcome=ActionOutcome.SUCCEEDED,
            action=action,
        )
        return True
