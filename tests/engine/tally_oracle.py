"""The action tallies as the audit log tells them: the oracle the executor's own counts are
checked against (the way the metrics were counted before the recorder counted them).

Each action event a pass wrote maps to the outcome its name records (`copy.submitted`,
`delete.submitted` → submitted; `copy.verified`, `delete.done`, any `catalog.*` → succeeded;
`action.failed` → failed, under its `class` and the target, or `catalog` for catalog actions;
`delete.recheck_failed` → skipped), with the action's kind and target from its row.
"""

from __future__ import annotations

import json

from engine.pass_report import ActionOutcome, ActionTallies
from engine.state import StateStore

_OUTCOME_OF_EVENT = {
    "copy.submitted": ActionOutcome.SUBMITTED,
    "delete.submitted": ActionOutcome.SUBMITTED,
    "copy.verified": ActionOutcome.SUCCEEDED,
    "delete.done": ActionOutcome.SUCCEEDED,
    "action.failed": ActionOutcome.FAILED,
    "delete.recheck_failed": ActionOutcome.SKIPPED,
}
_CATALOG_ACTIONS = ("register", "update_catalog")


def last_seq(store: StateStore) -> int:
    """The newest audit row's sequence number (0 when none)."""
    return int(store.connection().execute("SELECT max(seq) FROM events").fetchone()[0] or 0)


def audited_tallies(store: StateStore, after_seq: int) -> ActionTallies:
    """The outcomes the action events after `after_seq` record."""
    rows = store.connection().execute(
        """SELECT e.kind, a.kind, a.target, e.data FROM events e
           JOIN actions a ON a.id = e.action_id
           WHERE e.seq > ? AND e.action_id IS NOT NULL ORDER BY e.seq""",
        (after_seq,),
    )
    out = ActionTallies()
    for event_kind, action_kind, target, data in rows:
        outcome = _OUTCOME_OF_EVENT.get(event_kind)
        if outcome is None and event_kind.startswith("catalog."):
            outcome = ActionOutcome.SUCCEEDED
        if outcome is None:
            continue
        key = (action_kind, outcome)
        out.outcomes[key] = out.outcomes.get(key, 0) + 1
        if outcome is ActionOutcome.FAILED:
            error_class = json.loads(data).get("class") if data else None
            where = "catalog" if action_kind in _CATALOG_ACTIONS else target
            failure = (error_class or "transient", where or "unknown")
            out.failures[failure] = out.failures.get(failure, 0) + 1
    return out
