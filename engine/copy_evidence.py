"""The listing a copy's evidence keeps counting for, after a checksum-sync transfer.

A Globus transfer proves each file's bytes (`sync_level="checksum"`, `verify_checksum`) and its
evidence is keyed by the destination listing it leaves behind, so the evidence counts exactly
while later listings still look like that. A transferred file gets the source's mtime
(`preserve_timestamp`), so that listing is the source's files: paths, sizes, source mtimes.

A file whose checksum already matched is *skipped* ("When files match, no data transfer will
occur": globus-sdk `TransferData`, "Sync Levels") and keeps its own mtime. After a migration
that did not keep mtimes (a plain `cp`), every file of a re-verified copy is such a file: the
listing never looks like the source's, the evidence never counts, and the copy would be
re-verified at every pass.

So when a copy task succeeds, its destination is listed afresh (`settled_signature`). If that
listing is exactly the one recorded for the copy by the observation before the task was
submitted (the stored replica row, written no later than the submission) — nothing at the
destination changed while the task compared and skipped it — the evidence is keyed by that
listing instead. Anything else (a file changed during the task, a listing that fails, the
endpoint repointed since the submission) keeps the source's listing: the evidence then counts
only if the copy looks like the source, and otherwise the copy is verified again.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import TYPE_CHECKING

from engine.model import Evidence, Scan
from engine.state import TaskRow
from engine.storage.base import ScanListing, listing_signature

if TYPE_CHECKING:
    from engine.executor import Executor

log = logging.getLogger(__name__)


def own_signature(scan: Scan, listing: ScanListing) -> str:
    """The listing's fingerprint as the observation computes it (`observe.assess`): the scan's
    own files only, extra files beside them ignored."""
    if len(listing.files) == len(scan.files):
        return listing.signature
    own = {f.path for f in scan.files}
    return listing_signature([f for f in listing.files if f.path in own])


def settled_signature(
    executor: Executor, task: TaskRow, scan_id: str, target: str, evidence: Evidence
) -> Evidence:
    """The evidence of a succeeded transfer, keyed by the destination's unchanged listing when
    the task compared and skipped files that keep their own mtimes (see the module docstring).
    """
    if evidence.how != "transfer" or task.created_at is None:
        return evidence
    scan = executor.store.get_scan(scan_id)
    before = executor.store.replica_row(target, scan_id)
    storage = executor.backends.storages.get(target)
    if scan is None or before is None or storage is None:
        return evidence
    if before.observed_at > task.created_at or before.signature == evidence.signature:
        return evidence  # observed while the task ran, or nothing to re-key
    storages = executor.storage_identities()
    if storages.task_target(task.submission_id, target) != storages.current.get(target):
        return evidence  # the endpoint was repointed: a listing now shows other storage
    try:
        listing = storage.stat_scan(executor.layout, scan_id)
    except Exception as exc:
        log.warning("listing %s at %s after task %s failed: %s", scan_id, target, task.task_id, exc)
        return evidence
    if listing is None:
        return evidence
    sizes = {f.path: f.size for f in listing.files}
    if any(sizes.get(f.path) != f.size for f in scan.files):
        return evidence
    after = own_signature(scan, listing)
    if after != before.signature:
        return evidence  # something changed at the destination while the task ran
    return replace(evidence, signature=after)
