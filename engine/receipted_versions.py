"""Versions a receipt says a copy holds: re-hashed into evidence, never overwritten unseen.

A replace interrupted by a crash is settled from a fresh listing
(`engine/interrupted_replaces.py`): when the older version is gone from the target, a
`copy.replaced` receipt names the version the task carried. That receipt alone verifies
nothing, so without more the copy would count as bytes bl931 never verified, and a later
replace over it (`replaces: "unverified"`) would rely on no other copy — even when it holds
the only copy of the version the receipt names. Two layers close that:

1. *Re-hash on settling* (`rehash_submitted`). Where the target can be read here, the
   submitted version's own files are re-hashed; if their sizes match its manifest and their
   bytes make its checksum, checksum-level evidence of that version is recorded at the target
   (`how = "rehash_after_interrupted_replace"`), exactly as if the copy had been verified: the
   version is then protected like any verified copy (a later replace needs it verified
   elsewhere, else `version_conflict`).
2. *Defence in depth before an unverified replace* (`receipted_version_at_risk`). Before a
   replace over bytes bl931 has not verified is submitted, the latest `copy.replaced` receipt
   for the scan at the target is read: if it names a version other than the one being copied
   and no other endpoint holds verified evidence of it (under the scan's name or a versioned
   tape name), the replace waits (`version_conflict`). Where the target can be read, its
   bytes are re-hashed first: bytes that are not that version (a user rewrote them) do not
   stop it; bytes that are gain evidence (layer 1), so the next plan blocks the replace
   itself.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import TYPE_CHECKING, Any

from engine.evidence_identity import StorageIdentities
from engine.inventory.checksum import checksums_equal
from engine.listing import listing_of
from engine.model import Action, Evidence, FileStat, Level, Scan
from engine.state import StateStore
from engine.storage.base import ScanListing, Storage, listing_signature
from engine.submitted import submitted_scan
from engine.version_sums import version_checksum

if TYPE_CHECKING:
    from engine.executor import Executor

log = logging.getLogger(__name__)

REHASH_HOW = "rehash_after_interrupted_replace"


def _own_files(listing: ScanListing, scan: Scan) -> tuple[FileStat, ...] | None:
    """The listed files under `scan`'s names, if each is listed with its manifest size."""
    sizes = {f.path: f.size for f in scan.files}
    own = tuple(f for f in listing.files if f.path in sizes)
    if len(own) != len(sizes) or any(f.size != sizes[f.path] for f in own):
        return None
    return own


def rehashed_as(storage: Storage, listing: ScanListing, scan: Scan) -> tuple[FileStat, ...] | None:
    """The listing's files holding exactly `scan`'s bytes (re-hashed here), or None: not that
    version, or its bytes cannot be read here. Errors reading propagate."""
    own = _own_files(listing, scan)
    if own is None or not scan.checksum:
        return None
    sums = storage.checksum_files(listing_of(scan.id, own), scan.checksum_algorithm)
    if sums is None:
        return None  # not readable here (e.g. Globus without a local path)
    found = version_checksum(own, sums, scan.checksum_algorithm, directory=scan.is_directory)
    return own if found is not None and checksums_equal(found, scan.checksum) else None


def record_rehashed(
    store: StateStore,
    storages: StorageIdentities,
    target: str,
    scan: Scan,
    files: tuple[FileStat, ...],
    listing: ScanListing,
    task_id: str | None,
    now: datetime,
) -> Evidence:
    """Record checksum-level evidence that `target` holds `scan`'s version (its `files`)."""
    # The same fingerprint `engine.observe.assess` compares: the whole listing when it is
    # exactly the scan's files, else the scan's own files.
    signature = listing.signature if len(listing.files) == len(files) else listing_signature(files)
    evidence = storages.stamp(
        target,
        Evidence(
            level=Level.CHECKSUM,
            algorithm=scan.checksum_algorithm,
            value=scan.checksum,
            task_id=task_id,
            verified_at=now,
            signature=signature,
            how=REHASH_HOW,
        ),
    )
    store.record_evidence(scan.id, target, evidence)
    return evidence


def rehash_submitted(
    store: StateStore,
    storages: StorageIdentities,
    storage: Storage,
    listing: ScanListing | None,
    target: str,
    scan: Scan,
    task_id: str | None,
    now: datetime,
) -> bool:
    """Layer 1: whether `target`'s bytes were re-hashed as the submitted version `scan` (and
    evidence recorded). A read error is logged and counts as not proven."""
    if listing is None:
        return False
    try:
        files = rehashed_as(storage, listing, scan)
    except Exception as exc:
        log.warning("could not re-hash %r at %s: %s", scan.id, target, exc)
        return False
    if files is None:
        return False
    record_rehashed(store, storages, target, scan, files, listing, task_id, now)
    return True


def latest_receipted(
    store: StateStore, scan_id: str, target: str
) -> tuple[str, dict[str, Any]] | None:
    """The latest `copy.replaced` receipt for `scan_id` at `target`: (its action id, data)."""
    rows = (
        store.connection()
        .execute(
            "SELECT action_id, data FROM events WHERE scan = ? AND kind = 'copy.replaced' "
            "ORDER BY seq DESC",
            (scan_id,),
        )
        .fetchall()
    )
    for action_id, text in rows:
        data = json.loads(text) if text else {}
        if data.get("target") == target:
            return action_id, data
    return None


def verified_elsewhere(
    store: StateStore, storages: StorageIdentities, scan_id: str, target: str, checksum: str
) -> list[str]:
    """Endpoints other than `target` holding verified evidence (on their current storage) of
    version `checksum` of `scan_id`, under its own name or a versioned tape name."""
    out = []
    for endpoint, rows in store.load_evidence().items():
        if endpoint == target:
            continue
        for key, evidence in rows.items():
            if key != scan_id and not key.startswith(scan_id + ".v"):
                continue
            proof, _ = storages.sort(endpoint, evidence)
            if (
                proof is not None
                and proof.level >= Level.CHECKSUM
                and proof.value is not None
                and checksums_equal(proof.value, checksum)
            ):
                out.append(endpoint)
                break
    return sorted(out)


def receipted_version_at_risk(executor: Executor, action: Action, now: datetime) -> str | None:
    """Layer 2, before a replace over bytes bl931 has not verified: why it must wait (a receipt
    says the target holds a version with no other verified copy), or None."""
    target = action.target
    assert target is not None
    store = executor.store
    found = latest_receipted(store, action.scan, target)
    if found is None:
        return None
    action_id, receipt = found
    held = receipt.get("new_checksum")
    current = store.get_scan(action.scan)
    if not isinstance(held, str) or (current is not None and current.checksum == held):
        return None
    storages = StorageIdentities(executor.config, store)
    if verified_elsewhere(store, storages, action.scan, target, held):
        return None
    version = submitted_scan(store, receipt.get("submission_id"), action_id)
    storage = executor.backends.storages.get(target)
    if version is not None and version.checksum == held and storage is not None:
        try:
            listing = storage.stat_scan(executor.layout, action.scan)
            own = None if listing is None else _own_files(listing, version)
            if listing is None or own is None:
                return None  # that version's files are not there (absent, other sizes)
            sums = storage.checksum_files(listing_of(version.id, own), version.checksum_algorithm)
        except Exception as exc:
            return f"{target} could not be re-read to see which version it holds: {exc}"
        if sums is not None:
            algorithm = version.checksum_algorithm
            digest = version_checksum(own, sums, algorithm, directory=version.is_directory)
            if digest is None or not checksums_equal(digest, held):
                return None  # re-hashed: other bytes than that version
            task_id = receipt.get("task_id")
            record_rehashed(store, storages, target, version, own, listing, task_id, now)
    return (
        f"a copy.replaced receipt says {target} holds version {held}, which no other endpoint "
        "holds verified: it is not overwritten until that version is verified elsewhere "
        "(an operator decides)"
    )
