"""What bl931 submits to Globus Transfer: one `TransferData` or `DeleteData` per batch of scans.

Every transfer asks Transfer to prove the copy: `sync_level="checksum"`, `verify_checksum`,
`preserve_timestamp`, and each file's acquisition checksum as `external_checksum`, so a task that
SUCCEEDED is checksum evidence for each of its scans (`engine/storage/globus_results.py`). A
delete names each manifest file, never a scan folder. Both carry the caller's persisted
`submission_id`, so a resubmit after a crash yields the same task.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import globus_sdk

from engine.storage.base import TaskRequest
from engine.storage.globus_listing import join
from engine.storage.globus_submissions import labelled

# Transfer's names for the inventory's checksum algorithms (others: verified, not external).
GLOBUS_ALGORITHMS = {"md5": "MD5", "sha1": "SHA1", "sha256": "SHA256", "sha512": "SHA512"}


@dataclass(frozen=True, slots=True)
class GlobusEndpoint:
    """Where an endpoint's tree lives: a collection and a root path on it."""

    name: str
    collection: str
    root: str
    tape: bool = False


def transfer_data(
    request: TaskRequest, source: GlobusEndpoint, target: GlobusEndpoint
) -> globus_sdk.TransferData:
    """The transfer task for a batch of copies from `source` to `target`."""
    data = globus_sdk.TransferData(
        source.collection,
        target.collection,
        label=labelled(request),
        submission_id=request.submission_id,
        sync_level="checksum",
        verify_checksum=True,
        preserve_timestamp=True,
        skip_source_errors=True,  # one bad file fails its scan, not the whole batch
        fail_on_quota_errors=True,
        # No deadline: Transfer extends the deadline of a task submitted without one while
        # it makes progress, and a fixed one turns that off (Task Behavior, "Deadlines").
        # bl931 bounds the wait itself (`[globus] stall_hours`, engine/task_watch.py).
        notify_on_succeeded=False,
        notify_on_failed=False,
        notify_on_inactive=False,
    )
    for item in request.items:
        algorithm = GLOBUS_ALGORITHMS.get(item.checksum_algorithm.lower())
        for scan_file in item.files:
            # A versioned object on tape: the same files under another name.
            source_path = join(source.root, item.source_path(scan_file.path))
            target_path = join(target.root, item.target_path(scan_file.path))
            if algorithm is not None:
                data.add_item(
                    source_path,
                    target_path,
                    external_checksum=scan_file.checksum,
                    checksum_algorithm=algorithm,
                )
            else:
                data.add_item(source_path, target_path)
    return data


def delete_data(
    request: TaskRequest, target: GlobusEndpoint, deadline: datetime
) -> globus_sdk.DeleteData:
    """One delete item per manifest file, never a scan folder.

    A prune removes exactly the files verified elsewhere, so `recursive` stays off (a folder
    item would take everything in it, foreign files included) and globs are not interpreted (a
    scan name may contain `*` or `[`). `ignore_missing`: a manifest file already gone is not an
    error. Globus cannot remove a folder only if it is empty, so the scan's emptied folders stay
    on the collection.

    Args:
        request: the batch of deletes.
        target: the endpoint the files are removed from.
        deadline: when Transfer gives the task up (delete tasks are not extended).
    """
    data = globus_sdk.DeleteData(
        target.collection,
        label=labelled(request),
        submission_id=request.submission_id,
        recursive=False,
        ignore_missing=True,
        interpret_globs=False,
        deadline=deadline.isoformat(),
        notify_on_succeeded=False,
        notify_on_failed=False,
        notify_on_inactive=False,
    )
    for item in request.items:
        for scan_file in item.files:
            data.add_item(join(target.root, scan_file.path))
    return data
