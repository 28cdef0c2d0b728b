"""Which local endpoints are provably their storage this pass (`engine.identity`).

An endpoint whose marker does not hold is unknown for every action: it is not listed, it is
reported as an error and alerted on. The check is cheap and local, so it has no circuit breaker:
a remounted filesystem is used again at the next pass.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from engine.errors import Bl931Error, EndpointUnavailable
from engine.identity import IdentityCheck
from engine.model import Alert, AlertEffect, ClearedBy, EndpointError, ErrorClass


def unproven_endpoints(
    identity: IdentityCheck,
    now: datetime,
    user: str,
    errors: list[EndpointError],
    alerts: list[Alert],
    skip: Collection[str] = (),
) -> dict[str, str]:
    """Endpoint → why it is not provably its storage this pass (appending to errors and
    alerts)."""
    unproven: dict[str, str] = {}
    for name in identity.checked_endpoints():  # local roots and tape endpoints
        if name in skip:
            continue  # e.g. a per-file HPSS endpoint now kind "tape": that step comes first
        try:
            identity.observe(name, user=user, now=now)
        except EndpointUnavailable as exc:
            unproven[name] = exc.reason
            errors.append(EndpointError(name, exc.reason, exc.error_class))
            # HPSS merely down (a transient failure of a tape endpoint's runner) is no alert
            if name not in identity.tape or exc.error_class is ErrorClass.NEEDS_HUMAN:
                alerts.append(
                    Alert(
                        "endpoint_identity",
                        AlertEffect.UNKNOWN_ENDPOINT,
                        f"{name} is unknown for every action: {exc.reason}",
                        endpoint=name,
                        cleared_by=ClearedBy.CONDITION,
                    )
                )
        except Bl931Error as exc:
            unproven[name] = exc.message
            errors.append(EndpointError(name, exc.message, exc.error_class))
    return unproven
