"""The dry run (`--dry-run`, the TUI's plan, an operator's decision checked against a fresh
plan): the observation and planning of a pass with every write switched off.

It observes without writing (and without the service's circuit breaker: whoever asks sees every
endpoint as it is now), records nothing, executes nothing, and sets the plan's findings (alerts,
inventory problems) beside it without recording them.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from engine.model import Plan
from engine.observe.observation import Observation
from engine.pass_plan import PassPlanner

__all__ = ["dry_run"]


def dry_run(
    observe: Callable[[datetime], Observation], planner: PassPlanner, now: datetime
) -> Plan:
    """Observe with `observe` (read-only) and plan at `now`; change nothing anywhere."""
    seen = observe(now)
    return planner.with_findings(planner.make_plan(seen, now), seen, now, write=False)
