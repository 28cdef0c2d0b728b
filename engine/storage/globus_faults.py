"""What a Globus task's faults mean: which `nice_status` a person must fix, and which scan of a
failed batch caused the failure.

Transfer keeps working on a task that hits an error: it "categorizes the error, emits an event to
the task's event list" and retries, so the task stays ACTIVE while its `nice_status` names the
fault (Transfer docs, "Task Behavior", section 4). Some faults pass by themselves (a busy endpoint,
a dropped connection); others never do until a person acts (a permission, a missing file, a full
quota, a missing identity mapping). `active_fault` sorts them; `fault_class` sorts the code a
task or file ended with.

A fatal error ends the whole task, even with `skip_source_errors` (which skips only source-side
PERMISSION_DENIED, FILE_NOT_FOUND and AMBIGUOUS_PATH): for instance one file whose bytes do not
match its `external_checksum` ("a failure will cause the entire task to fail", globus-sdk
`TransferData.add_item`). The task document then says only the fatal error's code; the event list
says which file it was about. `culprits` reads the events, picks the one that failed the task
(the newest error event with the fatal error's code, its description when several carry it) and
finds the scans whose files it names, so only those scans fail and the others are sent again in
a new batch. Earlier error events are faults Transfer retried and got past (a destination
checksum mismatch, VERIFY_CHECKSUM, is retried by Transfer itself: Task Behavior, "Retry
Behavior"): they name files that were copied in the end and blame nobody.

A task that SUCCEEDED with `skip_source_errors` may still have skipped files; `skipped_errors`
pages through them and groups them by the scan they belong to.
"""

from __future__ import annotations

import logging
from typing import Any

from engine.model import ErrorClass
from engine.storage.base import TaskRequest
from engine.storage.globus_auth import TASK_CALLS, GlobusSession, translate_error
from engine.storage.globus_listing import join

log = logging.getLogger(__name__)

# `nice_status` values that say a task is fine or just waiting its turn.
_NO_FAULT = ("OK", "QUEUED", "ACTIVE", "")
# Faults only a person can clear (an administrator, the owner of the data, a quota).
_NEEDS_HUMAN_WORDS = (
    "PERMISSION",
    "NOT_FOUND",
    "QUOTA",
    "MAPPING",
    "IDENTITY",
    "CONSENT",
    "AUTH",
    "CREDENTIAL",
    "AMBIGUOUS_PATH",
    "NOT_A_FILE",
)
# Task fault codes that a person must resolve, and those no retry can fix (`fault_class`).
_NEEDS_HUMAN = ("PERMISSION", "CONSENT", "AUTH", "QUOTA", "CHECKSUM", "MAPPING", "CREDENTIAL")
_TERMINAL = ("FILE_NOT_FOUND", "NOT_A_FILE", "CANCELED")
# Events that do not stand for a fault of a file (progress, task control).
_EVENT_LIMIT = 1000  # events read per page; the SDK pages on


def active_fault(nice_status: str | None) -> ErrorClass | None:
    """How to treat the fault an ACTIVE task's `nice_status` names.

    Returns:
        None when there is no fault (OK, Queued); `NEEDS_HUMAN` for a fault that persists until
        a person acts (PERMISSION_DENIED, FILE_NOT_FOUND, QUOTA_EXCEEDED, an identity mapping,
        credentials); `TRANSIENT` for everything else (ENDPOINT_TOO_BUSY, CONNECTION_FAILED,
        CONNECTION_RESET, timeouts…), which Transfer retries by itself.
    """
    word = (nice_status or "").strip().upper()
    if word in _NO_FAULT:
        return None
    if any(key in word for key in _NEEDS_HUMAN_WORDS):
        return ErrorClass.NEEDS_HUMAN
    return ErrorClass.TRANSIENT


def fault_class(code: str | None) -> ErrorClass:
    """How to handle a task or file fault code (e.g. `PERMISSION_DENIED`, `FILE_NOT_FOUND`)."""
    word = (code or "").upper()
    if any(key in word for key in _NEEDS_HUMAN):
        return ErrorClass.NEEDS_HUMAN
    if any(key in word for key in _TERMINAL):
        return ErrorClass.TERMINAL
    return ErrorClass.TRANSIENT


Fault = tuple[str, str, str]  # code, file path on the collection, details


def culprits(
    client: Any,
    session: GlobusSession,
    task_id: str,
    request: TaskRequest,
    roots: tuple[str, str],
    fatal: dict[str, Any] | None = None,
) -> dict[str, list[Fault]]:
    """The scans of a failed copy task whose files the fatal event names.

    Args:
        client: the `globus_sdk.TransferClient`.
        session: for error translation (and its `Retry-After` hold on task calls).
        task_id: the failed task.
        request: the batch it carried.
        roots: the source and target endpoint roots on their collections.
        fatal: the task document's `fatal_error` (`code`, `description`: "from the fatal
            event", Transfer docs, "Task Fields"); None or without a code: the newest error
            event is taken as the fatal one.

    Returns:
        action id → the faults naming that scan's files (empty: the fatal event names no file
        of the batch, so the failure cannot be pinned on any one scan).

    Raises:
        TransientError | NeedsHumanError | TerminalError: the events could not be read (or
            Globus asked to wait before task calls: nothing was sent).
    """
    owners: dict[str, str] = {}
    for item in request.items:
        for scan_file in item.files:
            for root in roots:
                owners[join(root, scan_file.path)] = item.action_id
    # The longest paths first, so that `/raw/a.h5.1` is not taken for `/raw/a.h5`.
    by_length = sorted(owners, key=len, reverse=True)
    what = f"reading the events of task {task_id}"
    session.wait_out(TASK_CALLS, what)
    errors: list[dict[str, Any]] = []
    try:
        for page in client.paginated.task_event_list(task_id, limit=_EVENT_LIMIT):
            errors.extend(event for event in page if event.get("is_error"))
    except Exception as exc:
        session.note_retry_after(TASK_CALLS, exc)
        raise translate_error(exc, what, session) from exc
    event = fatal_event(errors, fatal)
    found: dict[str, list[Fault]] = {}
    if event is None:
        return found
    text = f"{event.get('description') or ''}\n{event.get('details') or ''}"
    for path in _named_paths(text, by_length):
        fault = (str(event.get("code") or "ERROR"), path, _one_line(text))
        found.setdefault(owners[path], []).append(fault)
    return found


def fatal_event(
    errors: list[dict[str, Any]], fatal: dict[str, Any] | None
) -> dict[str, Any] | None:
    """The error event that failed the task, out of its error events (newest first, as
    `task_event_list` returns them; an event's `time` decides where it is given).

    It carries the fatal error's code; of several such events (a code Transfer retried before
    it gave up), the one with the fatal error's description, else the newest. Without a fatal
    code, the newest error event. None: no event carries the fatal code.
    """
    code = str((fatal or {}).get("code") or "")
    description = str((fatal or {}).get("description") or "")
    # Newest first; a stable sort keeps the service's order among events of the same time.
    ordered = sorted(errors, key=lambda e: str(e.get("time") or ""), reverse=True)
    if code:
        ordered = [e for e in ordered if str(e.get("code") or "") == code]
    if description:
        exact = [e for e in ordered if str(e.get("description") or "") == description]
        ordered = exact or ordered
    return ordered[0] if ordered else None


def _named_paths(text: str, paths: list[str]) -> list[str]:
    """The paths (longest first) that appear in `text` as whole paths, each once."""
    named = []
    rest = text
    for path in paths:
        at = rest.find(path)
        while at >= 0:
            end = at + len(path)
            if end == len(rest) or not (rest[end].isalnum() or rest[end] in "._-/"):
                named.append(path)
                rest = rest[:at] + "\0" * len(path) + rest[end:]  # not matched again as a prefix
                break
            at = rest.find(path, end)
    return named


def _one_line(text: str) -> str:
    return " ".join(text.split())[:300]


def skipped_errors(
    client: Any,
    session: GlobusSession,
    task_id: str,
    task: dict[str, Any],
    request: TaskRequest,
    source_root: str,
) -> dict[str, list[Fault]]:
    """Per-file faults of a finished task, grouped by the action of the scan they belong to.

    Args:
        client: the session's `TransferClient`.
        session: for `Retry-After` holds and error translation.
        task_id: the finished task.
        task: its task document (`subtasks_skipped_errors` says whether there is anything to read).
        request: the batch it carried.
        source_root: the root of the source endpoint on its collection.
    """
    if not int(task.get("subtasks_skipped_errors") or task.get("faults") or 0):
        return {}
    owner: dict[str, str] = {}
    for item in request.items:
        for scan_file in item.files:
            owner[join(source_root, item.source_path(scan_file.path))] = item.action_id
    faults: dict[str, list[Fault]] = {}
    what = f"reading skipped errors of task {task_id}"
    session.wait_out(TASK_CALLS, what)
    try:
        for page in client.paginated.task_skipped_errors(task_id):
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
        session.note_retry_after(TASK_CALLS, exc, what)
        raise translate_error(exc, what, session) from exc
    return faults
