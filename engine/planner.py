"""Desired × observed × in-flight → `Plan`. Pure: no I/O, no clock.

The safety rules live in `engine/rules/` as functions of one pass's facts and one scan's:
`observations.py` (rule 2: unknown is not absent, the missing-fraction freeze), `copies.py`
(what should hold a scan, and the copies that make it so), `catalog.py`, `deletes.py` (rule 1),
`versions.py` (a scan rewritten after it was copied) and `decisions.py` (operator decisions and
failures). This module runs them over every scan, memoises what they decide per distinct scan
facts, applies the per-pass delete cap, and assembles the `Plan`. Whatever is wanted but not
allowed appears in `blocked` with a `ReasonCode` (`engine/rules/reasons.py`).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import replace
from datetime import datetime
from itertools import chain

from engine.blocked_entries import BlockedEntries
from engine.model import (
    Action,
    ActionKind,
    Blocked,
    EndpointError,
    InFlight,
    Level,
    Plan,
    Scan,
    action_id,
)
from engine.rules.catalog import plan_catalog
from engine.rules.copies import plan_copies, wanted_holders
from engine.rules.decisions import gate as decision_gate
from engine.rules.deletes import delete_candidates, deletes_together
from engine.rules.facts import (
    NOT_REGISTERED,
    ActionPlan,
    Case,
    DeletePlan,
    Gate,
    PassFacts,
    PlanInput,
    ScanFacts,
    Shape,
    allow_all,
)
from engine.rules.observations import is_stale
from engine.rules.reasons import ReasonCode
from engine.rules.versions import emptied, replaced, source_name, suspect_alert, version_facts
from engine.tape_versions import versioned_name

__all__ = ["PlanInput", "plan"]

_PendingDeletes = list[tuple[Scan, tuple[DeletePlan, ...], list[str]]]


class _Planner:
    """One planning run. Holds the per-run indexes; `run()` returns the Plan.

    The rules are decided per scan as a `Shape` (`_decide`), then instantiated with the scan's
    own id, action ids, bytes and due dates (`_emit`). The rules read nothing else about a scan
    than its `ScanFacts`, its tasks in flight, its hold, and the decisions and failures recorded
    for its action ids. Most scans have none of the last three; for them the shape is a function
    of the facts alone, so it is decided once per distinct facts and reused (`_shapes`, the
    memo). A scan with a task in flight or a hold, or one of whose action ids a decision or
    failure names, is decided on its own by the same code. With `memo=False` every scan is
    decided on its own (the plain plan the memo must equal).
    """

    def __init__(self, inp: PlanInput, *, memo: bool = True) -> None:
        self.inp = inp
        self.memo = memo
        self.facts = PassFacts(inp)
        # actions by `PassFacts.order` slot, each in scan order (see `run`)
        self.actions: dict[tuple[int, int], list[Action]] = defaultdict(list)
        self.blocked = BlockedEntries()
        self.alert_details = list(self.facts.alert_details)
        self.alerts = [alert.message for alert in self.alert_details]
        self.flight_by_scan: dict[str, list[InFlight]] = defaultdict(list)
        for flight in inp.in_flight:
            self.flight_by_scan[flight.scan].append(flight)
        self._reason_cache: dict[tuple[str, int], str] = {}
        self._shapes: dict[tuple[object, ...], Shape] = {}

    def _kept_until(self, endpoint: str, due: datetime) -> str:
        key = (endpoint, due.toordinal())  # the day the reason prints
        text = self._reason_cache.get(key)
        if text is None:
            keep_days = self.inp.policy.retention[endpoint].keep_days
            text = f"kept at {endpoint} until {due.date().isoformat()} ({keep_days:g} days)"
            self._reason_cache[key] = text
        return text

    # ---- the run -----------------------------------------------------------------------
    def run(self) -> Plan:
        inp, facts = self.inp, self.facts
        errors = list(inp.errors)
        for name in inp.policy.endpoints:
            obs = inp.observations.get(name)
            if obs is not None and obs.ok and is_stale(obs, inp.now, inp.policy):
                errors.append(
                    EndpointError(name, "last listing is older than the allowed observation age")
                )
        pending_deletes: _PendingDeletes = []
        replicas = tuple(facts.replicas.values())
        absent = Level.ABSENT
        now, keeps = inp.now, tuple(facts.keep.values())
        locations = inp.catalog.locations
        seen_at = tuple(inp.observations[n].previously_present for n in facts.unknown_retention)
        holds, flight_by_scan = inp.holds, self.flight_by_scan
        older_scans, reappeared = facts.older_scans, inp.reappeared
        remnants, export = inp.remnants, inp.export_control
        # action ids some decision or failure names: a scan with one of them is decided alone
        named = set(inp.decisions).union(inp.failures)
        shapes, memo = self._shapes, self.memo
        for scan_id in sorted(inp.scans):
            scan = inp.scans[scan_id]
            acquired = scan.acquired_at
            key = (  # the scan's `ScanFacts`, as a plain tuple: the key of `shapes`
                tuple(  # each endpoint's level, inlined: this loop runs per scan
                    [
                        None
                        if reps is None
                        else absent
                        if (r := reps.get(scan_id)) is None
                        else r.level
                        for reps in replicas
                    ]
                ),
                tuple([now < acquired + keep for keep in keeps]),
                locations.get(scan_id, NOT_REGISTERED),
                tuple([scan_id in seen for seen in seen_at]) if seen_at else (),
                version_facts(facts, scan, reappeared)
                if scan_id in older_scans or scan_id in reappeared or emptied(scan)
                else (),
                scan_id in remnants,
                export.fact(scan_id) if export is not None and export.active else None,
            )
            if not memo or scan_id in flight_by_scan or scan_id in holds:
                shape = self._decide(ScanFacts(*key), alone=scan)
                ids = self._action_ids(scan, shape.gated)
            else:
                cached = shapes.get(key)
                if cached is None:
                    cached = shapes[key] = self._decide(ScanFacts(*key), alone=None)
                shape = cached
                if not named:
                    # deletes' ids are only needed for the ones admitted: `_admit_deletes`
                    ids = self._action_ids(scan, shape.actions)
                else:
                    # The shared shape assumed every gate open; if a decision or failure names
                    # any action it has, the scan is decided on its own instead.
                    ids = self._action_ids(scan, shape.gated)
                    if not named.isdisjoint(ids):
                        shape = self._decide(ScanFacts(*key), alone=scan)
                        ids = self._action_ids(scan, shape.gated)
            self._emit(scan, shape, ids, pending_deletes)
        self._admit_deletes(pending_deletes)
        # Every slot's list is in scan order (scans are planned in id order, and a scan adds
        # at most one action per slot except copies to one target from two sources, which keep
        # their configured order): the concatenation is the stable sort by (slot, scan).
        actions = tuple(chain.from_iterable(self.actions[slot] for slot in sorted(self.actions)))
        return Plan(
            as_of=inp.now,
            actions=actions,
            blocked=self.blocked.done(),
            errors=tuple(errors),
            in_flight=tuple(sorted(inp.in_flight, key=lambda f: (f.scan, f.action_id))),
            alerts=tuple(self.alerts),
            alert_details=tuple(self.alert_details),
        )

    @staticmethod
    def _action_ids(scan: Scan, actions: tuple[ActionPlan, ...]) -> list[str]:
        if not actions:
            return []
        sid, checksum = scan.id, scan.checksum
        return [action_id(a.kind, sid, checksum, a.source, a.target) for a in actions]

    def _decide(self, key: ScanFacts, *, alone: Scan | None) -> Shape:
        """What the rules decide for a scan with these facts.

        Args:
            key: the scan's facts.
            alone: the scan, to decide it with its own tasks in flight, hold, decisions and
                failures; or None for the shape shared by every scan with these facts that has
                no task in flight, no hold, and no decision or failure naming one of its
                actions (for those, every gate allows without approval).
        """
        facts, inp = self.facts, self.inp
        gate: Gate
        if alone is not None:
            scan = alone
            case = Case(facts, key, self.flight_by_scan.get(scan.id, ()), inp.holds.get(scan.id))

            def gate(kind: ActionKind, source: str | None, target: str | None) -> tuple[bool, bool]:
                return decision_gate(
                    inp.decisions, inp.failures, inp.now, scan, case, kind, source, target
                )
        else:
            case = Case(facts, key, (), None)
            gate = allow_all
        wanted = wanted_holders(facts, case)
        plan_copies(facts, case, gate, wanted)
        plan_catalog(facts, case, gate)
        delete_candidates(facts, case, gate, wanted)
        deletes = deletes_together(facts, case)
        return Shape(
            tuple(case.blocked),
            tuple(case.actions),
            deletes,
            (*case.actions, *(d.action for d in deletes)),
            any(a.kind is ActionKind.COPY for a in case.actions),
            case.suspect,
        )

    def _emit(self, scan: Scan, shape: Shape, ids: list[str], pending: _PendingDeletes) -> None:
        """Instantiate a shape for one scan: its id, action ids, bytes and due dates."""
        sid = scan.id
        blocked = self.blocked
        for kind, endpoint, code, reason in shape.blocked:
            if reason is None:
                assert endpoint is not None
                reason = self._kept_until(endpoint, scan.acquired_at + self.facts.keep[endpoint])
            blocked.add(sid, (kind, endpoint, code, reason))  # one tuple kept per distinct reason
        size = scan.size if shape.copies else 0
        if shape.suspect is not None:
            alert = suspect_alert(self.inp.policy.inventory_endpoint, scan, shape.suspect)
            self.alerts.append(alert.message)
            self.alert_details.append(alert)
        # `ids` may go on with the deletes' ids (see `run`)
        for action, aid in zip(shape.actions, ids, strict=False):
            self.actions[action.order].append(
                Action(
                    aid,
                    action.kind,
                    sid,
                    action.source,
                    action.target,
                    size if action.kind is ActionKind.COPY else 0,
                    action.requires_approval,
                    action.reason,
                    action.approved,
                    replaced(self.facts, action, sid),
                    versioned_name(scan) if action.versioned else None,
                    source_name(self.facts, action, sid),
                )
            )
        if shape.deletes:
            pending.append((scan, shape.deletes, ids[len(shape.actions) :]))

    def _admit_deletes(self, pending: _PendingDeletes) -> None:
        """Apply the per-pass cap to the deletes checked together, scan by scan in id order.

        The cap check comes first: once reached, every further delete is blocked by it. Before
        that, each delete meets the verdict `deletes_together` gave it, which depends only on
        the deletes of its scan admitted before it — the same ones admitted here.

        `ids` holds the deletes' action ids when `run` needed them already, else it is empty and
        the id of an admitted delete is computed here.
        """
        admitted = 0
        cap = self.inp.policy.max_deletes_per_pass
        capped = f"at most {cap} deletes per pass"
        delete, at_cap = ActionKind.DELETE, ReasonCode.DELETE_CAP_REACHED
        for scan, deletes, ids in pending:
            for index, (action, together) in enumerate(deletes):
                if admitted >= cap:
                    self.blocked.append(Blocked(scan.id, delete, action.target, at_cap, capped))
                    continue
                if together is not None:
                    self.blocked.append(Blocked(scan.id, delete, action.target, *together))
                    continue
                admitted += 1
                aid = (
                    ids[index]
                    if ids
                    else action_id(delete, scan.id, scan.checksum, None, action.target)
                )
                self.actions[action.order].append(
                    Action(
                        aid,
                        delete,
                        scan.id,
                        None,
                        action.target,
                        scan.size,
                        action.requires_approval,
                        action.reason,
                        action.approved,
                    )
                )


def plan(inp: PlanInput, *, memo: bool = True) -> Plan:
    """Compute the plan for one pass.

    The planner builds many small acyclic objects; a caller planning a large inventory may
    pause cyclic garbage collection around it (`engine.gc_pause.paused_gc`, as the reconciler
    does).

    Args:
        inp: everything the planner may look at; it reads nothing else.
        memo: share what the rules decide between scans with equal facts (the default); False
            decides every scan on its own, which must give the same plan (a test checks it).

    Returns:
        The Plan: allowed actions (copies in make-before-break order, catalog actions, deletes),
        what is blocked and why, errors and alerts.
    """
    result = _Planner(inp, memo=memo).run()
    if inp.export_control is not None:
        result = replace(result, export_controlled=inp.export_control.flagged(inp.scans))
    return result
