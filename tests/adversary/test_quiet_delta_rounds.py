"""Adversary: delta passes round after round (docs/safety.md, "Delta passes"). The delta pass
carries the settled pass's scans, replicas and listings forward and plans the new scans alone
(engine/incremental/delta.py); whatever lands, every service pass must plan what a fresh audit
plans at that instant — the same digest — and a change that is not only new scans must take
the full pass. Each round: new scans land (in a settled folder, in a new folder, sorting before
and after the settled ones, one still being written), the service passes, the world settles.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.adversary.quiet_world import World, make_world, plan_view

QUIET_SECONDS = 600  # a file younger than this (by the engine's clock) is still being written


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    w = make_world(tmp_path, quiet_seconds=QUIET_SECONDS)
    w.settle()
    yield w
    w.engine.close()


def _same(world: World, report: object, audit: object) -> None:
    assert plan_view(report.plan) == plan_view(audit)  # type: ignore[attr-defined]
    assert plan_view(report.plan, ordered=True) == plan_view(audit, ordered=True)  # type: ignore[attr-defined]
    assert report.plan.digest == audit.digest  # type: ignore[attr-defined]


ROUNDS = [
    ["2023/12/p1/S0100.h5"],  # a settled folder, after the settled scans
    ["2023/12/p1/A0001.h5", "2023/12/p2/S0000.h5"],  # before them, and a new folder
    ["2023/11/p0/Z.h5", "2023/12/p1/S0050.h5", "2024/01/p9/B.h5"],
    ["2023/12/p2/S0001.h5"],  # the folder the second round made
]


@pytest.mark.parametrize("order", [0, 1], ids=["as-listed", "reversed"])
def test_delta_rounds_plan_what_the_audit_plans(world: World, order: int) -> None:
    rounds = ROUNDS if order == 0 else ROUNDS[::-1]
    deltas = 0
    for round_ in rounds:
        for rel in round_:
            world.write(rel, os.urandom(200 + len(rel)))
        report, audit, kind = world.step()
        assert kind == "delta", world.quiet.why_not
        deltas += 1
        assert report.new_scans == len(round_)
        _same(world, report, audit)
        # The pass after a delta (copies verifying) is a full one; it too plans as the audit.
        report, audit, kind = world.step()
        assert kind == "full"
        _same(world, report, audit)
        world.settle()
        report, audit, kind = world.step()
        assert kind == "quiet", world.quiet.why_not
        _same(world, report, audit)
    assert world.quiet.deltas == deltas


def test_a_new_scan_lands_while_another_is_still_being_written(world: World) -> None:
    """Two new scans: one complete, one whose file is younger than `quiet_seconds` (still being
    written): the delta pass inventories the first only, as the audit does; once the second is
    old enough, a later pass inventories it, and every pass agrees with the audit."""
    world.write("2023/12/p1/S0200.h5", os.urandom(300))
    writing = "2023/12/p1/S0201.h5"
    world.write(writing, os.urandom(100), mtime=world.clock.now().timestamp())
    report, audit, kind = world.step()
    assert kind == "delta", world.quiet.why_not
    assert report.new_scans == 1
    _same(world, report, audit)
    assert writing not in world.engine.store.load_scans()
    # The detector appends more while the service passes again (not settled: a full pass).
    with (world.ws.dtn / writing).open("ab") as out:
        out.write(os.urandom(50))
    os.utime(world.ws.dtn / writing, (world.clock.now().timestamp(),) * 2)
    report, audit, kind = world.step()
    assert kind == "full"
    _same(world, report, audit)
    world.clock.advance(QUIET_SECONDS)
    report, audit, kind = world.step()
    _same(world, report, audit)
    assert writing in world.engine.store.load_scans()
    world.settle()
    world.write("2023/12/p1/S0202.h5", os.urandom(300))
    report, audit, kind = world.step()
    assert kind == "delta", world.quiet.why_not
    _same(world, report, audit)


@pytest.mark.parametrize("gone", ["dtn", "cfs", "hpss"])
def test_a_settled_scan_removed_beside_a_new_one_takes_the_full_pass(
    world: World, gone: str
) -> None:
    """The delta pass now reads only the folders whose stat changed: a settled scan removed
    from the very folder a new scan lands in must still be seen as gone (the full pass)."""
    world.write("2023/12/p1/S0300.h5", os.urandom(300))
    os.unlink(getattr(world.ws, gone) / "2023/12/p1/S0001.h5")
    report, audit, kind = world.step()
    assert kind == "full", world.quiet.why_not
    _same(world, report, audit)


def test_a_settled_folder_removed_beside_a_new_scan_takes_the_full_pass(world: World) -> None:
    """A whole settled folder moved away on cfs (its scans are gone there) while a new scan
    lands on the DTN."""
    world.write("2023/12/p1/S0400.h5", os.urandom(300))
    (world.ws.cfs / "2023/12/p1").rename(world.ws.cfs / "moved_away")
    report, audit, kind = world.step()
    assert kind == "full", world.quiet.why_not
    _same(world, report, audit)
