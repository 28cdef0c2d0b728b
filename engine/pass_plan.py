"""The plan step of a pass: the planner's input from an observation and the store, the findings
set beside the plan (alerts from observation, prunes, changed deletes and tasks), and the plan
recorded (its actions, its alerts logged, what blocked which scan).

`make_plan` is the one place a pass calls `engine.planner.plan`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime

from engine.alert_log import AlertLog
from engine.approvals import require_second_approver
from engine.changed_deletes import unverified_alerts
from engine.config import Config
from engine.executor import Executor
from engine.flight_record import flight_alerts
from engine.gc_pause import paused_gc
from engine.incremental.unlisted_deletes import block_unlisted_deletes
from engine.model import Alert, AlertEffect, Blocked, CatalogView, ClearedBy, InFlight, Plan
from engine.observe.observation import Observation
from engine.pass_findings import PassFindings
from engine.planner import PlanInput, plan
from engine.policy import Policy
from engine.remnants import remnant_index
from engine.scan_hints import export_control_for
from engine.storage import tape_plan
from engine.store import OPEN_TASK_STATES, SUBMITTED, StateStore

# Logged under the reconciler's name, as before the pass had steps of its own.
log = logging.getLogger("engine.reconciler")


class PassPlanner:
    def __init__(
        self, config: Config, store: StateStore, policy: Policy, executor: Executor
    ) -> None:
        self.config = config
        self.store = store
        self.policy = policy
        self.executor = executor
        self.findings = PassFindings(store)

    def in_flight(self) -> tuple[InFlight, ...]:
        # An interrupted delete or replace cleared for its last look is planned afresh, not in
        # flight.
        resuming = (
            self.executor.interrupted.action_ids | self.executor.interrupted_replaces.action_ids
        )
        return tuple(
            InFlight(a.id, a.kind, a.scan, a.source, a.target)
            for a in self.store.actions([SUBMITTED])
            if a.id not in resuming
        )

    @paused_gc()  # planning builds many acyclic objects: no cyclic GC passes over them
    def make_plan(self, seen: Observation, now: datetime) -> Plan:
        export = export_control_for(self.config, self.store)
        decisions = {aid: d[0] for aid, d in self.store.decisions().items()}
        planned = plan(
            PlanInput(
                policy=self.policy,
                scans=seen.scans,
                observations=seen.observations,
                now=now,
                catalog=seen.catalog,
                in_flight=self.in_flight(),
                holds=self.store.active_holds(now),
                decisions=decisions,
                failures=self.store.failures(),
                errors=tuple(seen.errors),
                reappeared=self._reappeared(seen),
                remnants=self._remnants(seen),
                export_control=export,
            )
        )
        # tape endpoints: scans waiting for their bundle, restores (engine/storage/tape_plan.py)
        planned = tape_plan.shape_plan(
            planned, self.config, self.store, seen, decisions, now, export
        )
        # No delete relies on a replica a sliced Globus listing did not list this pass.
        planned = block_unlisted_deletes(planned, seen.observations, self.policy)
        over = self.config.approval.second_approver_over_bytes
        return require_second_approver(planned, self.store, over)

    def with_findings(
        self, the_plan: Plan, seen: Observation, now: datetime, *, write: bool
    ) -> Plan:
        """The plan with what was found beside it: identity alerts, inventory problems, and
        every alert's `since` (alerts are recorded when `write`)."""
        problems = tuple(seen.inventory.problems) if seen.inventory is not None else ()
        targets = {t.submission_id: t.target for t in self.store.tasks(OPEN_TASK_STATES)}
        task_faults = self.executor.task_watch.alerts(targets)
        current = (
            *the_plan.alert_details,
            *seen.alerts,
            *self._foreign_alerts(),
            *unverified_alerts(self.store),
            *task_faults,
            *flight_alerts(self.store),
        )
        standing = AlertLog(self.store).refresh(current, now, write=write)
        return replace(
            the_plan,
            alerts=tuple(a.message for a in standing),
            alert_details=standing,
            problems=problems,
        )

    def record(self, the_plan: Plan, seen: Observation, now: datetime) -> None:
        """Save the plan's actions and what blocked which scan; log every standing alert."""
        self._log_alerts(the_plan)
        self.store.save_plan(the_plan.actions, now)
        self.findings.record(the_plan, seen.catalog, now)

    def record_delta(
        self, the_plan: Plan, added: Iterable[Blocked], catalog: CatalogView, now: datetime
    ) -> None:
        """`record` for a delta pass: only the new scans' entries are new
        (`engine.incremental.delta`)."""
        self._log_alerts(the_plan)
        self.store.save_plan(the_plan.actions, now)
        self.findings.record_added(added, now)
        if catalog.enabled:
            self.findings.catalog_unchanged(now)

    def _reappeared(self, seen: Observation) -> frozenset[str]:
        """Scans bl931 pruned from the inventory endpoint that are listed there again with
        other bytes than the version it pruned (a reused name): they wait for a person."""
        obs = seen.observations.get(self.policy.inventory_endpoint)
        if obs is None or not obs.ok:
            return frozenset()
        out = set()
        for scan_id in [s for s in obs.expected_absent if s in obs.replicas]:  # not O(replicas)
            scan = seen.scans.get(scan_id)
            pruned = [r for r in self.store.receipts(scan_id) if r["endpoint"] == obs.endpoint]
            checksum = (pruned[-1].get("acquisition") or {}).get("checksum") if pruned else None
            if scan is not None and checksum is not None and checksum != scan.checksum:
                out.add(scan_id)
        return frozenset(out)

    def _remnants(self, seen: Observation) -> frozenset[str]:
        """Scans whose inventory-endpoint listing is what a partial delete of their current
        version left (`engine/remnants.py`): the rest may be deleted, never copied from."""
        name = self.policy.inventory_endpoint
        listed = seen.listings.get(name)
        if not listed:
            return frozenset()
        index = remnant_index(self.store, name)
        return frozenset(
            scan_id
            for scan_id, listing in listed.items()
            if (scan := seen.scans.get(scan_id)) is not None
            and index.is_remnant(scan, listing.files, by_identity=False)
        )

    @staticmethod
    def _log_alerts(the_plan: Plan) -> None:
        for alert in the_plan.alert_details:
            log.error(
                "ALERT %s [%s]",
                alert.message,
                alert.id,
                extra={"alert": alert.code, "endpoint": alert.endpoint, "effect": alert.effect},
            )

    def _foreign_alerts(self) -> list[Alert]:
        """One `notify` alert per scan and endpoint where a prune left files it never copied."""
        alerts = []
        for record in self.store.foreign_files():
            shown = ", ".join(repr(p) for p in record.paths[:5])
            more = f" and {len(record.paths) - 5} more" if len(record.paths) > 5 else ""
            alerts.append(
                Alert(
                    "foreign_files",
                    AlertEffect.NOTIFY,
                    f"the prune of {record.scan!r} at {record.endpoint} left {len(record.paths)} "
                    f"file(s) it never copied anywhere: {shown}{more}",
                    endpoint=record.endpoint,
                    scan=record.scan,
                    cleared_by=ClearedBy.CONDITION_OR_ACKNOWLEDGEMENT,
                )
            )
        return alerts
