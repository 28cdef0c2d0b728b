"""Replaces a crash or a failed task cut short: settled from a fresh listing, resumed only after a
last look.

A replace copies a new version of a scan over a copy holding a verified older version. Its
submission (with the version it carries and the version it overwrites: `engine/submitted.py`)
and its intent (`copy.replace_submitted`, naming the approval it spent) are recorded before the
mover runs. If the process dies before the answer is recorded, or the task ends without the copy
being verified (failed, expired, lost with its process), the mover may already have overwritten
the older version — the local mover starts its worker before the executor records the task
active, and a failed transfer may have written some files. So:

1. *Settled from what a fresh listing shows* (`InterruptedReplaces.overwritten`). Only while the
   target proves its identity (an unmounted filesystem proves nothing), the target is listed
   afresh and, where it can be read here, re-hashed. If it no longer holds the older version
   intact (its files, sizes and mtimes changed since that version was verified, or its bytes
   hash to another checksum), the older version *was* overwritten there: a `copy.replaced`
   receipt is written at once from the intent (naming the older and the submitted checksum,
   the approval and the task, `settled_from_listing: true`). Where the target can be read
   here, its bytes are then re-hashed: if they are the submitted version, that version is
   recorded there as a verified copy (`engine/receipted_versions.py`), so a later replace of
   it needs it verified elsewhere; otherwise the target's evidence is dropped. This holds even when the scan changed again before any retry: the
   receipt names the versions the task carried, not the scan's current record. A target that
   cannot be listed decides nothing: the task stays open (`preparing`) and a later pass
   settles it.
2. *Resumed only after a last look* (`InterruptedReplaces.resume`, after this pass's plan). A
   replace whose submission was recorded but whose task no mover knows (`Mover.find_task`; a
   task found is adopted and polled instead) is resubmitted under the same submission id only
   if it is still planned, approved where approval is needed, passes the replace's last look
   (`engine/replace_look.py`) and is admitted by the decisions and holds read again under the
   write lock (`DecisionLog.admit`) — exactly like a resumed delete. A reject or hold recorded
   between the crash and the restart therefore stops it. What does not pass is withdrawn (the
   task `withdrawn`, its actions planned again from fresh observations); its approval comes
   back unless the fresh listing showed the older version overwritten (then it was used).

Plain copies in the same task are resumed with it when still planned (they need no last look).
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, cast

from engine.decisions import DecisionLog
from engine.evidence_identity import StorageIdentities
from engine.identity import IdentityCheck
from engine.inventory.checksum import checksums_equal
from engine.listing import listing_of
from engine.model import Action, ActionKind, Level, Plan
from engine.outcome import Outcome
from engine.receipted_versions import REHASH_HOW, rehash_submitted
from engine.replace_look import UNVERIFIED, passes_last_look, version_files
from engine.state import PLANNED, SUBMITTED, ActionRow, TaskRow, TaskRowStatus, iso
from engine.storage.base import Mover, TaskKind, TaskRequest
from engine.submitted import replaced_version, submitted_scan
from engine.version_sums import version_checksum

if TYPE_CHECKING:
    from engine.executor import Executor
    from engine.observe.observation import Observation

log = logging.getLogger(__name__)

WITHDRAWN = TaskRowStatus.WITHDRAWN  # an interrupted task that was not resubmitted


class InterruptedReplaces:
    """Copy tasks carrying a replace that a crash or a failure cut short (module docstring)."""

    def __init__(self, executor: Executor) -> None:
        self._executor = executor
        self._cleared: dict[str, TaskRow] = {}  # submission id → task awaiting its last look

    @property
    def action_ids(self) -> frozenset[str]:
        """Actions of cleared tasks: not in flight for the planner, which plans them afresh."""
        return frozenset(aid for task in self._cleared.values() for aid in task.action_ids)

    def begin_pass(self) -> None:
        self._cleared.clear()

    def carries_replace(self, task: TaskRow) -> bool:
        store = self._executor.store
        return task.kind == "copy" and any(
            replaced_version(store, task.submission_id, aid) is not None for aid in task.action_ids
        )

    # ---- step 1: what did it already overwrite? -------------------------------------------
    def overwritten(self, row: ActionRow, task: TaskRow, now: datetime, how: str) -> bool | None:
        """Receipt the replace `row` if a fresh listing shows the older version gone from its
        target. Returns True (receipted now or before), False (the older version is intact
        there, or there is none to receipt), None (the target cannot be listed: undecided)."""
        executor = self._executor
        store = executor.store
        old = replaced_version(store, task.submission_id, row.id)
        scan = submitted_scan(store, task.submission_id, row.id)
        target = row.target
        if old is None or old == UNVERIFIED or scan is None or target is None:
            return False
        if self._receipted(row.id, task.submission_id):
            return True
        evidence = store.load_evidence().get(target, {}).get(scan.id)
        storages = StorageIdentities(executor.config, store)
        proof, _ = storages.sort(target, evidence)
        if proof is None or proof.level < Level.CHECKSUM or proof.value != old:
            return False  # no verified older version recorded there (any more)
        storage = executor.backends.storages.get(target)
        if storage is None:
            return None
        try:
            IdentityCheck(executor.config, store, may_initialise=False).check(
                target, user="bl931", now=executor.clock()
            )
            listing = storage.stat_scan(executor.layout, scan.id)
            files = None if listing is None else version_files(listing, scan, proof.signature)
            intact = files is not None
            if files is not None:
                algorithm = proof.algorithm or scan.checksum_algorithm
                sums = storage.checksum_files(listing_of(scan.id, files), algorithm)
                if sums is not None:
                    found = version_checksum(files, sums, algorithm, directory=scan.is_directory)
                    intact = found is not None and checksums_equal(found, old)
        except Exception as exc:
            log.warning(
                "could not list %r at %s to see what an interrupted replace overwrote: %s",
                row.scan,
                target,
                exc,
                extra={"scan": row.scan, "action_id": row.id},
            )
            return None
        if intact:
            return False
        self._receipt(row, task, scan.checksum, old, now, how)
        # The older version is not there any more. If the bytes there are the submitted
        # version, they are verified as that version (re-hashed here): protected like any
        # verified copy, never overwritten as "unverified" (engine/receipted_versions.py).
        if rehash_submitted(store, storages, storage, listing, target, scan, task.task_id, now):
            executor.recorder.event(
                now,
                "copy.rehashed",
                f"{target} re-hashed after an interrupted replace: it holds version "
                f"{scan.checksum} (recorded as a verified copy)",
                scan=row.scan,
                action_id=row.id,
                data={"target": target, "checksum": scan.checksum, "how": REHASH_HOW},
            )
        else:
            store.drop_evidence(scan.id, target)
        return True

    def _receipted(self, action_id: str, submission_id: str) -> bool:
        return any(
            e["kind"] == "copy.replaced" and (e["data"] or {}).get("submission_id") == submission_id
            for e in self._executor.store.events(action_id=action_id)
        )

    def _receipt(
        self, row: ActionRow, task: TaskRow, new: str, old: str, now: datetime, how: str
    ) -> None:
        executor = self._executor
        intents = [
            e["data"] or {}
            for e in executor.store.events(action_id=row.id)
            if e["kind"] == "copy.replace_submitted"
            and (e["data"] or {}).get("submission_id") == task.submission_id
        ]
        intent = intents[-1] if intents else {"target": row.target, "approval_by": None}
        receipt = {
            **intent,
            "target": row.target,
            "old_checksum": old,
            "new_checksum": new,
            "submission_id": task.submission_id,
            "task_id": task.task_id,
            "verified_by": None,
            "settled_from_listing": True,
            "note": f"{how}; a fresh listing shows the older version overwritten at "
            f"{row.target} (the new version is not verified by this receipt)",
            "replaced_at": iso(now),
        }
        executor.recorder.event(
            now,
            "copy.replaced",
            f"version {old} at {row.target} was overwritten by an interrupted replace "
            f"(carrying {new}; approved by {receipt.get('approval_by')})",
            scan=row.scan,
            action_id=row.id,
            level="warning",
            data=receipt,
        )

    def settle(self, task: TaskRow, mover: Mover, now: datetime) -> TaskRow | None:
        """A `preparing` copy task carrying a replace. Returns the task to poll, if a mover
        knows it; otherwise settles what it overwrote and clears it for `resume`."""
        executor = self._executor
        found = executor.submission.find_interrupted(task, mover)
        if found is None:
            return None
        task_id = found.task_id
        if task_id is not None:
            executor.store.update_task(
                task.submission_id, now, task_id=task_id, status=TaskRowStatus.ACTIVE, error=None
            )
            return replace(task, task_id=task_id, status=TaskRowStatus.ACTIVE)
        decided = True
        for row in self._pending(task):
            if self.overwritten(row, task, now, "task interrupted before it was recorded") is None:
                decided = False
        if decided:
            self._cleared[task.submission_id] = task
        return None

    def _pending(self, task: TaskRow) -> list[ActionRow]:
        rows = [self._executor.store.get_action(aid) for aid in task.action_ids]
        return [r for r in rows if r is not None and r.status == SUBMITTED]

    # ---- step 2: resubmit after the last look ---------------------------------------------
    def resume(self, plan: Plan, seen: Observation, now: datetime) -> Outcome:
        """Resubmit, under the same submission id, what is still planned, allowed and passes
        its last look; withdraw the rest."""
        outcome = Outcome()
        if not self._cleared:
            return outcome
        executor = self._executor
        store = executor.store
        planned = {a.id: a for a in plan.actions if a.kind is ActionKind.COPY}
        decisions = DecisionLog(store)
        for task in list(self._cleared.values()):
            mover = executor.backends.movers.get(task.mover)
            passing: list[Action] = []
            withdrawn: list[str] = []
            for row in self._pending(task):
                action = planned.get(row.id)
                why = _refusal(action)
                if why is not None:
                    self._not_resubmitted(row, why, now)
                elif action is not None and (
                    action.replaces is None or passes_last_look(executor, action, seen, now)
                ):
                    passing.append(action)
                    continue
                withdrawn.append(row.id)
            if passing and mover is not None:
                # Decisions and holds read again under the write lock, right before the
                # resubmission: a reject recorded after the crash counts.
                with store.transaction():
                    passing, refused = decisions.admit(passing, task.submission_id, now)
                for refusal in refused:
                    executor.submission.not_submitted(refusal, now)
                withdrawn += [r.action.id for r in refused]
            store.set_action_status(withdrawn, PLANNED, now)
            # A withdrawn replace that overwrote nothing used nothing of its approval.
            decisions.refund_unused(
                task.submission_id,
                [aid for aid in withdrawn if not self._receipted(aid, task.submission_id)],
            )
            if passing and mover is not None:
                request = TaskRequest(
                    cast(TaskKind, task.kind),
                    task.source,
                    task.target,
                    tuple(
                        executor.submission.item(
                            a.id,
                            submitted_scan(store, task.submission_id, a.id) or seen.scans[a.scan],
                            overwrite=a.replaces is not None,
                            target_name=a.target_name,
                            source_name=a.source_name,
                        )
                        for a in passing
                    ),
                    task.submission_id,
                    task.label,
                    executor.submission.deadline(task.created_at),
                )
                if executor.submission.send(mover, task, request, now):
                    outcome.submitted += len(passing)
            else:
                store.update_task(
                    task.submission_id,
                    now,
                    status=WITHDRAWN,
                    error="interrupted; not resubmitted (see the copy.not_resubmitted and "
                    "copy.recheck_failed events)",
                )
        self._cleared.clear()
        return outcome

    def _not_resubmitted(self, row: ActionRow, why: str, now: datetime) -> None:
        self._executor.recorder.event(
            now,
            "copy.not_resubmitted",
            f"copy {row.source} → {row.target}: {why}",
            scan=row.scan,
            action_id=row.id,
            level="warning",
            data={"reason_code": "not_resubmitted"},
        )


def _refusal(action: Action | None) -> str | None:
    """Why an interrupted copy may not be resubmitted by the plan's verdict, or None."""
    if action is None:
        return "an interrupted copy is not resubmitted: it is no longer planned"
    if action.requires_approval and not action.approved:
        return "an interrupted copy is not resubmitted: it is not approved"
    return None
