"""The pass report the metrics are fed from: action outcomes typed, counted from the audit log."""

from __future__ import annotations

from engine.pass_report import ActionOutcome, ActionTallies


def test_action_events_are_tallied_by_kind_outcome_and_where_they_failed() -> None:
    tallies = ActionTallies.of_events(
        [
            ("copy.submitted", "copy", "cfs", None),
            ("copy.verified", "copy", "cfs", None),
            ("action.failed", "copy", "hpss", "needs_human"),
            ("action.failed", "register", None, None),  # a catalog action fails at the catalog
            ("catalog.registered", "register", None, None),
            ("delete.recheck_failed", "delete", "dtn", None),
            ("delete.submitted", "delete", "dtn", None),
            ("action.interrupted", "copy", "cfs", None),  # not an outcome
        ]
    )
    assert tallies.outcomes == {
        ("copy", ActionOutcome.SUBMITTED): 1,
        ("copy", ActionOutcome.SUCCEEDED): 1,
        ("copy", ActionOutcome.FAILED): 1,
        ("register", ActionOutcome.FAILED): 1,
        ("register", ActionOutcome.SUCCEEDED): 1,
        ("delete", ActionOutcome.SKIPPED): 1,
        ("delete", ActionOutcome.SUBMITTED): 1,
    }
    assert tallies.failures == {("needs_human", "hpss"): 1, ("transient", "catalog"): 1}
