"""The last look before a delete: everything it relies on, re-verified right before submission.

Deletes are re-checked against a fresh listing of every endpoint they rely on right before they
are submitted; local copies are re-hashed, each must be a different file from the one deleted,
and the copy deleted must still hold the acquisition's bytes (`engine/last_look.py` holds those
file checks). The endpoints involved must still provably be their storage (markers, mounts), and
a copy another unfinished delete relies on is not deleted. A failed re-check skips the delete
(the next pass plans it again from a new observation) and is recorded as a
`delete.recheck_failed` event with a reason code; a refusal that will not go away by itself
also holds the delete for a person (`needs_attention`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from engine import tape_versions
from engine.errors import Bl931Error
from engine.evidence_identity import StorageIdentities
from engine.last_look import (
    Refusal,
    check_distinct_copies,
    check_mounted_target,
    check_target_unchanged,
)
from engine.model import Action, ActionKind, ErrorClass, Level
from engine.observe import assess, inventory_signature
from engine.remnants import remnant_index
from engine.state import SUBMITTED
from engine.tallies import ActionOutcome

if TYPE_CHECKING:
    from engine.executor import Executor
    from engine.reconciler import Observation
    from engine.recorder import Recorder


def record_skipped(
    recorder: Recorder,
    action: Action,
    now: datetime,
    why: str,
    *,
    code: str,
    level: str = "warning",
) -> bool:
    """Record a skipped delete (`reason_code` in the event's data) and return False."""
    recorder.event(
        now,
        "delete.recheck_failed",
        f"delete from {action.target} skipped: {why}",
        scan=action.scan,
        action_id=action.id,
        level=level,
        data={"reason_code": code},
        outcome=ActionOutcome.SKIPPED,
        action=action,
    )
    return False


class DeleteLook:
    """The last look of planned (or resumed) deletes, on this pass's fresh listings."""

    def __init__(self, executor: Executor) -> None:
        self._executor = executor

    def passes(
        self,
        action: Action,
        seen: Observation,
        relied_on: dict[tuple[str, str], str],
        now: datetime,
    ) -> bool:
        """Every check, cheapest first; each failure is recorded."""
        return (
            self.not_relied_on(action, relied_on, now)
            and self.identities_hold(action, now)
            and self.recheck(action, seen, now)
        )

    def recheck(self, action: Action, seen: Observation, now: datetime) -> bool:
        """Re-verify, on fresh listings, everything this delete relies on."""
        ex = self._executor
        assert action.target is not None
        scan = seen.scans[action.scan]
        rule = ex.policy.retention[action.target]
        if action.scan in ex.store.active_holds(now):
            return self.failed(action, now, "a hold was placed", code="on_hold")
        roots = ex.backends.local_roots
        # Cheap (one lstat per file) and decisive: a copy that is the deleted file itself proves
        # nothing, however well it verifies.
        refusal = check_distinct_copies(scan, action.target, rule.delete_requires, roots)
        if refusal is not None:
            return self.refused(action, now, refusal)
        evidence = ex.store.load_evidence()
        # Evidence counts only on the storage it was taken on, told afresh (a remount).
        storages = StorageIdentities(ex.config, ex.store)
        for required in rule.delete_requires:
            storage = ex.backends.storages.get(required)
            if storage is None:
                return self.failed(
                    action, now, f"{required} has no storage backend", code="endpoint_unknown"
                )
            # The current version's copy there: a versioned object beside an older version
            # on tape is listed and read under its own name (engine/tape_versions.py).
            kept_as = tape_versions.name_at(evidence.get(required, {}), scan)
            try:
                listing = tape_versions.fresh_listing(storage, ex.layout, scan, kept_as)
            except Exception as exc:
                return self.failed(
                    action, now, f"{required} could not be listed: {exc}", code="endpoint_unknown"
                )
            if listing is None:
                return self.failed(action, now, f"the {required} copy is gone", code="copy_missing")
            proof, moved = storages.sort(required, evidence.get(required, {}).get(kept_as))
            level = assess(
                scan,
                required,
                listing,
                proof,
                is_inventory=required == ex.policy.inventory_endpoint,
                elsewhere=moved,
            ).replica.level
            if level < rule.verify:
                return self.failed(
                    action,
                    now,
                    f"the {required} copy is now verified by {level.word} only",
                    code="copy_unverified",
                )
            if rule.verify >= Level.CHECKSUM:
                try:
                    sums = tape_versions.checksums(
                        storage, listing, scan, kept_as, scan.checksum_algorithm
                    )
                except Exception as exc:
                    return self.failed(
                        action, now, f"re-hashing {required} failed: {exc}", code="endpoint_unknown"
                    )
                if sums is not None:
                    bad = [f.path for f in scan.files if sums.get(f.path) != f.checksum]
                    if bad:
                        ex.store.drop_evidence(kept_as, required)
                        return self.failed(
                            action,
                            now,
                            f"the {required} copy no longer matches the acquisition checksum "
                            f"({len(bad)} files, e.g. {bad[0]!r}); evidence dropped",
                            level="error",
                            code="copy_mismatch",
                        )
        if action.target == ex.policy.inventory_endpoint:
            storage = ex.backends.storages.get(action.target)
            listing = storage.stat_scan(ex.layout, scan.id) if storage else None
            if (
                listing is not None
                and listing.signature != inventory_signature(scan)
                # the rest of a partial delete of this version: the same version, not a change
                and not remnant_index(ex.store, action.target).is_remnant(
                    scan, listing.files, by_identity=False
                )
            ):
                return self.failed(
                    action, now, "the scan changed since inventory", code="changed_since_inventory"
                )
        # Last, and the most expensive: the bytes about to go must be the ones verified elsewhere.
        target_storage = ex.backends.storages.get(action.target)
        if ex.backends.kinds.get(action.target) == "globus" and action.target in roots:
            assert target_storage is not None
            refusal = check_mounted_target(scan, action.target, target_storage, ex.layout)
        else:
            refusal = check_target_unchanged(scan, action.target, roots)
        if refusal is not None:
            if action.target != ex.policy.inventory_endpoint:
                ex.store.drop_evidence(scan.id, action.target)  # so the copy gets repaired
            return self.refused(action, now, refusal)
        return True

    def identities_hold(self, action: Action, now: datetime) -> bool:
        """At the last look, the endpoint deleted from and every one relied on are still
        provably their storage (markers, mounts): a filesystem swapped since the observation
        proves nothing."""
        ex = self._executor
        assert action.target is not None
        if ex.identity is None:
            return True
        rule = ex.policy.retention[action.target]
        for endpoint in (*rule.delete_requires, action.target):
            try:
                ex.identity.check(endpoint, user="bl931", now=now)
            except Bl931Error as exc:
                return self.failed(
                    action, now, f"endpoint_identity: {exc}", code="endpoint_identity"
                )
        return True

    def refused(self, action: Action, now: datetime, refusal: Refusal) -> bool:
        """A refusal by the last look's file checks. What they find (a copy that is the deleted
        file itself, bytes at the target that are not the acquisition's) will not go away by
        itself, so besides the event the delete is held for a person (`needs_attention`, shown
        and kept until an operator retries it); a check that could not run is only skipped."""
        ex = self._executor
        self.failed(action, now, refusal.message, level="error", code=refusal.code)
        if refusal.needs_human:
            ex.store.record_failure(action.id, ErrorClass.NEEDS_HUMAN, refusal.message, now, None)
        return False

    def failed(
        self, action: Action, now: datetime, why: str, *, code: str, level: str = "warning"
    ) -> bool:
        """Record a skipped delete and return False."""
        return record_skipped(self._executor.recorder, action, now, why, code=code, level=level)

    def copies_relied_on(self, planned: Sequence[Action]) -> dict[tuple[str, str], str]:
        """(scan, endpoint) → the endpoint whose delete, planned or in flight, relies on it.

        A delete is re-checked against its required copies once, before it is submitted; the
        copies must then stay until it is done. The planner keeps them wanted while the delete
        is planned; this also covers a delete still in flight (e.g. resubmitted after a crash).
        """
        ex = self._executor
        relied: dict[tuple[str, str], str] = {}
        pending = [(a.scan, a.target) for a in planned]
        pending += [
            (a.scan, a.target) for a in ex.store.actions([SUBMITTED]) if a.kind is ActionKind.DELETE
        ]
        for scan, target in pending:
            rule = ex.policy.retention.get(target or "")
            if rule is None or target is None:
                continue
            for required in rule.delete_requires:
                relied.setdefault((scan, required), target)
        return relied

    def not_relied_on(
        self, action: Action, relied_on: dict[tuple[str, str], str], now: datetime
    ) -> bool:
        assert action.target is not None
        holder = relied_on.get((action.scan, action.target))
        if holder is None or holder == action.target:
            return True
        return self.failed(
            action,
            now,
            f"a delete at {holder} that relies on this copy is not finished yet",
            code="required_copy_being_deleted",
        )
