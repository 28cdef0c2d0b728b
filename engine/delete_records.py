"""Recording a finished delete: its receipt, the expected absence, and its `delete.done` event.

The receipt (`engine/receipts.py`) names exactly the files removed and those left beside the
scan (`engine/deletes.py`); removed files seen changed after the last look are
`removed_unverified` (`engine/changed_deletes.py`). Files left beside the scan are reported once
(`delete.foreign_files`).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from engine.changed_deletes import mark_unverified
from engine.deletes import add_receipt_files, report_foreign
from engine.receipts import Receipt, delete_receipt
from engine.state import ActionRow, TaskRow
from engine.storage.base import ItemResult
from engine.tallies import ActionOutcome

if TYPE_CHECKING:
    from engine.executor import Executor


class DeleteRecords:
    """Writes delete receipts (one per removal) and the events that go with them."""

    def __init__(self, executor: Executor) -> None:
        self._executor = executor
        self.store = executor.store

    def receipt(self, action: ActionRow, task: TaskRow, now: datetime) -> Receipt:
        """A new receipt of `action` run by `task` (its files still to be added)."""
        ex = self._executor
        return delete_receipt(
            ex.config, ex.store, ex.policy, action, task, now, ex.storage_identities()
        )

    def record(
        self,
        action: ActionRow,
        task: TaskRow,
        now: datetime,
        *,
        note: str | None = None,
        result: ItemResult | None = None,
    ) -> None:
        """The delete is done: its receipt (with exactly the files removed and those left
        beside the scan) is written and the absence becomes expected."""
        ex = self._executor
        assert action.target is not None
        receipt = self.receipt(action, task, now)
        add_receipt_files(ex, action, result, receipt)
        mark_unverified(ex, task, action, receipt, now)
        if note is not None:
            receipt.add_note(note)
        body = receipt.to_json()
        self.store.record_deletion(
            action.scan,
            action.target,
            action.id,
            task.task_id,
            now,
            body,
            submission_id=task.submission_id,
        )
        self.store.record_success(action.id, now)
        detail = f"task {task.task_id}" + ("; confirmed absent by a fresh listing" if note else "")
        ex.recorder.event(
            now,
            "delete.done",
            f"deleted from {action.target} ({detail})",
            scan=action.scan,
            action_id=action.id,
            data=body,
            outcome=ActionOutcome.SUCCEEDED,
            action=action,
        )
        if receipt.left_behind:
            report_foreign(ex, action, receipt.left_behind, now)
