"""What became of actions, counted as the executor records it: `ActionTallies`.

The recorder (`engine/recorder.py`) counts each action outcome at the moment it logs and stores
the outcome's event, from what the executor tells it (the outcome, the action's kind and where
it acts), never by reading the audit log back or by parsing event names. The executor's entry
points hand the counts up in their `Outcome` (`engine/outcome.py`), the pass report carries the
pass's counts (`engine/pass_report.py`), and the metrics are fed from the report
(`bl931_actions`, and the action half of `bl931_errors`: `engine/metrics.py`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from engine.model import ActionKind, ErrorClass

# Where a catalog action's failure is counted (the `endpoint` label of `bl931_errors`).
CATALOG = "catalog"
_CATALOG_ACTIONS = frozenset({ActionKind.REGISTER.value, ActionKind.UPDATE_CATALOG.value})


class ActionOutcome(StrEnum):
    """What became of an action in a pass (the `outcome` label of `bl931_actions`)."""

    SUBMITTED = "submitted"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"  # a delete whose last look (or a decision read at submission) refused it


class Acted(Protocol):
    """What the tallies need of an action: its kind and the endpoint it acts on (a planned
    `Action`, a stored `ActionRow`, or the `TaskRow` its batch was submitted as)."""

    @property
    def kind(self) -> str: ...

    @property
    def target(self) -> str | None: ...


@dataclass
class ActionTallies:
    """Action outcomes: (action kind, outcome) counts, and the failures by (error class, where:
    the target endpoint, or `catalog` for catalog actions)."""

    outcomes: dict[tuple[str, ActionOutcome], int] = field(default_factory=dict)
    failures: dict[tuple[str, str], int] = field(default_factory=dict)

    def count(
        self, action: Acted, outcome: ActionOutcome, error_class: ErrorClass | None = None
    ) -> None:
        """One outcome of `action` (a failure also under its error class and where)."""
        kind = str(action.kind)
        key = (kind, outcome)
        self.outcomes[key] = self.outcomes.get(key, 0) + 1
        if outcome is ActionOutcome.FAILED:
            where = CATALOG if kind in _CATALOG_ACTIONS else action.target
            failure = ((error_class or ErrorClass.TRANSIENT).value, where or "unknown")
            self.failures[failure] = self.failures.get(failure, 0) + 1

    def __add__(self, other: ActionTallies) -> ActionTallies:
        out = ActionTallies(dict(self.outcomes), dict(self.failures))
        for key, n in other.outcomes.items():
            out.outcomes[key] = out.outcomes.get(key, 0) + n
        for where, n in other.failures.items():
            out.failures[where] = out.failures.get(where, 0) + n
        return out
