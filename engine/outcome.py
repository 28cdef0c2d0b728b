"""What a piece of execution did: actions submitted, succeeded and failed (summed per pass)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Outcome:
    submitted: int = 0
    succeeded: int = 0
    failed: int = 0

    def __add__(self, other: Outcome) -> Outcome:
        return Outcome(
            self.submitted + other.submitted,
            self.succeeded + other.succeeded,
            self.failed + other.failed,
        )
