"""Taking a decision back: all or nothing, recorded, and never after the fact.

An approval revoked after the pass read the decisions stops the delete: the submission re-reads
the decision log under its write lock (`DecisionLog.admit`) and finds no approval (before, the
delete ran on the plan's stale copy of the decisions, and a revoke that said "revoked" was a
lie). An approval spent by its submission cannot be revoked.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from engine.decision_undo import undo_decisions
from engine.decisions import NOT_APPROVED
from engine.errors import UsageError
from engine.state import StateStore
from tests.tui.world import World


def gated_world(tmp_path: Path) -> tuple[World, str, str]:
    world = World(tmp_path / "w")
    scan = world.write(1, age_days=45)
    world.passes(4)
    (delete,) = [a for a in world.store.actions(["planned"]) if a.target == "dtn"]
    assert delete.requires_approval
    return world, scan, delete.id


def test_an_approval_withdrawn_during_a_pass_stops_its_delete(tmp_path: Path) -> None:
    world, scan, aid = gated_world(tmp_path)
    try:
        world.store.approve([aid], "operator", world.clock.now())
        execute = world.reconciler.executor.execute

        def revoked_after_planning(*args: Any, **kwargs: Any) -> Any:
            # The plan (and its decisions) is made; the operator revokes now.
            other = StateStore(world.ws.state_path)  # as another process would
            try:
                undo_decisions(other, [aid], "approve", by="ops", now=world.clock.now())
            finally:
                other.close()
            return execute(*args, **kwargs)

        world.reconciler.executor.execute = revoked_after_planning  # type: ignore[method-assign]
        world.passes()
        assert (world.ws.dtn / scan).is_file()
        skipped = world.store.events(action_id=aid)
        assert any(
            e["kind"] == "delete.recheck_failed"
            and (e["data"] or {}).get("reason_code") == NOT_APPROVED
            for e in skipped
        )
        world.reconciler.executor.execute = execute  # type: ignore[method-assign]
        world.passes()
        (again,) = [a for a in world.store.actions(["planned"]) if a.id == aid]
        assert again.requires_approval and (world.ws.dtn / scan).is_file()
    finally:
        world.close()


def test_undo_is_all_or_nothing_and_names_every_problem(tmp_path: Path) -> None:
    world, scan, aid = gated_world(tmp_path)
    try:
        now = world.clock.now()
        world.store.reject([aid], "jdoe", now)
        with pytest.raises(UsageError) as refused:
            undo_decisions(world.store, [aid, "0123456789abcdef"], "reject", by="ops", now=now)
        assert "0123456789abcdef: no decision is recorded for it" in refused.value.message
        assert world.store.decisions()[aid][0] == "reject"  # nothing undone
        with pytest.raises(UsageError, match="it is rejected, not approved"):
            undo_decisions(world.store, [aid], "approve", by="ops", now=now)
        (undone,) = undo_decisions(world.store, [aid], "reject", by="ops", now=now)
        assert (undone.action_id, undone.scan) == (aid, scan)
        assert aid not in world.store.decisions()
        (event,) = [
            e for e in world.store.events(action_id=aid) if e["kind"] == "action.unrejected"
        ]
        assert event["message"] == "rejection withdrawn by ops" and event["scan"] == scan
    finally:
        world.close()


def test_a_spent_approval_cannot_be_revoked_and_a_revoke_restarts_the_approvers(
    tmp_path: Path,
) -> None:
    from engine.approvals import approvals_for
    from engine.operator_decisions import DecisionRequest, record
    from engine.operators import Operator

    world, scan, aid = gated_world(tmp_path)
    alice, bob = Operator(1001, "alice"), Operator(1002, "bob")
    try:
        now = world.clock.now()
        record(world.store, DecisionRequest("approve", (aid,)), alice, now, via="service")
        result = record(world.store, DecisionRequest("revoke", (aid,)), alice, now, via="service")
        assert (result.count, result.scans) == (1, {aid: scan})
        # For a large delete, a second approver after a revoke is the first again.
        record(world.store, DecisionRequest("approve", (aid,)), bob, now, via="service")
        assert [a.by for a in approvals_for(world.store, aid)] == ["bob"]
        rows = world.store.connection().execute(
            "SELECT decided_by, superseded FROM decisions WHERE action_id = ? ORDER BY seq", (aid,)
        )
        assert [tuple(r) for r in rows] == [("alice", 1), ("bob", 0)]  # kept in the log
        world.passes()
        assert not (world.ws.dtn / scan).exists()  # bob's approval was spent by the delete
        with pytest.raises(UsageError, match="already acted on"):
            record(world.store, DecisionRequest("revoke", (aid,)), bob, now, via="service")
    finally:
        world.close()
