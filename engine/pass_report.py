"""The report step of a pass: `PassReport`, what one pass saw, planned and did.

The front ends read it (the exit code of `--reconcile --once`, the service's log line) and the
metrics are fed from it alone (`engine.metrics`): its scale (scans, endpoints, replicas per
level) comes from the observation, and its action outcomes (`ActionTallies`) from the pass's
`Outcome`, counted by the executor's recorder as it recorded each outcome's audit event
(engine/tallies.py): what the pass did, never read back from the audit log.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from engine.model import Level, Plan, Replica
from engine.observe.observation import Observation
from engine.outcome import Outcome
from engine.store import StateStore
from engine.tallies import ActionOutcome, ActionTallies

__all__ = [
    "ActionOutcome",
    "ActionTallies",
    "PassReport",
    "count_levels",
    "replica_levels",
    "report_pass",
]

# Logged under the reconciler's name, as before the pass had steps of its own.
log = logging.getLogger("engine.reconciler")


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
    return count_levels(
        (name, obs.replicas.values()) for name, obs in seen.observations.items() if obs.ok
    )


def count_levels(
    replicas: Iterable[tuple[str, Iterable[Replica]]],
    base: Mapping[tuple[str, str], int] | None = None,
) -> dict[tuple[str, str], int]:
    """`base` plus, for each (endpoint, its replicas), one per replica present (above
    `Level.ABSENT`) under (endpoint, level word)."""
    out = dict(base or {})
    for name, found in replicas:
        for replica in found:
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
    levels: dict[tuple[str, str], int] | None = None,
) -> PassReport:
    """The pass's report (its action outcomes as the pass's `outcome` counted them), the
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
        actions=outcome.actions,
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
