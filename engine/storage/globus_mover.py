"""`GlobusMover`: batches of copies and deletes as Globus Transfer tasks.

One task per batch of scans, never one per file (Transfer works on at most three tasks per user
at a time). What is submitted is built in `globus_payloads.py` (every transfer asks Transfer to
prove the copy, so a task that SUCCEEDED is checksum evidence for each of its scans); what a
finished task means per scan is read in `globus_results.py` and `globus_faults.py`.
Submissions are idempotent on the caller's persisted `submission_id`. Status comes from
`get_task`, never `task_wait` (which returns True for FAILED and INACTIVE tasks). This module
keeps the task's life: submit, poll, give up on a task that sits INACTIVE too long
(`globus_inactive.py`) or a delete past its deadline, and cancel.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import globus_sdk

from engine.clock import SYSTEM_CLOCK, Clock
from engine.model import ErrorClass
from engine.retry_holds import HoldBook
from engine.storage.base import TaskRequest, TaskState, TaskStatus
from engine.storage.globus_auth import TASK_CALLS, GlobusSession, translate_error
from engine.storage.globus_faults import active_fault, fault_class
from engine.storage.globus_inactive import InactiveClocks, InactiveRecords, StoredInactiveClocks
from engine.storage.globus_payloads import (
    GLOBUS_ALGORITHMS,
    GlobusEndpoint,
    delete_data,
    transfer_data,
)
from engine.storage.globus_results import (
    TaskContext,
    failed_status,
    parse_time,
    pinned_failure,
    succeeded_results,
    task_progress,
    task_reason,
)
from engine.storage.globus_submissions import find_task

__all__ = [
    "DEFAULT_INACTIVE_GRACE",
    "GLOBUS_ALGORITHMS",
    "GlobusEndpoint",
    "GlobusMover",
    "fault_class",
]

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 60.0
TASKS = TASK_CALLS  # the Retry-After key of every task call (submits, polls, cancels, ...)
DEFAULT_INACTIVE_GRACE = 3600.0


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
        self._inactive = InactiveClocks()
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
            delete_data(request, self._endpoint(request.target), self._deadline(request))
            if request.kind == "delete"
            else transfer_data(
                request, self._endpoint(request.source), self._endpoint(request.target)
            )
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

    def attach(self, store: InactiveRecords) -> None:
        """Keep each task's INACTIVE clock on its row in the state store (the reconciler
        attaches its store at start), so a restart resumes the same clock."""
        self._inactive = StoredInactiveClocks(store)

    def keep_holds_in(self, book: HoldBook) -> None:
        """Keep the session's `Retry-After` holds (task calls and listings) in `book`."""
        self._session.keep_holds_in(book)

    def close(self, *, wait: bool = True) -> None:
        """Nothing to stop: tasks run at Globus (the shared session is closed with the
        backends, `engine/storage/globus.py`)."""

    # ------------------------------------------------------------------ status

    def _endpoint(self, name: str | None) -> GlobusEndpoint:
        return self._context().endpoint(name)

    def _context(self) -> TaskContext:
        return TaskContext(self._client, self._session, self.endpoints, self._clock)

    def _deadline(self, request: TaskRequest) -> datetime:
        deadline = request.deadline or self._clock.now() + timedelta(hours=self.deadline_hours)
        return deadline.astimezone(UTC)

    def _status(
        self, task_id: str, task: dict[str, Any], request: TaskRequest | None
    ) -> TaskStatus:
        status = str(task.get("status", ""))
        progress = task_progress(task, request)
        reason = task_reason(task)
        if status == "SUCCEEDED":
            self._inactive.stop(task_id)
            results = (
                succeeded_results(self._context(), task_id, task, request)
                if request is not None
                else ()
            )
            return TaskStatus(task_id=task_id, state="succeeded", results=results, **progress)
        if status == "FAILED":
            fatal_code = (task.get("fatal_error") or {}).get("code")
            code = fatal_code or task.get("nice_status")
            failed: TaskStatus | None = None
            if request is not None and request.kind == "copy" and len(request.items) > 1:
                failed = pinned_failure(
                    self._context(), task_id, request, reason, task.get("fatal_error"), progress
                )
                if failed is not None:
                    self._inactive.stop(task_id)
            if failed is None:
                failed = self._failed(task_id, request, reason, fault_class(code), progress)
            return replace(failed, fault=str(fatal_code)) if fatal_code else failed
        deadline = parse_time(task.get("deadline"))
        now = self._clock.now()
        # Only a delete carries a deadline of bl931's own; a transfer's is Transfer's, which it
        # extends while the task progresses (stalls are bl931's to detect: engine/task_watch.py).
        is_delete = request is not None and request.kind == "delete"
        if is_delete and deadline is not None and now.timestamp() > deadline.timestamp():
            why = f"deadline {deadline.isoformat()} passed ({reason})"
            stopped = self._stop(task_id, request, why)
            if stopped is not None:
                return stopped
            return self._failed(task_id, request, why, ErrorClass.TRANSIENT, progress)
        state: TaskState = "active"
        if status == "INACTIVE":
            since = self._inactive.start(task_id, now)
            if (now - since).total_seconds() > self.inactive_grace:
                # Cancel first: a task left INACTIVE could resume later beside its retry.
                why = f"inactive for over {int(self.inactive_grace)} s: {reason}"
                stopped = self._stop(task_id, request, why)
                if stopped is not None:
                    return stopped
                return self._failed(
                    task_id, request, why, fault_class(task.get("nice_status")), progress
                )
        else:
            self._inactive.stop(task_id)
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

    def _failed(
        self,
        task_id: str,
        request: TaskRequest | None,
        reason: str,
        error_class: ErrorClass,
        progress: dict[str, Any],
    ) -> TaskStatus:
        self._inactive.stop(task_id)
        return failed_status(task_id, request, reason, error_class, progress)

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
