"""`[approval] second_approver_over_bytes`: a large delete runs only after two different approvers.

In-process, with two operators (alice, bob) that the injected account databases name from
their uids, deciding through the service's `DecisionDesk` exactly as the decision socket hands
their requests over (peer credentials included).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from engine.approvals import approvals_for
from engine.decision_socket import Peer
from engine.model import ActionKind, Plan
from engine.operator_decisions import DecisionDesk
from engine.workspace import create_workspace
from tests.engine.test_operators import FakeAccounts
from tests.engine_world import open_engine

START = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
BIG, SMALL = "2026/11/big.h5", "2026/11/small.h5"
ALICE, BOB, CAROL = 1001, 1002, 1003
ACCOUNTS = FakeAccounts(
    users={ALICE: ("alice", 2000), BOB: ("bob", 2000), CAROL: ("carol", 1003)},
    groups={2000: "bl931-ops", 1003: "carol"},
)


class Beamline:
    def __init__(self, root: Path) -> None:
        self.ws = create_workspace(root, dtn_keep_days=0, cfs_keep_days=1000)
        mtime = START.timestamp() - 3600
        self.ws.write_scan(BIG, os.urandom(5000), mtime=mtime)
        self.ws.write_scan(SMALL, os.urandom(500), mtime=mtime)
        text = self.ws.config_path.read_text()
        self.ws.config_path.write_text(
            text.replace(
                "[approval]\n",
                '[approval]\napprovers = ["@bl931-ops"]\nsecond_approver_over_bytes = 1000\n',
            )
        )
        self.config = self.ws.config()
        engine = open_engine(self.config, start=START)
        self.clock, self.store, self.backends = engine.clock, engine.store, engine.backends
        self.reconciler = engine.reconciler
        self.desk = DecisionDesk(self.store, lambda: self.config, self.clock, accounts=ACCOUNTS)

    def pass_(self) -> Plan:
        plan = self.reconciler.reconcile_once(drain=True).plan
        self.clock.advance(minutes=1)
        return plan

    def deletes(self, plan: Plan) -> dict[str, Any]:
        return {a.scan: a for a in plan.actions if a.kind is ActionKind.DELETE}

    def decide(self, uid: int, op: str, *ids: str) -> dict[str, Any]:
        return self.desk({"op": op, "ids": list(ids)}, Peer(4000 + uid, uid, 2000))

    def close(self) -> None:
        self.backends.close()
        self.store.close()


@pytest.fixture
def line(tmp_path: Path) -> Iterator[Beamline]:
    beamline = Beamline(tmp_path / "ws")
    try:
        yield beamline
    finally:
        beamline.close()


def awaiting(line: Beamline) -> dict[str, Any]:
    for _ in range(4):
        deletes = line.deletes(line.pass_())
        if len(deletes) == 2:
            return deletes
    raise AssertionError("the dtn prunes were never planned")


def test_one_approver_twice_is_still_one_and_a_second_one_releases_it(line: Beamline) -> None:
    deletes = awaiting(line)
    big, small = deletes[BIG], deletes[SMALL]
    assert line.decide(ALICE, "approve", big.id, small.id)["approvals"] == {
        big.id: ["alice"],
        small.id: ["alice"],
    }
    assert line.decide(ALICE, "approve", big.id)["approvals"] == {big.id: ["alice"]}
    plan = line.pass_()
    assert not (line.ws.dtn / SMALL).exists(), "a small delete needs one approver"
    assert line.deletes(plan)[SMALL].approved  # planned approved, and run in this pass
    waiting = line.deletes(plan)[BIG]
    assert waiting.id == big.id and waiting.requires_approval and not waiting.approved
    assert "approved by alice" in waiting.reason and "second, different approver" in waiting.reason
    assert plan.summary()["awaiting_approval"] == 1
    assert (line.ws.dtn / BIG).exists(), "a large delete ran on one approver's word"

    assert line.decide(CAROL, "approve", big.id)["error"] == "not_approver"
    line.pass_()
    assert (line.ws.dtn / BIG).exists(), "a refused operator counted as a second approver"

    assert line.decide(BOB, "approve", big.id)["approvals"] == {big.id: ["alice", "bob"]}
    line.pass_()
    assert not (line.ws.dtn / BIG).exists()
    (receipt,) = line.store.receipts(BIG)
    assert [(a["by"], a["uid"], a["via"]) for a in receipt["approvers"]] == [
        ("alice", ALICE, "service"),
        ("bob", BOB, "service"),
    ]


def test_a_rejection_between_two_approvals_starts_the_count_again(line: Beamline) -> None:
    big = awaiting(line)[BIG]
    line.decide(ALICE, "approve", big.id)
    line.decide(BOB, "reject", big.id)
    line.decide(BOB, "approve", big.id)
    assert [a.by for a in approvals_for(line.store, big.id)] == ["bob"]
    line.pass_()
    assert (line.ws.dtn / BIG).exists(), "alice's approval survived bob's rejection"


def test_a_restored_copy_needs_two_new_approvals(line: Beamline) -> None:
    big = awaiting(line)[BIG]
    kept = line.ws.root / "kept.h5"
    shutil.copy2(line.ws.dtn / BIG, kept)
    line.decide(ALICE, "approve", big.id)
    line.decide(BOB, "approve", big.id)
    line.pass_()
    assert not (line.ws.dtn / BIG).exists()
    shutil.copy2(kept, line.ws.dtn / BIG)  # a user restores it to reprocess (cp -p)
    for _ in range(2):
        plan = line.pass_()
    again = line.deletes(plan).get(BIG)
    assert again is not None and again.id == big.id and not again.approved
    assert approvals_for(line.store, big.id) == []
    assert (line.ws.dtn / BIG).exists(), "the restored copy was deleted on spent approvals"
