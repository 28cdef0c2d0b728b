"""A copy to an off-site endpoint in flight when its scan is flagged export-controlled.

The planner never plans a copy to a target that has one in flight, so its export check
(engine/rules/copies.py) cannot reach a copy submitted before the flag arrived (a notify with
`--export-control`, a `controlled` rule added to the config). This module reaches it:

- At each poll of an open copy task into an endpoint marked `offsite = true`
  (`ExportFlights.cancel_if_controlled`, before the task is polled), the task's scans are
  checked against this pass's export-control facts. If one of them is export-controlled, the
  task is cancelled (`Mover.cancel`; a Globus task is one Transfer task for the batch, so the
  whole batch stops; the other scans' copies end failed and are planned again). The request is
  recorded once, on the task (its `error` starts with `CANCEL_REQUESTED`) and as a
  `copy.cancel_requested` event per flagged scan; the cancel is asked again at every poll
  until the task ends.
- However the task ends, the copy of a flagged scan into an off-site endpoint is never counted
  (`ExportFlights.refuse`, before a finished copy is recorded): no evidence, no success; the
  action is recorded failed and a `copy.not_counted` warning event names what may now be off
  site (a task that had finished before the poll, or files written before the cancel took
  effect). bl931 does not remove those bytes: an operator decides (docs/safety.md, known gaps).
  The next plan blocks the copy `export_controlled`.

Only a scan whose flag is known to be "controlled" is stopped; a scan whose export control is
still unknown keeps a copy already submitted (it was submitted under the rules of its time).
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING

from engine.errors import classify
from engine.export_control import CONTROLLED, ExportControl
from engine.model import ErrorClass
from engine.replace_receipts import replace_receipt
from engine.scan_hints import export_control_for
from engine.state import SUBMITTED, ActionRow, TaskRow, TaskRowStatus
from engine.storage.base import Mover
from engine.withdrawn_deletes import CANCEL_REQUESTED, cancel_requested

if TYPE_CHECKING:
    from engine.executor import Executor
    from engine.model import Evidence

log = logging.getLogger(__name__)


class ExportFlights:
    """Copies into off-site endpoints of scans flagged since their submission."""

    def __init__(self, executor: Executor) -> None:
        self._executor = executor
        self._offsite = frozenset(
            name for name, spec in executor.config.endpoints.items() if spec.offsite
        )

    def _facts(self) -> ExportControl:
        ex = self._executor
        return export_control_for(ex.config, ex.store)

    def _source(self, facts: ExportControl, scan: str) -> str | None:
        """What flagged the scan ("notify", "rule <glob>"), or None: it is not flagged."""
        fact = facts.fact(scan)
        return fact[1] if fact is not None and fact[0] == CONTROLLED else None

    def flagged(self, task: TaskRow) -> dict[str, tuple[str, str]]:
        """action id → (scan, what flagged it), for the task's copies not yet settled into an
        off-site endpoint whose scans are export-controlled now."""
        if task.kind == "delete" or task.target not in self._offsite:
            return {}
        store = self._executor.store
        facts = self._facts()
        out: dict[str, tuple[str, str]] = {}
        for aid in task.action_ids:
            action = store.get_action(aid)
            if action is None or action.status != SUBMITTED:
                continue
            source = self._source(facts, action.scan)
            if source is not None:
                out[aid] = (action.scan, source)
        return out

    def cancel_if_controlled(self, task: TaskRow, mover: Mover, now: datetime) -> TaskRow:
        """Cancel an open copy task into an off-site endpoint one of whose scans is flagged;
        returns the task as recorded now (marked once the cancel was asked for)."""
        if task.task_id is None or task.status != TaskRowStatus.ACTIVE:
            return task
        flagged = self.flagged(task)
        if not flagged:
            return task
        why = "; ".join(
            f"{scan} is export-controlled ({source})" for scan, source in flagged.values()
        )
        try:
            mover.cancel(task.task_id)
        except Exception as exc:
            log.warning(
                "cancelling copy task %s into off-site %s (%s) failed (%s): %s; asked again at "
                "the next poll",
                task.task_id,
                task.target,
                why,
                classify(exc).value,
                exc,
            )
            return task
        if cancel_requested(task):
            return task
        ex = self._executor
        error = f"{CANCEL_REQUESTED}{why}, and {task.target} is off-site"
        ex.store.update_task(task.submission_id, now, error=error)
        for aid, (scan, source) in flagged.items():
            ex.recorder.event(
                now,
                "copy.cancel_requested",
                f"{scan} was flagged export-controlled ({source}) after its copy to off-site "
                f"{task.target} was submitted: asked {mover.name} to cancel task "
                f"{task.task_id} (the copy is not counted, whatever it wrote before the cancel "
                "took effect)",
                scan=scan,
                action_id=aid,
                level="warning",
                data={"task_id": task.task_id, "submission_id": task.submission_id},
            )
        return replace(task, error=error)

    def refuse(
        self, task: TaskRow, action: ActionRow, evidence: Evidence | None, now: datetime
    ) -> bool:
        """Whether a finished copy must not be counted (its scan is export-controlled and its
        target off-site); if so it is recorded failed, with a `copy.not_counted` event."""
        if action.target not in self._offsite:
            return False
        source = self._source(self._facts(), action.scan)
        if source is None:
            return False
        ex = self._executor
        if evidence is not None:
            # What a replace overwrote is a fact, counted or not (engine/replace_receipts.py).
            receipt = replace_receipt(ex.store, action.id, evidence, task.task_id, now)
            if receipt is not None:
                ex.recorder.event(
                    now,
                    "copy.replaced",
                    f"version {receipt['old_checksum']} at {action.target} overwritten by "
                    f"task {task.task_id} (approved by {receipt['approval_by']}); the new "
                    "version is not counted there (export-controlled)",
                    scan=action.scan,
                    action_id=action.id,
                    data=receipt,
                )
        message = (
            f"{action.scan} is export-controlled ({source}): its copy to off-site "
            f"{action.target} (task {task.task_id}) is not counted; the bytes it wrote there "
            "are off site and bl931 does not remove them: an operator decides"
        )
        ex.recorder.fail(
            action.id, action.scan, ErrorClass.NEEDS_HUMAN, message, now, action=action
        )
        ex.recorder.event(
            now,
            "copy.not_counted",
            message,
            scan=action.scan,
            action_id=action.id,
            level="warning",
            data={"task_id": task.task_id, "target": action.target},
        )
        return True
