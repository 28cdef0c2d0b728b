"""The copy rules: which endpoints should hold a scan, and the copies that make it so.

Copies go make-before-break, along the configured route: a copy waits for its configured source
to hold a verified copy (`waiting_for_source`) while that source should still get one; only a
copy the configured source can no longer provide is restored from another verified holder, disk
before tape (a tape recall waits for approval). Nothing is copied into or from an endpoint that
is unknown this pass (`endpoint_unknown`). Files already at a disk target that are not this
version are overwritten only as a gated *replace*, and only while the older version they hold
stays verified elsewhere (`version_conflict` otherwise); on write-once tape the new version goes
beside them under a versioned name.
"""

from __future__ import annotations

from engine.export_control import copy_blocker as export_copy_blocker
from engine.model import ActionKind, Level
from engine.rules.facts import ActionPlan, Case, Gate, PassFacts
from engine.rules.reasons import ReasonCode


def wanted_holders(facts: PassFacts, case: Case) -> frozenset[str]:
    """Copy targets that should hold the scan now.

    A target should hold a copy while its retention lasts; while a copy downstream of it still
    has to be made from it (a scan older than CFS retention still passes through CFS on its way
    to HPSS); and while an endpoint still holding the scan needs it before its own delete (the
    DTN copy waits on CFS). An endpoint that could not be listed counts as holding (unknown is
    not absent), and never creates demand upstream.
    """
    levels = case.levels
    required: set[str] = set()
    for name, needs in facts.requires_of.items():
        level = levels[name]
        if level is None or level > Level.ABSENT:
            required.update(needs)
    wants: dict[str, bool] = {}
    for target, children in facts.target_plan:  # children are decided before their parents
        wanted = target in required or case.retained.get(target, True)
        if not wanted:
            for child in children:
                level = levels[child]
                if wants[child] and level is not None and level < Level.CHECKSUM:
                    wanted = True
                    break
        wants[target] = wanted
    return frozenset(name for name, wanted in wants.items() if wanted)


def plan_copies(facts: PassFacts, case: Case, gate: Gate, wanted: frozenset[str]) -> None:
    """Add the scan's copies to `case.actions` (configured order), or block them."""
    policy = facts.policy
    levels = case.levels
    incoming = {f.target for f in case.flights if f.kind is ActionKind.COPY and f.target}
    coming: set[str] = set(incoming)  # targets that will be filled by this plan or in flight
    for configured_source, target in policy.copies:
        if target not in wanted or target in incoming:
            continue
        if case.export and (held := export_copy_blocker(case.export, facts.offsite, target)):
            case.block(ActionKind.COPY, target, ReasonCode(held[0]), held[1])
            continue
        level = levels.get(target)
        if level is None:
            case.block(
                ActionKind.COPY,
                target,
                ReasonCode.ENDPOINT_UNKNOWN,
                f"{target} could not be listed this pass",
            )
            continue
        if level >= Level.CHECKSUM:
            continue
        older = case.older.get(target)
        tape = target in policy.tape
        if older is not None and not tape and not older:
            case.block(
                ActionKind.COPY,
                target,
                ReasonCode.VERSION_CONFLICT,
                f"{target} holds the only verified copy of an older version of this scan: it is "
                "not replaced until that version is verified elsewhere (an operator decides)",
            )
            continue
        source = copy_source(facts, case, configured_source, target, coming, wanted)
        if source is None:
            continue
        allowed, approved = gate(ActionKind.COPY, source, target)
        if not allowed:
            continue
        recall = source in policy.tape
        # Files of this scan already listed at a disk target but not verified as this
        # version may be an older version whose evidence was lost, or a user's file:
        # overwriting them is a replace. On write-once tape nothing is ever overwritten:
        # the new version is archived beside them under a versioned name.
        unverified = target in case.differs
        versioned = tape and (older is not None or unverified)
        replaces = (older is not None or unverified) and not versioned
        if replaces and case.hold is not None:
            # A replace removes the bytes there, like a delete: a hold stops it too.
            hold = case.hold
            case.block(
                ActionKind.COPY,
                target,
                ReasonCode.ON_HOLD,
                f"held by {hold.placed_by}: {hold.reason}",
            )
            continue
        needs_approval = (
            recall
            or ActionKind.COPY in policy.approval_for
            or (replaces and ActionKind.DELETE in policy.approval_for)
            or case.suspect is not None
        )
        state = "absent" if level is Level.ABSENT else f"verified by {level.word} only"
        reason = f"{target} copy is {state}"
        if unverified:
            reason += "; the files there hold other bytes, which this copy overwrites"
        if older is not None and not versioned:
            reason = (
                f"replaces the verified older version at {target} with the new one "
                "(the older version stays verified elsewhere)"
            )
        if versioned:
            reason = (
                f"{target} is write-once tape and holds other bytes at this scan's path "
                "(an older version): the new version is archived beside it under a "
                "versioned name, nothing is overwritten"
            )
        if source != configured_source:
            reason += f"; restoring from {source}" + (" (tape recall)" if recall else "")
        case.actions.append(
            ActionPlan(
                ActionKind.COPY,
                source,
                target,
                needs_approval,
                reason,
                approved if needs_approval else False,
                facts.order(ActionKind.COPY, target),
                replaces,
                versioned,
            )
        )
        coming.add(target)


def copy_source(
    facts: PassFacts,
    case: Case,
    configured: str,
    target: str,
    coming: set[str],
    wanted: frozenset[str],
) -> str | None:
    """The configured source if it holds a verified copy, else a restore source, else None
    (the copy is blocked in `case`).

    While the configured source should still get its own copy, the copy waits for it (make
    before break, and no detour around the configured route). Only a copy the configured
    source can no longer provide (pruned, or lost after its retention) is restored from
    another endpoint holding a verified copy, disk before tape.
    """
    policy = facts.policy
    levels = case.levels
    level = levels.get(configured)
    if level is not None and level >= Level.CHECKSUM:
        return configured
    still_expected = (
        configured in coming
        or configured in wanted
        or (configured == policy.inventory_endpoint and level is not Level.ABSENT)
    )
    if level is None:
        case.block(
            ActionKind.COPY,
            target,
            ReasonCode.ENDPOINT_UNKNOWN,
            f"source {configured} could not be listed this pass",
        )
        return None
    if still_expected:
        case.block(
            ActionKind.COPY,
            target,
            ReasonCode.WAITING_FOR_SOURCE,
            f"waits for the {configured} copy to be verified first",
        )
        return None
    holders = [
        name
        for name in policy.endpoints
        if name != target and (levels.get(name) or Level.ABSENT) >= Level.CHECKSUM
    ]
    holders.sort(key=lambda name: name in policy.tape)  # disk before tape
    if holders:
        return holders[0]
    case.block(
        ActionKind.COPY,
        target,
        ReasonCode.SOURCE_MISSING,
        f"no endpoint holds a verified copy to copy from ({configured}: {level.word})",
    )
    return None
