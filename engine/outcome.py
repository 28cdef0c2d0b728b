"""What a piece of execution did: actions submitted, succeeded and failed (summed per pass),
and the outcomes the recorder counted meanwhile (`actions`, by kind, outcome and where a
failure happened: engine/tallies.py)."""

from __future__ import annotations

from dataclasses import dataclass, field

from engine.tallies import ActionTallies


@dataclass
class Outcome:
    submitted: int = 0
    succeeded: int = 0
    failed: int = 0
    # Filled by the executor's entry points (`execute`, `poll_tasks`, `drain`) from the
    # recorder; the steps inside them leave it empty.
    actions: ActionTallies = field(default_factory=ActionTallies)

    def __add__(self, other: Outcome) -> Outcome:
        return Outcome(
            self.submitted + other.submitted,
            self.succeeded + other.succeeded,
            self.failed + other.failed,
            self.actions + other.actions,
        )
