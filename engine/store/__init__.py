"""The SQLite state store, one module per aggregate: what the engine knows, did and was told.

- `connection`: the file, its pragmas, transactions and the migration runner (`migrations`
  holds the one tuple of migrations);
- `scans`; `replicas` (last observation) and evidence (why a replica is believed verified);
- `actions`: actions, tasks and task items; `status`: their statuses as `StrEnum`s;
- `events`: the audit log and the receipts of removals (deletions);
- `operator`: approvals/rejections (forwarded to `engine.decisions`), holds, retries;
- `health`: endpoints and the service's heartbeat;
- `views`: the read models the TUI shows (it reads only through them, and writes only operator
  decisions through `engine.operator_decisions`).

Other tables have their own small modules that take a `StateStore`: alerts and their
acknowledgements (`engine.alert_log`), the pass's findings (`engine.pass_findings`), the
catalog's pids and custody (`engine.catalog`), endpoint identities (`engine.identity`).

`StateStore` composes the aggregates, so callers hold one object; `engine.state` re-exports it.
"""

from __future__ import annotations

from engine.store.actions import ActionRow, ActionStore, TaskRow
from engine.store.connection import StoreBase, iso, parse_time
from engine.store.events import EventStore, ForeignFiles
from engine.store.health import HealthStore
from engine.store.migrations import MIGRATIONS, SCHEMA_VERSION
from engine.store.operator import OperatorStore
from engine.store.replicas import ReplicaRow, ReplicaStore
from engine.store.scans import ScanStore
from engine.store.status import (
    FAILED,
    OPEN_TASK_STATES,
    PLANNED,
    SUBMITTED,
    SUCCEEDED,
    ActionStatus,
    TaskRowStatus,
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
    "StoreBase",
    "TaskRow",
    "TaskRowStatus",
    "iso",
    "parse_time",
]


class StateStore(ScanStore, ReplicaStore, ActionStore, EventStore, OperatorStore, HealthStore):
    """One SQLite file; a connection per thread; every aggregate's reads and writes."""
