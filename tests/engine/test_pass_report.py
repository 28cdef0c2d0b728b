"""The action tallies the metrics are fed from: counted by the recorder as it records each
outcome, by kind, outcome and where a failure happened, and only inside a counting block."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from engine.model import ErrorClass, Level, Replica
from engine.outcome import Outcome
from engine.pass_report import ActionOutcome, ActionTallies, count_levels
from engine.recorder import Recorder
from engine.state import StateStore
from engine.workspace import create_workspace

NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)
SUBMITTED, SUCCEEDED = ActionOutcome.SUBMITTED, ActionOutcome.SUCCEEDED
FAILED, SKIPPED = ActionOutcome.FAILED, ActionOutcome.SKIPPED


@dataclass(frozen=True)
class Acted:
    kind: str
    target: str | None


COPY_CFS, COPY_HPSS = Acted("copy", "cfs"), Acted("copy", "hpss")
DELETE_DTN, REGISTER = Acted("delete", "dtn"), Acted("register", None)


@pytest.fixture
def recorder(tmp_path: Path) -> Recorder:
    config = create_workspace(tmp_path / "ws").config()
    return Recorder(StateStore(tmp_path / "state.sqlite"), config)


def test_outcomes_are_tallied_by_kind_outcome_and_where_they_failed(recorder: Recorder) -> None:
    with recorder.counting() as tallies:
        recorder.event(
            NOW, "copy.submitted", "m", action_id="a1", outcome=SUBMITTED, action=COPY_CFS
        )
        recorder.event(
            NOW, "copy.verified", "m", action_id="a1", outcome=SUCCEEDED, action=COPY_CFS
        )
        recorder.fail("a2", "s", ErrorClass.NEEDS_HUMAN, "denied", NOW, action=COPY_HPSS)
        # A catalog action fails at the catalog, whatever its target.
        recorder.fail("a3", "s", ErrorClass.TRANSIENT, "reset", NOW, action=REGISTER)
        recorder.event(
            NOW, "catalog.register", "m", action_id="a3", outcome=SUCCEEDED, action=REGISTER
        )
        recorder.event(NOW, "delete.recheck_failed", "m", outcome=SKIPPED, action=DELETE_DTN)
        recorder.event(NOW, "delete.submitted", "m", outcome=SUBMITTED, action=DELETE_DTN)
        # Not outcomes: an interruption, and events that say nothing of one.
        recorder.fail(
            "a4", "s", ErrorClass.TRANSIENT, "stop", NOW, action=COPY_CFS, interrupted=True
        )
        recorder.event(NOW, "copy.replaced", "m", action_id="a1")
        recorder.event(NOW, "copy.verified", "named like an outcome, but not said to be one")
    assert tallies.outcomes == {
        ("copy", SUBMITTED): 1,
        ("copy", SUCCEEDED): 1,
        ("copy", FAILED): 1,
        ("register", FAILED): 1,
        ("register", SUCCEEDED): 1,
        ("delete", SKIPPED): 1,
        ("delete", SUBMITTED): 1,
    }
    assert tallies.failures == {("needs_human", "hpss"): 1, ("transient", "catalog"): 1}


def test_an_outcome_without_its_action_is_refused(recorder: Recorder) -> None:
    with pytest.raises(ValueError, match=r"copy\.verified: an action outcome needs the action"):
        recorder.event(NOW, "copy.verified", "m", outcome=SUCCEEDED)


def test_outcomes_count_only_in_the_innermost_open_block(recorder: Recorder) -> None:
    recorder.event(NOW, "copy.submitted", "outside", outcome=SUBMITTED, action=COPY_CFS)
    with recorder.counting() as outer:
        with recorder.counting() as inner:
            recorder.event(NOW, "copy.submitted", "inner", outcome=SUBMITTED, action=COPY_CFS)
        recorder.event(NOW, "copy.verified", "outer", outcome=SUCCEEDED, action=COPY_CFS)
        with pytest.raises(RuntimeError), recorder.counting() as died:
            recorder.event(NOW, "copy.submitted", "then raised", outcome=SUBMITTED, action=COPY_CFS)
            raise RuntimeError("killed")
        assert died.outcomes == {("copy", SUBMITTED): 1}  # dropped with its block
    assert inner.outcomes == {("copy", SUBMITTED): 1}
    assert outer.outcomes == {("copy", SUCCEEDED): 1}
    assert len(recorder.store.events()) == 4  # every event stored, counted or not


def test_outcomes_add_up_with_their_tallies() -> None:
    a, b = ActionTallies(), ActionTallies()
    a.count(COPY_CFS, SUBMITTED)
    b.count(COPY_CFS, SUBMITTED)
    b.count(COPY_HPSS, FAILED, ErrorClass.TRANSIENT)
    total = Outcome(submitted=1, actions=a) + Outcome(submitted=1, failed=1, actions=b)
    assert (total.submitted, total.failed) == (2, 1)
    assert total.actions.outcomes == {("copy", SUBMITTED): 2, ("copy", FAILED): 1}
    assert total.actions.failures == {("transient", "hpss"): 1}
    assert a.outcomes == {("copy", SUBMITTED): 1}  # the parts are left as they were


def test_replica_levels_are_counted_per_endpoint_on_top_of_a_base() -> None:
    """One counting for the full pass's report and the delta pass's (which adds the new
    scans' verdicts to the settled pass's counts): absent replicas are not counted."""

    def replica(scan: str, endpoint: str, level: Level) -> Replica:
        return Replica(scan, endpoint, level, size=1, files=1)

    dtn = [replica("a", "dtn", Level.CHECKSUM), replica("b", "dtn", Level.ABSENT)]
    cfs = [replica("a", "cfs", Level.SIZE), replica("b", "cfs", Level.CHECKSUM)]
    counted = count_levels([("dtn", dtn), ("cfs", cfs)])
    assert counted == {("dtn", "checksum"): 1, ("cfs", "size"): 1, ("cfs", "checksum"): 1}
    base = {("dtn", "checksum"): 5, ("hpss", "present"): 2}
    added = count_levels([("dtn", iter(dtn))], base)
    assert added == {("dtn", "checksum"): 6, ("hpss", "present"): 2}
    assert base == {("dtn", "checksum"): 5, ("hpss", "present"): 2}  # the base is not changed
