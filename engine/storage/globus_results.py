"""A Globus task document read as a `TaskStatus`: progress, why a task failed, and once it
finished, one `ItemResult` per scan.

A copy task that SUCCEEDED proves each scan it carried with a checksum (`verify_checksum` and
each file's `external_checksum`, `engine/storage/globus_payloads.py`), except the scans whose
files it skipped (`skipped_errors`). A failed batch whose fatal event names the files at fault
fails only those scans; the others are sent again at once (`culprits`). A delete task that
SUCCEEDED removed every file it listed (`ignore_missing`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from engine.clock import Clock
from engine.model import ErrorClass, Evidence, FileStat, Level
from engine.storage.base import ItemResult, TaskRequest, TaskStatus, TransferItem, listing_signature
from engine.storage.globus_auth import GlobusSession
from engine.storage.globus_faults import culprits, fault_class, skipped_errors
from engine.storage.globus_payloads import GlobusEndpoint


@dataclass(frozen=True, slots=True)
class TaskContext:
    """What reading a task's results needs besides the task document."""

    client: Any  # the session's TransferClient
    session: GlobusSession
    endpoints: Mapping[str, GlobusEndpoint]
    clock: Clock

    def endpoint(self, name: str | None) -> GlobusEndpoint:
        """The Globus endpoint called `name`.

        Raises:
            ValueError: `name` is not a Globus endpoint.
        """
        if name is None or name not in self.endpoints:
            raise ValueError(f"{name!r} is not a Globus endpoint")
        return self.endpoints[name]


def parse_time(text: str | None) -> datetime | None:
    """A Transfer timestamp (ISO 8601, maybe with `Z`), as an aware datetime (None if absent)."""
    if not text:
        return None
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def task_reason(task: dict[str, Any]) -> str:
    """Why a task is where it is, for a person: its fatal error and `nice_status`."""
    fatal = task.get("fatal_error") or {}
    parts = [
        str(part)
        for part in (fatal.get("code"), fatal.get("description"), task.get("nice_status"))
        if part
    ]
    return "; ".join(dict.fromkeys(parts)) or str(task.get("status", "unknown"))


def task_progress(task: dict[str, Any], request: TaskRequest | None) -> dict[str, Any]:
    """The progress fields of a `TaskStatus`, from the task document."""
    return {
        "bytes_done": int(task.get("bytes_transferred") or 0),
        "bytes_total": (
            sum(f.size for item in request.items for f in item.files)
            if request is not None and request.kind == "copy"
            else 0
        ),
        "files_done": int(task.get("files_transferred") or 0) + int(task.get("files_skipped") or 0),
        "files_total": int(task.get("files") or 0),
        "bytes_per_second": float(task.get("effective_bytes_per_second") or 0),
    }


def failed_status(
    task_id: str,
    request: TaskRequest | None,
    reason: str,
    error_class: ErrorClass,
    progress: dict[str, Any],
) -> TaskStatus:
    """A failed task: every scan it carried failed with the same reason and class."""
    message = f"Globus task {task_id} failed: {reason}"
    results = tuple(
        ItemResult(item.action_id, ok=False, error=message, error_class=error_class)
        for item in (request.items if request is not None else ())
    )
    return TaskStatus(
        task_id=task_id,
        state="failed",
        error=message,
        error_class=error_class,
        results=results,
        **progress,
    )


def pinned_failure(
    context: TaskContext,
    task_id: str,
    request: TaskRequest,
    reason: str,
    fatal: dict[str, Any] | None,
    progress: dict[str, Any],
) -> TaskStatus | None:
    """A failed batch whose fatal event names the files at fault: those scans fail, every
    other scan is planned again at once in a new batch (None: it names no file)."""
    code = (fatal or {}).get("code")
    source, target = context.endpoint(request.source), context.endpoint(request.target)
    found = culprits(
        context.client, context.session, task_id, request, (source.root, target.root), fatal
    )
    if not found:
        return None
    results = []
    for item in request.items:
        faults = found.get(item.action_id)
        if faults:
            results.append(
                ItemResult(
                    item.action_id,
                    ok=False,
                    error=f"Globus task {task_id} failed ({reason}) on "
                    + "; ".join(f"{path}: {fcode}" for fcode, path, _ in faults),
                    error_class=fault_class(faults[0][0]),
                )
            )
        else:
            results.append(
                ItemResult(
                    item.action_id,
                    ok=False,
                    error=f"Globus task {task_id} failed on another scan's file ({code}); "
                    "sent again in a new batch",
                    error_class=ErrorClass.TRANSIENT,
                    retry_now=True,
                )
            )
    return TaskStatus(
        task_id=task_id,
        state="failed",
        error=f"Globus task {task_id} failed: {reason}",
        error_class=fault_class(code),
        results=tuple(results),
        **progress,
    )


def succeeded_results(
    context: TaskContext, task_id: str, task: dict[str, Any], request: TaskRequest
) -> tuple[ItemResult, ...]:
    """One result per scan of a task that SUCCEEDED."""
    if request.kind == "delete":
        # With `ignore_missing`, a succeeded task means every listed file is gone; Transfer
        # does not say which it found missing. What is left beside them is listed afresh
        # by the executor (`left_behind=None`).
        return tuple(
            ItemResult(item.action_id, ok=True, removed=tuple(f.path for f in item.files))
            for item in request.items
        )
    faults = (
        skipped_errors(
            context.client,
            context.session,
            task_id,
            task,
            request,
            context.endpoint(request.source).root,
        )
        if int(task.get("subtasks_skipped_errors") or task.get("faults") or 0)
        else {}
    )
    verified_at = parse_time(task.get("completion_time")) or context.clock.now()
    verified = bool(task.get("verify_checksum", True))
    results = []
    for item in request.items:
        item_faults = faults.get(item.action_id)
        if item_faults:
            code = item_faults[0][0]
            results.append(
                ItemResult(
                    item.action_id,
                    ok=False,
                    error=f"Globus task {task_id} skipped "
                    + "; ".join(f"{path}: {code} {detail}" for code, path, detail in item_faults),
                    error_class=fault_class(code),
                )
            )
            continue
        results.append(
            ItemResult(
                item.action_id,
                ok=True,
                evidence=copy_evidence(task_id, item, verified, verified_at),
            )
        )
    return tuple(results)


def copy_evidence(
    task_id: str, item: TransferItem, verified: bool, verified_at: datetime
) -> Evidence:
    """What a succeeded task proves about one scan's copy.

    The signature is the destination listing the task leaves behind: the same relative
    paths and sizes, and the source mtimes (`preserve_timestamp`), so the evidence keeps
    counting exactly while a later listing of the copy still looks like this.
    """
    signature = listing_signature(
        [FileStat(path=f.path, size=f.size, mtime=f.mtime) for f in item.files]
    )
    return Evidence(
        level=Level.CHECKSUM if verified else Level.SIZE,
        algorithm=item.checksum_algorithm,
        value=item.whole_checksum(),
        task_id=task_id,
        verified_at=verified_at,
        signature=signature,
        how="transfer",
    )
