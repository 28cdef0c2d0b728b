"""The catalog rule: register a scan once its first copy is verified, and keep the catalog's
locations equal to the endpoints holding a verified copy.

Registering waits for a verified copy at the registration endpoint (the first copy target after
the inventory endpoint). A location update waits until every endpoint could be listed: an
unknown endpoint never changes what the catalog says. When the catalog cannot be reached (or lost
records), both wait as `catalog_unavailable`.
"""

from __future__ import annotations

from collections.abc import Mapping

from engine.model import ActionKind, Level
from engine.rules.facts import ActionPlan, Case, Gate, PassFacts, catalog_unknown
from engine.rules.reasons import ReasonCode


def verified_locations(levels: Mapping[str, Level | None]) -> frozenset[str] | None:
    """Endpoints holding a verified copy, or None if any endpoint is unknown this pass."""
    out = set()
    for name, level in levels.items():
        if level is None:
            return None
        if level >= Level.CHECKSUM:
            out.add(name)
    return frozenset(out)


def plan_catalog(facts: PassFacts, case: Case, gate: Gate) -> None:
    """Add the scan's register or location update to `case.actions`, or block it."""
    if not facts.catalog_active:
        return
    first = facts.registration_endpoint
    recorded_locations = case.recorded
    if recorded_locations is None:
        if first is None or (case.levels.get(first) or Level.ABSENT) < Level.CHECKSUM:
            return  # registering waits for the first verified copy
        kind = ActionKind.REGISTER
        reason = f"{first} copy verified; not yet in the catalog"
    else:
        locations = verified_locations(case.levels)
        if locations is None or locations == recorded_locations:
            return
        kind = ActionKind.UPDATE_CATALOG
        recorded = ", ".join(sorted(recorded_locations)) or "none"
        now_at = ", ".join(sorted(locations)) or "none"
        reason = f"locations changed: catalog has {recorded}; now {now_at}"
    catalog = facts.catalog
    if not catalog.usable:
        case.block(kind, None, ReasonCode.CATALOG_UNAVAILABLE, catalog_unknown(catalog))
        return
    allowed, approved = gate(kind, None, None)
    if not allowed:
        return
    needs_approval = kind in facts.policy.approval_for
    case.actions.append(
        ActionPlan(
            kind,
            None,
            None,
            needs_approval,
            reason,
            approved if needs_approval else False,
            facts.order(kind, None),
        )
    )
