"""The circuit breaker of endpoint listings: a dead endpoint costs one timeout per interval.

After `[safety] endpoint_backoff_after` consecutive listing failures an endpoint is not listed
again for `endpoint_backoff_seconds`, doubling with each further failure up to
`endpoint_backoff_max_seconds` (`engine.backoff`). Only the service's passes use it: the audit,
which an operator runs to see the truth right now, always lists every endpoint.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from engine.backoff import backoff_seconds
from engine.config import SafetyConfig


@dataclass(frozen=True, slots=True)
class Open:
    """An endpoint the breaker keeps from being listed this pass."""

    until: datetime
    reason: str
    # The last time a listing worked (the age of what is known about it).
    last_ok_at: datetime | None


class CircuitBreaker:
    def __init__(self, safety: SafetyConfig) -> None:
        self.safety = safety

    def open_until(self, health: Mapping[str, Any] | None) -> datetime | None:
        """When an endpoint with this health row may be listed again (None: list it now)."""
        if not health:
            return None
        failures = int(health.get("consecutive_failures") or 0)
        last_error_at = health.get("last_error_at")
        after = self.safety.endpoint_backoff_after
        if failures < after or last_error_at is None:
            return None
        delay = backoff_seconds(
            failures - after,
            self.safety.endpoint_backoff_seconds,
            self.safety.endpoint_backoff_max_seconds,
        )
        until: datetime = last_error_at + timedelta(seconds=delay)
        return until

    def check(self, health: Mapping[str, Any] | None, now: datetime) -> Open | None:
        """Open (with the reason reported as the endpoint's error) while `now` is before the
        end of its back-off; None when the endpoint is listed."""
        until = self.open_until(health)
        if until is None or now >= until or not health:
            return None
        reason = (
            f"not listed until {until.isoformat(timespec='seconds')} after "
            f"{health['consecutive_failures']} consecutive failures; "
            f"last error: {health['last_error']}"
        )
        return Open(until, reason, health.get("last_ok_at"))
