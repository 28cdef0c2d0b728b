"""Which Transfer task a submission became: task labels that carry their submission id.

The executor persists a submission id before it submits, and Transfer de-duplicates on it. But
if the process dies in between, only Transfer knows whether the submission arrived, and a delete
that did not arrive must not simply be sent again: it has to pass its last look first (a copy it
relied on may have vanished meanwhile). A task document does not carry its submission id, and
`task_list` cannot filter on one (its filters are `task_id`, `type`, `status`, `label`,
`request_time` and `completion_time`: Transfer docs, "Get task list"; globus-cli `task list`).
It can filter on the label, so every label this mover submits ends with `sid-<submission id>`.
"""

from __future__ import annotations

import re
from typing import Any

from engine.errors import TerminalError
from engine.storage.base import TaskRequest
from engine.storage.globus_auth import TASK_CALLS, GlobusSession, translate_error

# Characters Transfer accepts in a label (at most 128 of them); others become "_".
_LABEL_UNSAFE = re.compile(r"[^A-Za-z0-9 _,.:-]+")
LABEL_MAX = 128


def safe_label(text: str) -> str:
    """A Transfer task label: restricted characters, at most 128 of them."""
    return _LABEL_UNSAFE.sub("_", text).strip()[:LABEL_MAX] or "bl931"


def submission_marker(submission_id: str) -> str:
    """The end of every label this mover submits: the submission id, made label-safe."""
    return f"sid-{_LABEL_UNSAFE.sub('_', submission_id)}"


def labelled(request: TaskRequest) -> str:
    """The request's label followed by its submission marker, which is never truncated."""
    marker = submission_marker(request.submission_id)
    head = safe_label(request.label)[: LABEL_MAX - 1 - len(marker)].rstrip()
    return f"{head} {marker}".strip()


def find_task(client: Any, session: GlobusSession, request: TaskRequest) -> str | None:
    """The id of the task Transfer created for `request.submission_id`, or None if there is none.

    Asks `task_list` for tasks of the request's type whose label matches `~*<marker>*` (`~` is
    the case-insensitive pattern match with `*` wildcards that `globus task list --filter-label`
    sends), then keeps only labels that really contain the marker.

    Args:
        client: the session's `globus_sdk.TransferClient`.
        session: the session, for error translation.
        request: the request whose submission id is looked for.

    Returns:
        The task id, or None when Transfer has no task for this submission.

    Raises:
        TransientError | NeedsHumanError | TerminalError: Transfer could not answer, or more
            than one task carries the marker. The caller must then assume nothing: neither
            "submitted" nor "not submitted".
    """
    kind = "DELETE" if request.kind == "delete" else "TRANSFER"
    marker = submission_marker(request.submission_id)
    what = f"looking up submission {request.submission_id}"
    session.wait_out(TASK_CALLS, what)
    try:
        answer = client.task_list(filter={"type": kind, "label": f"~*{marker}*"}, limit=10)
        task_ids = [
            str(task["task_id"]) for task in answer if marker in str(task.get("label") or "")
        ]
    except Exception as exc:
        session.note_retry_after(TASK_CALLS, exc, what)
        raise translate_error(exc, what, session) from exc
    if len(task_ids) > 1:
        raise TerminalError(
            f"{len(task_ids)} Transfer tasks carry submission {request.submission_id}: "
            + ", ".join(task_ids)
        )
    return task_ids[0] if task_ids else None
