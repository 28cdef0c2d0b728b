"""The delete rules (DESIGN §3 rule 1): when the copy of a scan at an endpoint may go.

A delete at E is planned only if E's retention has passed, every endpoint in E's
`delete_requires` holds a copy verified at the required level in this pass's observation (listed
recently enough), no task in flight reads or writes the scan at E or deletes a copy E relies on,
the scan has no hold, deletes are not frozen, the catalog holds the scan when the policy asks for
it, E does not hold the only verified copy of an older version, and no other wanted copy relies
on E's. A scan's deletes are then checked together: none removes a copy another relies on, and a
verified copy always remains. The per-pass cap is the planner's (`engine/planner.py`).
"""

from __future__ import annotations

from engine.export_control import delete_blocker as export_delete_blocker
from engine.model import ActionKind, Level
from engine.rules.facts import ActionPlan, Case, DeletePlan, Gate, PassFacts, catalog_unknown
from engine.rules.reasons import ReasonCode


def delete_candidates(facts: PassFacts, case: Case, gate: Gate, wanted: frozenset[str]) -> None:
    """Add to `case.candidates` every delete that passes the rules for its own copy, in
    retention order; block the others in `case`."""
    policy = facts.policy
    levels, flights = case.levels, case.flights
    for endpoint in facts.retention_order:
        level = levels[endpoint]
        if level is None:
            if case.seen_before.get(endpoint, False):
                case.block(
                    ActionKind.DELETE,
                    endpoint,
                    ReasonCode.ENDPOINT_UNKNOWN,
                    f"{endpoint} could not be listed this pass",
                )
            continue
        if level is Level.ABSENT:
            continue
        if any(f.kind is ActionKind.DELETE and f.target == endpoint for f in flights):
            continue
        reason = delete_blocker(facts, case, endpoint)
        if reason is None and case.older.get(endpoint) is False:
            reason = (
                ReasonCode.VERSION_CONFLICT,
                f"{endpoint} holds the only verified copy of an older version of this scan",
            )
        if (
            reason is None
            and endpoint in policy.tape
            and (endpoint in case.older or endpoint in case.differs)
        ):
            # The scan's own path there holds other bytes: this version is kept beside
            # them under a versioned name, and a prune would remove the scan's own path.
            reason = (
                ReasonCode.VERSION_CONFLICT,
                f"{endpoint} is write-once tape and keeps this version beside other bytes "
                "at the scan's path: it is not pruned there (an operator decides)",
            )
        if reason is None and endpoint in wanted:
            reason = (ReasonCode.STILL_NEEDED, relied_on_by(facts, case, endpoint))
        if reason is not None:
            case.block(ActionKind.DELETE, endpoint, *reason)
            continue
        allowed, approved = gate(ActionKind.DELETE, None, endpoint)
        if allowed:
            rule = policy.retention[endpoint]
            needs_approval = ActionKind.DELETE in policy.approval_for
            required = ", ".join(rule.delete_requires)
            case.candidates.append(
                ActionPlan(
                    ActionKind.DELETE,
                    None,
                    endpoint,
                    needs_approval,
                    f"retention passed; {required} verified by {rule.verify.word}",
                    approved if needs_approval else False,
                    facts.order(ActionKind.DELETE, endpoint),
                )
            )


def relied_on_by(facts: PassFacts, case: Case, endpoint: str) -> str:
    """Why the copy at `endpoint` is still needed, naming what relies on it.

    A holder whose delete requires this copy, and where that delete stands (awaiting
    approval, approved, planned, in flight, or held back and why), so an operator sees that
    this prune comes in a later round. Holders are decided first (retention order), so their
    delete candidates are known here.
    """
    for holder, needs in facts.requires_of.items():
        if endpoint not in needs or holder == endpoint:
            continue
        level = case.levels.get(holder)
        if level is None:
            return f"{holder} could not be listed: the copy there may still rely on this one"
        if level is Level.ABSENT:
            continue
        if any(f.kind is ActionKind.DELETE and f.target == holder for f in case.flights):
            return f"the {holder} prune in flight relies on this copy"
        planned = next((c for c in case.candidates if c.target == holder), None)
        if planned is not None:
            if planned.requires_approval and not planned.approved:
                return (
                    f"the {holder} prune awaiting approval relies on this copy; "
                    "this prune follows it"
                )
            if planned.approved:
                return f"the approved {holder} prune relies on this copy"
            return f"the {holder} prune planned in this pass relies on this copy"
        held = next(
            (b.code for b in case.blocked if b.kind is ActionKind.DELETE and b.endpoint == holder),
            None,
        )
        why = f" ({holder}: {held})" if held else ""
        return f"the {holder} copy relies on this one until it is pruned{why}"
    return "a copy still to be made from this one needs it as its source"


def delete_blocker(
    facts: PassFacts, case: Case, endpoint: str
) -> tuple[ReasonCode, str | None] | None:
    """Why the copy at `endpoint` may not be deleted now (code, reason), or None.

    A reason of None stands for "kept at … until <due date>": the only reason that names the
    scan's own date, filled in by the planner.
    """
    policy = facts.policy
    levels = case.levels
    rule = policy.retention[endpoint]
    if case.retained[endpoint]:  # now < acquired_at + keep
        return ReasonCode.RETENTION_NOT_REACHED, None
    if case.export and (
        held := export_delete_blocker(case.export, facts.offsite, rule.delete_requires)
    ):
        return ReasonCode(held[0]), held[1]
    if (
        endpoint == policy.inventory_endpoint
        and (levels[endpoint] or Level.ABSENT) < Level.CHECKSUM
        and not (case.remnant and levels[endpoint] is Level.PRESENT)
    ):
        return (
            ReasonCode.CHANGED_SINCE_INVENTORY,
            f"the files at {endpoint} differ from the inventoried version",
        )
    hold = case.hold
    if hold is not None:
        return ReasonCode.ON_HOLD, f"held by {hold.placed_by}: {hold.reason}"
    if facts.deletes_frozen:
        return (
            ReasonCode.MISSING_FRACTION_EXCEEDED,
            "too many replicas vanished; deletes are frozen",
        )
    if any(f.source == endpoint or f.target == endpoint for f in case.flights):
        return (
            ReasonCode.SOURCE_IN_USE,
            f"a task in flight reads or writes this scan at {endpoint}",
        )
    for required in rule.delete_requires:
        if any(f.kind is ActionKind.DELETE and f.target == required for f in case.flights):
            return (
                ReasonCode.REQUIRED_COPY_BEING_DELETED,
                f"a delete of the {required} copy this delete relies on is in flight",
            )
        if required in facts.stale:
            return ReasonCode.OBSERVATION_STALE, f"{required} was last listed too long ago"
        level = levels.get(required)
        if level is None:
            return ReasonCode.ENDPOINT_UNKNOWN, f"{required} could not be listed this pass"
        if level < rule.verify:
            state = "absent" if level is Level.ABSENT else f"verified by {level.word} only"
            return (
                ReasonCode.COPY_UNVERIFIED,
                f"{required} copy is {state}; policy requires {rule.verify.word}",
            )
    catalog = facts.catalog
    if policy.catalog_enabled and catalog.lost:
        # The catalog lost records: no delete anywhere, whatever `required_for_delete` says.
        return ReasonCode.CATALOG_UNAVAILABLE, catalog_unknown(catalog)
    if policy.catalog_enabled and policy.catalog_required_for_delete:
        if not catalog.ok:
            return ReasonCode.CATALOG_UNAVAILABLE, catalog_unknown(catalog)
        if catalog.enabled and not case.registered:
            return ReasonCode.NOT_CATALOGUED, "the scan is not yet registered in the catalog"
    return None


def deletes_together(facts: PassFacts, case: Case) -> tuple[DeletePlan, ...]:
    """Check a scan's delete candidates together, in order: a delete may not remove a copy
    an earlier admitted delete relies on, nor rely on a copy being deleted, nor leave no
    verified copy. The per-pass cap is applied afterwards, by the planner."""
    policy = facts.policy
    out: list[DeletePlan] = []
    deleting: set[str] = set()
    pinned: set[str] = set()
    for action in case.candidates:
        endpoint = action.target
        assert endpoint is not None
        rule = policy.retention[endpoint]
        verdict: tuple[ReasonCode, str] | None
        if endpoint in pinned:
            verdict = (
                ReasonCode.REQUIRED_BY_OTHER_DELETE,
                "another delete in this plan relies on this copy; next pass",
            )
        elif deleting & set(rule.delete_requires):
            verdict = (
                ReasonCode.REQUIRED_BY_OTHER_DELETE,
                "a copy this delete relies on is being deleted in this plan",
            )
        elif not [
            name
            for name in policy.endpoints
            if name != endpoint
            and name not in deleting
            and (case.levels.get(name) or Level.ABSENT) >= rule.verify
        ]:
            verdict = (
                ReasonCode.LAST_COPY,
                "this is the last verified copy; it is never deleted",
            )
        else:
            verdict = None
            deleting.add(endpoint)
            pinned.update(rule.delete_requires)
        out.append(DeletePlan(action, verdict))
    return tuple(out)
