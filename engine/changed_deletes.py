"""A scan that changes after its delete's last look, while the delete task waits or runs.

A Globus delete names paths only: a `delete_item` has a `path` and nothing else (globus-sdk
`DeleteData.add_item`: "Add a file or directory or symlink to be deleted … :param path: Path to
the directory or file to be deleted"; Transfer docs, "Delete specific fields"), so it cannot be
made conditional on the bytes the last look saw. A file rewritten after the last look and
before Transfer reaches it is deleted by path. bl931 cannot close that window; it narrows it and
keeps the record honest:

- *Narrowed* (`QueuedChanges.look`, at each poll of an open delete task, before the poll): when
  the target is mounted here, each file the task carries is stat'ed; one whose size or mtime
  (size only at another endpoint than the inventory's, whose copies' mtimes need not be the
  acquisition's) differs from the submitted version's record (`engine/submitted.py`) makes
  the task be cancelled like a withdrawn delete (`engine/withdrawn_deletes.py`), and the change
  is recorded (`delete.source_changed`, naming the paths and the submission).
- *Honest* (`QueuedChanges.unverified`, when the task's receipts are written): a removed path
  that bl931 saw changed after the last look — recorded at a poll, or (at the inventory
  endpoint) in the scan's record by a later inventory walk — is not claimed as the approved version's bytes: the receipt lists it
  under `removed_unverified`, not `removed`, and a `notify` alert (`removed_unverified`) names
  it until acknowledged: bytes nobody approved may be gone.

What stays open: a change made and deleted between two polls, with no inventory walk between
(or a target bl931 cannot stat here), is never seen; its receipt claims the approved version.
"""

from __future__ import annotations

import json
import logging
import os
from datetime import datetime
from typing import TYPE_CHECKING

from engine.errors import UnsafePath
from engine.model import Alert, AlertEffect, ClearedBy, Scan
from engine.state import SUBMITTED, ActionRow, StateStore, TaskRow
from engine.storage.localfs import safe_path
from engine.submitted import submitted_scan

if TYPE_CHECKING:
    from engine.executor import Executor
    from engine.receipts import Receipt

log = logging.getLogger(__name__)

SOURCE_CHANGED = "delete.source_changed"
REMOVED_UNVERIFIED = "removed_unverified"


class QueuedChanges:
    """Changes to the files of open delete tasks (see the module docstring)."""

    def __init__(self, executor: Executor) -> None:
        self._executor = executor

    def look(self, task: TaskRow, now: datetime) -> dict[str, list[str]]:
        """action id → paths of the task's files at a mounted target that changed since the
        last look (files already gone are the task's work, not a change). Recorded once per
        path and submission."""
        executor = self._executor
        root = executor.backends.local_roots.get(task.target or "")
        if task.kind != "delete" or root is None:
            return {}
        # The last look at the inventory endpoint saw the inventoried sizes and mtimes; a copy
        # elsewhere was re-hashed, its mtimes need not be the acquisition's: sizes only there.
        with_mtime = task.target == executor.policy.inventory_endpoint
        out: dict[str, list[str]] = {}
        for aid in task.action_ids:
            action = executor.store.get_action(aid)
            if action is None or action.status != SUBMITTED:
                continue
            scan = submitted_scan(executor.store, task.submission_id, aid)
            if scan is None:
                continue
            changed = []
            for f in scan.files:
                try:
                    st = os.stat(safe_path(root, f.path))
                except (OSError, UnsafePath):
                    continue  # gone (the task's work) or unreadable: nothing seen
                if st.st_size != f.size or (with_mtime and st.st_mtime != f.mtime):
                    changed.append(f.path)
            if changed:
                out[aid] = changed
                self._record(task, action, changed, now)
        return out

    def _record(self, task: TaskRow, action: ActionRow, paths: list[str], now: datetime) -> None:
        seen = self._recorded(task, action.id)
        new = [p for p in paths if p not in seen]
        if not new:
            return
        self._executor.recorder.event(
            now,
            SOURCE_CHANGED,
            f"{len(new)} file(s) of the scan changed at {task.target} after the delete's last "
            f"look, while task {task.task_id} had not finished (e.g. {new[0]!r}): a delete by "
            "path cannot tell the bytes apart; the task is cancelled",
            scan=action.scan,
            action_id=action.id,
            level="warning",
            data={"submission_id": task.submission_id, "paths": new},
        )

    def _recorded(self, task: TaskRow, action_id: str) -> set[str]:
        out: set[str] = set()
        for event in self._executor.store.events(action_id=action_id, limit=200):
            data = event.get("data") or {}
            if event["kind"] == SOURCE_CHANGED and data.get("submission_id") == task.submission_id:
                out.update(data.get("paths") or ())
        return out

    def unverified(self, task: TaskRow, action: ActionRow, removed: list[str]) -> list[str]:
        """Removed paths bl931 saw changed after the last look: at a poll of this task, or in
        the scan's record (an inventory walk since the submission)."""
        store = self._executor.store
        changed = self._recorded(task, action.id)
        submitted = submitted_scan(store, task.submission_id, action.id)
        current = store.get_scan(action.scan)
        inventory = action.target == self._executor.policy.inventory_endpoint
        if inventory and submitted is not None and current is not None:
            # The scan's record describes the inventory endpoint only.
            changed |= _differing(submitted, current)
        return sorted(set(removed) & changed)


def _differing(submitted: Scan, current: Scan) -> set[str]:
    """Paths in both records whose size or mtime differ."""
    now = {f.path: (f.size, f.mtime) for f in current.files}
    return {
        f.path for f in submitted.files if now.get(f.path, (f.size, f.mtime)) != (f.size, f.mtime)
    }


def unverified_alerts(store: StateStore) -> list[Alert]:
    """One `notify` alert per receipt whose delete removed bytes nobody approved."""
    rows = store.connection().execute(
        f"""SELECT scan, endpoint, json_extract(receipt, '$.{REMOVED_UNVERIFIED}') FROM deletions
            WHERE json_array_length(json_extract(receipt, '$.{REMOVED_UNVERIFIED}')) > 0
            ORDER BY deleted_at"""
    )
    alerts = []
    for scan, endpoint, text in rows:
        paths = json.loads(text)
        shown = ", ".join(repr(p) for p in paths[:5])
        alerts.append(
            Alert(
                REMOVED_UNVERIFIED,
                AlertEffect.NOTIFY,
                f"the delete of {scan!r} at {endpoint} removed {len(paths)} file(s) that changed "
                f"after its last look: {shown}; bytes nobody approved may be gone (check for "
                "another copy of them)",
                endpoint=endpoint,
                scan=scan,
                cleared_by=ClearedBy.CONDITION_OR_ACKNOWLEDGEMENT,
            )
        )
    return alerts


def mark_unverified(
    executor: Executor, task: TaskRow, action: ActionRow, receipt: Receipt, now: datetime
) -> None:
    """Move the removed paths bl931 saw changed after the last look from the receipt's
    `removed` to `removed_unverified`, with an error event naming them."""
    removed = receipt.removed
    if not removed:
        return
    unverified = QueuedChanges(executor).unverified(task, action, list(removed))
    if not unverified:
        return
    receipt.removed = [p for p in removed if p not in unverified]
    receipt.removed_unverified = unverified
    executor.recorder.event(
        now,
        "delete.removed_unverified",
        f"task {task.task_id} removed {len(unverified)} file(s) at {action.target} that changed "
        f"after the delete's last look (e.g. {unverified[0]!r}): the bytes removed are not the "
        "approved version's, and may exist nowhere else",
        scan=action.scan,
        action_id=action.id,
        level="error",
        data={"submission_id": task.submission_id, "paths": unverified},
    )
