"""The report step of a pass: `PassReport`, what one pass saw, planned and did.

The front ends read it (the exit code of `--reconcile --once`, the service's log line) and the
metrics are fed from it alone (`engine.metrics`): its scale (scans, endpoints, replicas per
level) comes from the observation, and its action outcomes (`ActionTallies`) from the audit log
rows this pass wrote, so the metrics agree with the audit by construction.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING

from engine.model import ActionKind, Level, Plan
from engine.observe.observation import Observation
from engine.store import StateStore

if TYPE_CHECKING:
    from engine.executor import Outcome

# Logged under the reconciler's name, as before the pass had steps of its own.
log = logging.getLogger("engine.reconciler")


class ActionOutcome(StrEnum):
    """What became of an action in a pass (the `outcome` label of `bl931_actions`)."""

    SUBMITTED = "submitted"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"  # a delete whose last look refused it


# The audit log's action events and the outcome each records; every `catalog.*` event of an
# action is a catalog action that succeeded.
_OUTCOME_OF_EVENT = {
    "copy.submitted": ActionOutcome.SUBMITTED,
    "delete.submitted": ActionOutcome.SUBMITTED,
    "copy.verified": ActionOutcome.SUCCEEDED,
    "delete.done": ActionOutcome.SUCCEEDED,
    "action.failed": ActionOutcome.FAILED,
    "delete.recheck_failed": ActionOutcome.SKIPPED,
}
_CATALOG_ACTIONS = frozenset({ActionKind.REGISTER.value, ActionKind.UPDATE_CATALOG.value})


def outcome_of_event(event_kind: str) -> ActionOutcome | None:
    """The outcome an action event records (None: the event records no outcome)."""
    found = _OUTCOME_OF_EVENT.get(event_kind)
    if found is None and event_kind.startswith("catalog."):
        return ActionOutcome.SUCCEEDED
    return found


@dataclass
class ActionTallies:
    """One pass's action outcomes: (action kind, outcome) counts, and the failures by (error
    class, where: the target endpoint, or `catalog` for catalog actions)."""

    outcomes: dict[tuple[str, ActionOutcome], int] = field(default_factory=dict)
    failures: dict[tuple[str, str], int] = field(default_factory=dict)

    @classmethod
    def of_events(cls, events: Iterable[tuple[str, str, str | None, str | None]]) -> ActionTallies:
        """From (event kind, action kind, target, error class) rows of the audit log
        (`StateStore.action_events_since`)."""
        out = cls()
        for event_kind, action_kind, target, error_class in events:
            outcome = outcome_of_event(event_kind)
            if outcome is None:
                continue
            key = (action_kind, outcome)
            out.outcomes[key] = out.outcomes.get(key, 0) + 1
            if outcome is ActionOutcome.FAILED:
                where = "catalog" if action_kind in _CATALOG_ACTIONS else target
                failure = (error_class or "transient", where or "unknown")
                out.failures[failure] = out.failures.get(failure, 0) + 1
        return out


@dataclass
class PassReport:
    plan: Plan
    started_at: datetime
    finished_at: datetime
    submitted: int = 0
    succeeded: int = 0
    failed: int = 0
    new_scans: int = 0
    # For metrics: the pass's scale and outcomes, so a front end needs no second look at the store.
    scans: int = 0
    endpoints: tuple[str, ...] = ()
    replica_levels: dict[tuple[str, str], int] = field(default_factory=dict)
    actions: ActionTallies = field(default_factory=ActionTallies)

    @property
    def ok(self) -> bool:
        """No error and no standing alert (`--reconcile --once` exits 0). A scan the inventory
        could not take in is reported in the plan's `problems` (the audit exits 1 for it)."""
        return not (self.plan.errors or self.plan.alert_details)

    def summary(self) -> dict[str, int]:
        out = dict(self.plan.summary())
        out.update(
            submitted=self.submitted,
            succeeded=self.succeeded,
            failed=self.failed,
            new_scans=self.new_scans,
            errors=len(self.plan.errors),
        )
        return out


def replica_levels(seen: Observation) -> dict[tuple[str, str], int]:
    """(endpoint, level word) → replicas at that level, for the endpoints listed this pass."""
    out: dict[tuple[str, str], int] = {}
    for name, obs in seen.observations.items():
        if not obs.ok:
            continue
        for replica in obs.replicas.values():
            if replica.level > Level.ABSENT:
                key = (name, replica.level.word)
                out[key] = out.get(key, 0) + 1
    return out


def report_pass(
    store: StateStore,
    the_plan: Plan,
    seen: Observation,
    outcome: Outcome,
    *,
    started: datetime,
    finished: datetime,
    endpoints: tuple[str, ...],
    events_after: int,
    levels: dict[tuple[str, str], int] | None = None,
) -> PassReport:
    """The pass's report (its action outcomes from the audit rows after `events_after`), the
    heartbeat that says the pass finished, and its log line."""
    report = PassReport(
        plan=the_plan,
        started_at=started,
        finished_at=finished,
        submitted=outcome.submitted,
        succeeded=outcome.succeeded,
        failed=outcome.failed,
        new_scans=len(seen.new_scans),
        scans=len(seen.scans),
        endpoints=endpoints,
        replica_levels=replica_levels(seen) if levels is None else levels,
        actions=ActionTallies.of_events(store.action_events_since(events_after)),
    )
    beat: dict[str, object] = {"pass_finished_at": finished, "summary": report.summary()}
    if report.ok:
        beat["last_ok_pass_at"] = finished
    store.beat(finished, **beat)
    log.info(
        "pass done in %.2fs: %s",
        (finished - started).total_seconds(),
        ", ".join(f"{k}={v}" for k, v in report.summary().items() if v) or "nothing to do",
    )
    return report
