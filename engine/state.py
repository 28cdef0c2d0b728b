"""The state store's historical import path: `from engine.state import StateStore, ...`.

The store itself is the package `engine.store` (one module per aggregate; its docstring lists
them). This module only re-exports it, so every caller keeps importing from here.
"""

from __future__ import annotations

from engine.store import (
    FAILED,
    MIGRATIONS,
    OPEN_TASK_STATES,
    PLANNED,
    SCHEMA_VERSION,
    SUBMITTED,
    SUCCEEDED,
    ActionRow,
    ActionStatus,
    ForeignFiles,
    ReplicaRow,
    StateStore,
    TaskRow,
    TaskRowStatus,
    iso,
    parse_time,
)

__all__ = [
    "FAILED",
    "MIGRATIONS",
    "OPEN_TASK_STATES",
    "PLANNED",
    "SCHEMA_VERSION",
    "SUBMITTED",
    "SUCCEEDED",
    "ActionRow",
    "ActionStatus",
    "ForeignFiles",
    "ReplicaRow",
    "StateStore",
    "TaskRow",
    "TaskRowStatus",
    "iso",
    "parse_time",
]
