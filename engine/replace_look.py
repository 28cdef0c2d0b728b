"""The last look before a replace: the older version's other copy is re-read right before it runs.

A replace copies a new version of a scan over a copy that holds a verified older version. The
planner allows it only while the older version stays verified on another endpoint (normally
tape), judged from this pass's listings and stored evidence. Like a delete's last look
(`DeleteLook.recheck` in `engine/delete_look.py`, `engine/last_look.py`), that is proved again on the copies
themselves right before the replace is submitted — and again before a replace interrupted by a
crash is resubmitted (`engine/interrupted_replaces.py`):

1. the holders are the other endpoints this pass saw holding the older version, proven (their
   listing unchanged since that version was verified into them);
2. each holder must still prove its identity (marker, mount);
3. each is listed afresh; its evidence, taken on its current storage, must still name the older
   version's checksum, and the fresh listing must still have the fingerprint the evidence was
   taken with (the files, sizes and whole-second mtimes of that version);
4. where the holder can be read here (a local endpoint, or Globus with a local `path`), its files
   are re-hashed and the older version's checksum is computed from them the way the inventory
   computes a scan's (`scan_digest` for a directory scan): a mismatch means the copy rotted —
   its evidence is dropped (`copy_mismatch`), so the next plan sees the older version held
   nowhere else and blocks the replace for a person (`version_conflict`);
5. a holder must be a different file (device, inode) from the one overwritten.

The replace runs only if at least one holder passes every check. A replace over bytes bl931
never verified (`replaces: "unverified"`) relies on no other copy — unless a `copy.replaced`
receipt says the target holds a version with no other verified copy: then it waits
(`version_conflict`; `engine/receipted_versions.py`, which re-hashes the target first where it
can be read). Holds and
decisions are read again under the write lock that records the submission
(`DecisionLog.admit`), as for a delete.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from engine.errors import Bl931Error
from engine.evidence_identity import StorageIdentities
from engine.inventory.checksum import checksums_equal
from engine.last_look import check_distinct_copies
from engine.listing import listing_of
from engine.model import Action, ErrorClass, FileStat, Level, Scan
from engine.storage.base import ScanListing, listing_signature
from engine.version_sums import version_checksum

if TYPE_CHECKING:
    from engine.executor import Executor
    from engine.observe.observation import Observation

log = logging.getLogger(__name__)

UNVERIFIED = "unverified"  # `Action.replaces` for bytes no version's evidence covers

# Which failure is reported when no holder passes: the most telling first.
_RANK = ("same_storage", "copy_mismatch", "copy_missing", "copy_unverified", "endpoint_identity")


@dataclass(frozen=True, slots=True)
class _Failure:
    code: str
    message: str


def holders_of(action: Action, seen: Observation) -> list[str]:
    """The endpoints this pass saw holding the older version a replace overwrites, proven."""
    out = []
    for name, obs in seen.observations.items():
        if name == action.target or not obs.ok:
            continue
        replica = obs.replicas.get(action.scan)
        if (
            replica is not None
            and replica.older_version == action.replaces
            and not replica.older_unproven
        ):
            out.append(name)
    return sorted(out)


def passes_last_look(executor: Executor, action: Action, seen: Observation, now: datetime) -> bool:
    """Whether the replace `action` may be submitted now; records why not (an event)."""
    if action.replaces is None:
        return True
    if action.replaces == UNVERIFIED:
        # Nothing bl931 verified is there — unless a receipt says a version with no other
        # verified copy is (engine/receipted_versions.py).
        from engine.receipted_versions import receipted_version_at_risk

        why = receipted_version_at_risk(executor, action, now)
        if why is None:
            return True
        return _failed(executor, action, now, _Failure("version_conflict", why), level="error")
    assert action.target is not None
    if action.scan in executor.store.active_holds(now):
        return _failed(executor, action, now, _Failure("on_hold", "a hold was placed"))
    scan = seen.scans[action.scan]
    holders = holders_of(action, seen)
    if not holders:
        return _failed(
            executor,
            action,
            now,
            _Failure("copy_missing", "no other endpoint holds the older version any more"),
        )
    failures: list[_Failure] = []
    passing: list[str] = []
    for holder in holders:
        failure = _check_holder(executor, action, scan, holder, now)
        if failure is None:
            passing.append(holder)
        else:
            failures.append(failure)
    if passing:
        refusal = check_distinct_copies(scan, action.target, passing, executor.backends.local_roots)
        if refusal is None:
            return True
        failures.append(_Failure(refusal.code, refusal.message))
        if refusal.needs_human:
            executor.store.record_failure(
                action.id, ErrorClass.NEEDS_HUMAN, refusal.message, now, None
            )
    failures.sort(key=lambda f: _RANK.index(f.code) if f.code in _RANK else len(_RANK))
    return _failed(executor, action, now, failures[0], level="error")


def _check_holder(
    executor: Executor, action: Action, scan: Scan, holder: str, now: datetime
) -> _Failure | None:
    """None if `holder` still holds the older version intact (see the module docstring)."""
    old = action.replaces
    assert old is not None
    if executor.identity is not None:
        try:
            executor.identity.check(holder, user="bl931", now=now)
        except Bl931Error as exc:
            return _Failure("endpoint_identity", f"{holder}: {exc}")
    storage = executor.backends.storages.get(holder)
    if storage is None:
        return _Failure("endpoint_unknown", f"{holder} has no storage backend")
    try:
        listing = storage.stat_scan(executor.layout, scan.id)
    except Exception as exc:
        return _Failure("endpoint_unknown", f"{holder} could not be listed: {exc}")
    if listing is None:
        return _Failure("copy_missing", f"the {holder} copy of the older version is gone")
    evidence = executor.store.load_evidence().get(holder, {}).get(scan.id)
    proof, _ = StorageIdentities(executor.config, executor.store).sort(holder, evidence)
    if proof is None or proof.level < Level.CHECKSUM or proof.value != old:
        return _Failure(
            "copy_unverified", f"the {holder} copy is no longer verified as version {old}"
        )
    files = version_files(listing, scan, proof.signature)
    if files is None:
        return _Failure(
            "copy_unverified",
            f"the {holder} copy changed since version {old} was verified there (its listing "
            "differs)",
        )
    algorithm = proof.algorithm or scan.checksum_algorithm
    try:
        sums = storage.checksum_files(listing_of(scan.id, files), algorithm)
    except Exception as exc:
        return _Failure("endpoint_unknown", f"re-hashing the {holder} copy failed: {exc}")
    if sums is None:
        return None  # e.g. Globus only: its evidence is a transfer whose checksum Globus verified
    found = version_checksum(files, sums, algorithm, directory=scan.is_directory)
    if found is not None and checksums_equal(found, old):
        return None
    executor.store.drop_evidence(scan.id, holder)
    return _Failure(
        "copy_mismatch",
        f"the {holder} copy no longer holds version {old} (re-hashed: "
        f"{found or 'files missing'}); its evidence was dropped",
    )


def version_files(listing: ScanListing, scan: Scan, signature: str) -> tuple[FileStat, ...] | None:
    """The listed files that are the older version: the whole listing, or its files under the
    new version's names (the way `engine.observe.assess` matched them), whichever still has the
    fingerprint the evidence was taken with; None if neither."""
    if listing.signature == signature:
        return tuple(listing.files)
    names = {f.path for f in scan.files}
    own = tuple(f for f in listing.files if f.path in names)
    if own and listing_signature(own) == signature:
        return own
    return None


def _failed(
    executor: Executor, action: Action, now: datetime, failure: _Failure, *, level: str = "warning"
) -> bool:
    executor.recorder.event(
        now,
        "copy.recheck_failed",
        f"replace at {action.target} skipped: {failure.message}",
        scan=action.scan,
        action_id=action.id,
        level=level,
        data={"reason_code": failure.code, "replaces": action.replaces},
    )
    return False
