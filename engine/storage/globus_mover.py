# Over 400 lines: split pending: issue 15 item 2 (submission vs. task polling/results).
"""`GlobusMover`: batches of copies and deletes as Globus Transfer tasks.

One task per batch of scans, never one per file (Transfer works on at most three tasks per user
at a time). Every transfer asks Transfer to prove the copy: `sync_level="checksum"`,
`verify_checksum`, `preserve_timestamp`, and each file's acquisition checksum as
`external_checksum`, so a task that SUCCEEDED is checksum evidence for each of its scans.
Submissions are idempotent on the caller's persisted `submission_id`. Status comes from
`get_task`, never `task_wait` (which returns True for FAILED and INACTIVE tasks).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import globus_sdk

from engine.clock import SYSTEM_CLOCK, Clock
from engine.model import ErrorClass, Evidence, FileStat, Level
from engine.retry_holds import HoldBook
from engine.storage.base import (
    ItemResult,
    TaskRequest,
    TaskState,
    TaskStatus,
    TransferItem,
    listing_signature,
)
from engine.storage.globus_auth import TASK_CALLS, GlobusSession, translate_error
from engine.storage.globus_faults import active_fault, culprits
from engine.storage.globus_listing import join
from engine.storage.globus_submissions import find_task, labelled

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 60.0
TASKS = TASK_CALLS  # the Retry-After key of every task call (submits, polls, cancels, ...)
DEFAULT_INACTIVE_GRACE = 3600.0
# Transfer's names for the inventory's checksum algorithms (others: verified, not external).
GLOBUS_ALGORITHMS = {"md5": "MD5", "sha1": "SHA1", "sha256": "SHA256", "sha512": "SHA512"}
# Task fault codes that a person must resolve, and those no retry can fix.
_NEEDS_HUMAN = ("PERMISSION", "CONSENT", "AUTH", "QUOTA", "CHECKSUM", "MAPPING", "CREDENTIAL")
_TERMINAL = ("FILE_NOT_FOUND", "NOT_A_FILE", "CANCELED")


@dataclass(frozen=True, slots=True)
class GlobusEndpoint:
    """Where an endpoint's tree lives: a collection and a root path on it."""

    name: str
    collection: str
    root: str
    tape: bool = False


def fault_class(code: str | None) -> ErrorClass:
    """How to handle a task or file fault code (e.g. `PERMISSION_DENIED`, `FILE_NOT_FOUND`)."""
    word = (code or "").upper()
    if any(key in word for key in _NEEDS_HUMAN):
        return ErrorClass.NEEDS_HUMAN
    if any(key in word for key in _TERMINAL):
        return ErrorClass.TERMINAL
    return ErrorClass.TRANSIENT


def _parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


class GlobusMover:
    """Runs batches of copies and deletes as Globus Transfer tasks (implements `Mover`).

    Args:
        session: the shared authenticated session.
        endpoints: endpoint name → collection and root, for every Globus endpoint.
        max_items_per_task: scans per task (`[globus] max_items_per_task`).
        max_active_tasks: tasks the reconciler keeps in flight (`[globus] max_active_tasks`).
        deadline_hours: deadline of a task whose request carries none.
        inactive_grace: seconds a task may stay INACTIVE before it is cancelled and failed.
        clock: the engine's clock (tests pass a fake one).
    """

    name = "globus"
    finishes_locally = False

    def __init__(
        self,
        session: GlobusSession,
        endpoints: Mapping[str, GlobusEndpoint],
        *,
        max_items_per_task: int = 1000,
        max_active_tasks: int = 3,
        deadline_hours: float = 24,
        inactive_grace: float = DEFAULT_INACTIVE_GRACE,
        timeout: float = DEFAULT_TIMEOUT,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.max_items_per_task = max_items_per_task
        self.max_active_tasks = max_active_tasks
        self.deadline_hours = deadline_hours
        self.inactive_grace = inactive_grace
        self.endpoints = dict(endpoints)
        self._session = session
        self._client = session.transfer_client(timeout)
        self._clock = clock
        self._requests: dict[str, TaskRequest] = {}
        self._inactive_since: dict[str, float] = {}
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ Mover protocol

    def new_submission_id(self) -> str:
        """A fresh submission id from Transfer, to persist before `submit`."""
        self._session.wait_out(TASKS, "getting a submission id")
        self._session.ensure_scopes(self._client)
        try:
            return str(self._client.get_submission_id()["value"])
        except Exception as exc:
            self._session.note_retry_after(TASKS, exc, "getting a submission id")
            raise translate_error(exc, "getting a submission id", self._session) from exc

    def submit(self, request: TaskRequest) -> str:
        """Submit one task for the batch; the same `submission_id` always yields the same task.

        Returns:
            The task id (Transfer answers "Duplicate" with the first task's id on a resubmit).

        Raises:
            ValueError: the batch is empty or larger than `max_items_per_task`.
            TransientError | NeedsHumanError | TerminalError: Transfer refused or was unreachable.
        """
        if not request.items or len(request.items) > self.max_items_per_task:
            raise ValueError(
                f"a batch holds 1..{self.max_items_per_task} scans, got {len(request.items)}"
            )
        payload = (
            self._delete_data(request) if request.kind == "delete" else self._transfer_data(request)
        )
        what = f"submitting {request.kind} task {payload.get('label')!r}"
        self._session.wait_out(TASKS, what)
        self._session.ensure_scopes(self._client)
        try:
            if request.kind == "delete":
                response = self._client.submit_delete(payload)
            else:
                response = self._client.submit_transfer(payload)
        except Exception as exc:
            self._session.note_retry_after(TASKS, exc, what)
            raise translate_error(exc, what, self._session) from exc
        task_id = str(response["task_id"])
        log.info(
            "Globus %s task %s for %d scan(s): %s (submission %s)",
            request.kind,
            task_id,
            len(request.items),
            response.get("code"),
            request.submission_id,
        )
        self.track(task_id, request)
        return task_id

    def track(self, task_id: str, request: TaskRequest) -> None:
        """Remember which scans a task carries, so `poll` can answer per scan.

        `submit` does this itself; in a new process (after a restart, or each `--once` pass)
        the reconciler rebuilds the request from its store and calls this when `knows` is False
        (or passes `request=` to `poll`).
        """
        with self._lock:
            self._requests[task_id] = request

    def knows(self, task_id: str) -> bool:
        """Has this mover been told which scans `task_id` carries (by `submit` or `track`)?"""
        with self._lock:
            return task_id in self._requests

    def poll(self, task_id: str, request: TaskRequest | None = None) -> TaskStatus:
        """Status, progress and, once finished, one `ItemResult` per scan.

        Results need the request (from `submit`, `track` or the `request` argument); a task
        polled without one reports its state and progress only.
        """
        if request is not None:
            self.track(task_id, request)
        with self._lock:
            request = self._requests.get(task_id)
        what = f"polling task {task_id}"
        self._session.wait_out(TASKS, what)
        try:
            task = self._client.get_task(task_id)
        except globus_sdk.GlobusAPIError as exc:
            if exc.http_status == 404:
                return TaskStatus(task_id=task_id, state="lost", error=f"task {task_id} not found")
            self._session.note_retry_after(TASKS, exc, what)
            raise translate_error(exc, what, self._session) from exc
        except Exception as exc:
            raise translate_error(exc, what, self._session) from exc
        return self._status(task_id, task.data, request)

    def find_task(self, request: TaskRequest) -> str | None:
        """The id of the task Transfer created for `request.submission_id`, or None if none
        (see `globus_submissions.find_task`)."""
        self._session.ensure_scopes(self._client)
        return find_task(self._client, self._session, request)

    def cancel(self, task_id: str) -> None:
        """Cancel a task (a finished or unknown task is left as it is)."""
        what = f"cancelling task {task_id}"
        self._session.wait_out(TASKS, what)
        try:
            self._client.cancel_task(task_id)
        except globus_sdk.GlobusAPIError as exc:
            if exc.http_status == 404:
                return
            self._session.note_retry_after(TASKS, exc, what)
            raise translate_error(exc, what, self._session) from exc
        except Exception as exc:
            raise translate_error(exc, what, self._session) from exc

    def keep_holds_in(self, book: HoldBook) -> None:
        """Keep the session's `Retry-After` holds (task calls and listings) in `book`."""
        self._session.keep_holds_in(book)

    def close(self, *, wait: bool = True) -> None:
        """Nothing to stop: tasks run at Globus (the shared session is closed with the
        backends, `engine/storage/globus.py`)."""

    # ------------------------------------------------------------------ payloads

    def _endpoint(self, name: str | None) -> GlobusEndpoint:
        if name is None or name not in self.endpoints:
            raise ValueError(f"{name!r} is not a Globus endpoint")
        return self.endpoints[name]

    def _deadline(self, request: TaskRequest) -> str:
        deadline = request.deadline or self._clock.now() + timedelta(hours=self.deadline_hours)
        return deadline.astimezone(UTC).isoformat()

    def _transfer_data(self, request: TaskRequest) -> globus_sdk.TransferData:
        source, target = self._endpoint(request.source), self._endpoint(request.target)
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

    def _delete_data(self, request: TaskRequest) -> globus_sdk.DeleteData:
        """One delete item per manifest file, never a scan folder.

        A prune removes exactly the files verified elsewhere, so `recursive` stays off (a
        folder item would take everything in it, foreign files included) and globs are not
        interpreted (a scan name may contain `*` or `[`). `ignore_missing`: a manifest file
        already gone is not an error. Globus cannot remove a folder only if it is empty, so the
        scan's emptied folders stay on the collection.
        """
        target = self._endpoint(request.target)
        data = globus_sdk.DeleteData(
            target.collection,
            label=labelled(request),
            submission_id=request.submission_id,
            recursive=False,
            ignore_missing=True,
            interpret_globs=False,
            deadline=self._deadline(request),
            notify_on_succeeded=False,
            notify_on_failed=False,
            notify_on_inactive=False,
        )
        for item in request.items:
            for scan_file in item.files:
                data.add_item(join(target.root, scan_file.path))
        return data

    # ------------------------------------------------------------------ status

    def _status(
        self, task_id: str, task: dict[str, Any], request: TaskRequest | None
    ) -> TaskStatus:
        status = str(task.get("status", ""))
        progress: dict[str, Any] = {
            "bytes_done": int(task.get("bytes_transferred") or 0),
            "bytes_total": (
                sum(f.size for item in request.items for f in item.files)
                if request is not None and request.kind == "copy"
                else 0
            ),
            "files_done": int(task.get("files_transferred") or 0)
            + int(task.get("files_skipped") or 0),
            "files_total": int(task.get("files") or 0),
            "bytes_per_second": float(task.get("effective_bytes_per_second") or 0),
        }
        reason = self._reason(task)
        if status == "SUCCEEDED":
            with self._lock:
                self._inactive_since.pop(task_id, None)
            results = self._results(task_id, task, request) if request is not None else ()
            return TaskStatus(task_id=task_id, state="succeeded", results=results, **progress)
        if status == "FAILED":
            fatal_code = (task.get("fatal_error") or {}).get("code")
            code = fatal_code or task.get("nice_status")
            failed: TaskStatus | None = None
            if request is not None and request.kind == "copy" and len(request.items) > 1:
                failed = self._pinned_failure(
                    task_id, request, reason, task.get("fatal_error"), progress
                )
            if failed is None:
                failed = self._failed(task_id, request, reason, fault_class(code), progress)
            return replace(failed, fault=str(fatal_code)) if fatal_code else failed
        deadline = _parse_time(task.get("deadline"))
        now = self._clock.now().timestamp()
        # Only a delete carries a deadline of bl931's own; a transfer's is Transfer's, which it
        # extends while the task progresses (stalls are bl931's to detect: engine/task_watch.py).
        is_delete = request is not None and request.kind == "delete"
        if is_delete and deadline is not None and now > deadline.timestamp():
            why = f"deadline {deadline.isoformat()} passed ({reason})"
            stopped = self._stop(task_id, request, why)
            if stopped is not None:
                return stopped
            return self._failed(task_id, request, why, ErrorClass.TRANSIENT, progress)
        state: TaskState = "active"
        if status == "INACTIVE":
            with self._lock:
                since = self._inactive_since.setdefault(task_id, now)
            if now - since > self.inactive_grace:
                # Cancel first: a task left INACTIVE could resume later beside its retry.
                why = f"inactive for over {int(self.inactive_grace)} s: {reason}"
                stopped = self._stop(task_id, request, why)
                if stopped is not None:
                    return stopped
                return self._failed(
                    task_id, request, why, fault_class(task.get("nice_status")), progress
                )
        else:
            with self._lock:
                self._inactive_since.pop(task_id, None)
        nice_status = str(task.get("nice_status") or "")
        fault_class_now = active_fault(nice_status) if status == "ACTIVE" else None
        if fault_class_now is not None:
            return TaskStatus(
                task_id=task_id,
                state=state,
                error=f"Globus task {task_id} is retrying {nice_status} on "
                f"{self._route_names(request, task)}",
                error_class=fault_class_now,
                fault=nice_status,
                **progress,
            )
        return TaskStatus(task_id=task_id, state=state, **progress)

    def _route_names(self, request: TaskRequest | None, task: dict[str, Any]) -> str:
        """The collections a task reads and writes, named for a person."""
        if request is not None:
            names = [
                self._session.name_of(self._endpoint(name).collection)
                for name in (request.source, request.target)
                if name is not None
            ]
        else:
            ids = (task.get("source_endpoint_id"), task.get("destination_endpoint_id"))
            names = [self._session.name_of(str(c)) for c in ids if c]
        return " → ".join(dict.fromkeys(names)) or "its collections"

    def _pinned_failure(
        self,
        task_id: str,
        request: TaskRequest,
        reason: str,
        fatal: dict[str, Any] | None,
        progress: dict[str, Any],
    ) -> TaskStatus | None:
        """A failed batch whose fatal event names the files at fault: those scans fail, every
        other scan is planned again at once in a new batch (None: it names no file)."""
        code = (fatal or {}).get("code")
        source, target = self._endpoint(request.source), self._endpoint(request.target)
        found = culprits(
            self._client,
            self._session,
            task_id,
            request,
            (source.root, target.root),
            fatal,
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
        with self._lock:
            self._inactive_since.pop(task_id, None)
        return TaskStatus(
            task_id=task_id,
            state="failed",
            error=f"Globus task {task_id} failed: {reason}",
            error_class=fault_class(code),
            results=tuple(results),
            **progress,
        )

    def _stop(self, task_id: str, request: TaskRequest | None, why: str) -> TaskStatus | None:
        """Cancel a task and read it again. None once Transfer shows it ended FAILED (the
        caller reports it failed, saying `why`); otherwise what it is now: still `active` while
        Transfer has not stopped it yet, or finished after all.

        A task is reported ended only when Transfer says so (a finished task has a
        `completion_time`; ACTIVE and INACTIVE ones have none: Transfer docs, "Task Fields"),
        never because bl931 asked to cancel it: a delete task's scans are settled from a fresh
        listing (`engine/finished_deletes.py`), which must not run while the task may still
        remove files.
        """
        self.cancel(task_id)
        what = f"polling task {task_id}"
        self._session.wait_out(TASKS, what)
        try:
            task = self._client.get_task(task_id).data
        except Exception as exc:
            self._session.note_retry_after(TASKS, exc, what)
            raise translate_error(exc, what, self._session) from exc
        status = str(task.get("status", ""))
        if status == "FAILED":
            return None
        if status == "SUCCEEDED":
            return self._status(task_id, task, request)
        return TaskStatus(
            task_id=task_id,
            state="active",
            error=f"{why}; cancelled, waiting for Transfer to stop it",
            files_done=int(task.get("files_transferred") or 0),
            files_total=int(task.get("files") or 0),
            bytes_done=int(task.get("bytes_transferred") or 0),
        )

    @staticmethod
    def _reason(task: dict[str, Any]) -> str:
        fatal = task.get("fatal_error") or {}
        parts = [
            str(part)
            for part in (fatal.get("code"), fatal.get("description"), task.get("nice_status"))
            if part
        ]
        return "; ".join(dict.fromkeys(parts)) or str(task.get("status", "unknown"))

    def _failed(
        self,
        task_id: str,
        request: TaskRequest | None,
        reason: str,
        error_class: ErrorClass,
        progress: dict[str, Any],
    ) -> TaskStatus:
        message = f"Globus task {task_id} failed: {reason}"
        results = tuple(
            ItemResult(item.action_id, ok=False, error=message, error_class=error_class)
            for item in (request.items if request is not None else ())
        )
        with self._lock:
            self._inactive_since.pop(task_id, None)
        return TaskStatus(
            task_id=task_id,
            state="failed",
            error=message,
            error_class=error_class,
            results=results,
            **progress,
        )

    def _results(
        self, task_id: str, task: dict[str, Any], request: TaskRequest
    ) -> tuple[ItemResult, ...]:
        if request.kind == "delete":
            # With `ignore_missing`, a succeeded task means every listed file is gone; Transfer
            # does not say which it found missing. What is left beside them is listed afresh
            # by the executor (`left_behind=None`).
            return tuple(
                ItemResult(item.action_id, ok=True, removed=tuple(f.path for f in item.files))
                for item in request.items
            )
        faults = self._skipped_errors(task_id, task, request)
        verified_at = _parse_time(task.get("completion_time")) or self._clock.now()
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
                        + "; ".join(
                            f"{path}: {code} {detail}" for code, path, detail in item_faults
                        ),
                        error_class=fault_class(code),
                    )
                )
                continue
            results.append(
                ItemResult(
                    item.action_id,
                    ok=True,
                    evidence=self._evidence(task_id, item, verified, verified_at),
                )
            )
        return tuple(results)

    @staticmethod
    def _evidence(
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
        scan_checksum = item.whole_checksum()
        return Evidence(
            level=Level.CHECKSUM if verified else Level.SIZE,
            algorithm=item.checksum_algorithm,
            value=scan_checksum,
            task_id=task_id,
            verified_at=verified_at,
            signature=signature,
            how="transfer",
        )

    def _skipped_errors(
        self, task_id: str, task: dict[str, Any], request: TaskRequest
    ) -> dict[str, list[tuple[str, str, str]]]:
        """Per-file faults of a finished task, grouped by the action of the scan they belong to."""
        if not int(task.get("subtasks_skipped_errors") or task.get("faults") or 0):
            return {}
        source = self._endpoint(request.source)
        owner: dict[str, str] = {}
        for item in request.items:
            for scan_file in item.files:
                owner[join(source.root, item.source_path(scan_file.path))] = item.action_id
        faults: dict[str, list[tuple[str, str, str]]] = {}
        what = f"reading skipped errors of task {task_id}"
        self._session.wait_out(TASKS, what)
        try:
            for page in self._client.paginated.task_skipped_errors(task_id):
                for error in page:
                    path = str(error.get("source_path") or "")
                    action = owner.get(path)
                    fault = (
                        str(error.get("error_code")),
                        path,
                        str(error.get("error_details") or ""),
                    )
                    if action is None:
                        # A fault we cannot place could be any scan's: none of them counts.
                        log.warning("task %s: skipped error on unknown path %s", task_id, path)
                        for item in request.items:
                            faults.setdefault(item.action_id, []).append(fault)
                        continue
                    faults.setdefault(action, []).append(fault)
        except Exception as exc:
            self._session.note_retry_after(TASKS, exc, what)
            raise translate_error(exc, what, self._session) from exc
        return faults
