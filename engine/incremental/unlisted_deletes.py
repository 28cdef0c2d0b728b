"""No delete relies on a replica the pass did not list (DESIGN rule 1 under the slice).

In the service's incremental passes a Globus endpoint may carry forward replicas it did not
list (`engine.incremental.remote_slice`). The slice lists every scan whose delete may fall due,
so this should never bite; it is the rule written down: a delete (or a replace of a verified
copy) whose own copy or a copy it requires was carried forward is blocked
`observation_stale` for this pass, and the scan, now unsettled, is listed at the next pass.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from engine.blocked_entries import joined
from engine.model import ActionKind, Blocked, EndpointObservation, Plan
from engine.policy import Policy


def block_unlisted_deletes(
    plan: Plan, observations: Mapping[str, EndpointObservation], policy: Policy
) -> Plan:
    """The plan with every delete or replace relying on a carried-forward replica blocked."""
    carried = {name: obs.carried for name, obs in observations.items() if obs.carried}
    if not carried:
        return plan
    actions = []
    blocked: list[Blocked] = []  # added to the plan's own
    for action in plan.actions:
        target = action.target
        relied: tuple[str, ...] = ()
        if action.kind is ActionKind.DELETE and target is not None:
            rule = policy.retention.get(target)
            relied = (target, *(rule.delete_requires if rule is not None else ()))
        elif action.kind is ActionKind.COPY and action.replaces is not None and target:
            relied = (target,)
        unlisted = [name for name in relied if action.scan in carried.get(name, {})]
        if not unlisted:
            actions.append(action)
            continue
        name = unlisted[0]
        when = carried[name][action.scan].isoformat(timespec="seconds")
        blocked.append(
            Blocked(
                action.scan,
                action.kind,
                target,
                "observation_stale",
                f"the {name} copy was not listed this pass (last listed {when}); "
                "it is listed at the next pass",
            )
        )
    return replace(
        plan,
        actions=tuple(actions),
        blocked=joined(plan.blocked, blocked) if blocked else plan.blocked,
    )
