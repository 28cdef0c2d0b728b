"""The statuses stored in the actions and tasks tables, as `StrEnum`s (each member is its stored
string, so it compares, formats and binds as one).
"""

from __future__ import annotations

from enum import StrEnum


class ActionStatus(StrEnum):
    """An action's lifecycle: `planned` rows are the current plan's actions (rewritten each
    pass); `submitted` are in flight; `succeeded`/`failed` are history; `failed` with a
    retry_at is retried."""

    PLANNED = "planned"
    SUBMITTED = "submitted"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class TaskRowStatus(StrEnum):
    """A task's status: `preparing` is recorded before the mover is called (the submission id
    persisted first); a mover then reports `queued`/`active` and a final `succeeded`, `failed`
    or `lost` (the mover no longer knows it); `withdrawn` is an interrupted task that was not
    resubmitted."""

    PREPARING = "preparing"
    QUEUED = "queued"
    ACTIVE = "active"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    LOST = "lost"
    WITHDRAWN = "withdrawn"


# Tasks still open on the engine's side (polled, watched, counted as in flight).
OPEN_TASK_STATES = (TaskRowStatus.PREPARING, TaskRowStatus.ACTIVE)

# The short names callers have always imported from engine.state.
PLANNED = ActionStatus.PLANNED
SUBMITTED = ActionStatus.SUBMITTED
SUCCEEDED = ActionStatus.SUCCEEDED
FAILED = ActionStatus.FAILED
