"""Rule 2 (DESIGN §3): what this pass's observations prove.

An endpoint that failed to list, or whose last listing is older than
`[safety] max_observation_age`, is unknown. If more than `max_missing_fraction` of the replicas
previously seen at an endpoint vanished, the endpoint is unknown for every action and no delete
is planned anywhere (an alert says so until the replicas return or an operator accepts the loss).
The fraction is of what the pass listed: a service pass that lists only part of a Globus endpoint
(engine/incremental/remote_slice.py) counts neither the replicas it did not list as missing nor
them in the baseline.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from engine.model import Alert, AlertEffect, ClearedBy, EndpointObservation
from engine.policy import Policy


def is_stale(obs: EndpointObservation, now: datetime, policy: Policy) -> bool:
    """Whether the endpoint's last listing is too old to rely on."""
    if obs.observed_at is None:
        return False
    age = (now - obs.observed_at).total_seconds()
    return age > policy.max_observation_age_seconds


def missing_fraction_alerts(
    policy: Policy, observations: Mapping[str, EndpointObservation]
) -> list[Alert]:
    """One `missing_fraction` alert per endpoint where too many replicas vanished.

    Args:
        policy: the endpoints, in policy order, and `max_missing_fraction`.
        observations: this pass's listings; endpoints that failed to list are skipped.

    Returns:
        The alerts, in policy order; any alert freezes deletes everywhere.
    """
    alerts: list[Alert] = []
    for name in policy.endpoints:
        obs = observations.get(name)
        if obs is None or not obs.ok:
            continue
        baseline = obs.baseline()  # what this pass listed (all, but in a sliced pass)
        missing = len(obs.missing())
        if baseline and missing / baseline > policy.max_missing_fraction:
            message = (
                f"{name}: {missing} of {baseline} previously seen replicas are missing "
                f"({missing / baseline:.0%} > {policy.max_missing_fraction:.0%}); "
                f"no deletes are planned anywhere and {name} is unknown for every action "
                "until the replicas return or an operator acknowledges the loss"
            )
            alerts.append(
                Alert(
                    "missing_fraction",
                    AlertEffect.FREEZE_DELETES,
                    message,
                    endpoint=name,
                    cleared_by=ClearedBy.CONDITION_OR_ACKNOWLEDGEMENT,
                )
            )
    return alerts
