"""A replace whose submission was recorded but whose answer a crash lost is resubmitted only like a
resumed delete: still planned, after its last look, and on decisions and holds read again.

In-process world (tests/engine/safety_world.py: the real engine, local endpoints, a fake clock);
the crash is placed by wrapping the mover's `submit` (tests/engine/safety_crash.py's `Crash`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.engine.safety_checks import Knowledge, check_all
from tests.engine.safety_crash import Crash
from tests.engine.safety_world import World

V1 = [b"version one, verified on cfs and on tape"]


@contextlib.contextmanager
def crash_in_replace(world: World, *, placed: bool) -> Iterator[None]:
    """The process dies when the mover is handed a replace: before it ran (`placed=False`), or
    after its worker wrote the new bytes over the older version (`placed=True`)."""
    mover: Any = world.backends.movers["local"]
    real_submit = mover.submit

    def submit(request: Any) -> str:
        if request.kind == "copy" and any(item.overwrite for item in request.items):
            if placed:
                for item in request.items:
                    for f in item.files:
                        source = world.configured(request.source) / f.path
                        (world.configured(request.target) / f.path).write_bytes(source.read_bytes())
            raise Crash("prepared", request.target)
        return str(real_submit(request))

    mover.submit = submit
    try:
        yield
    finally:
        mover.submit = real_submit


def replace_awaiting_approval(tmp_path: Path) -> tuple[World, Knowledge, str]:
    """v1 on cfs and hpss (the dtn keeps its copy); the dtn rewritten (v2): the replace of v1 at
    cfs awaits approval. Returns the world and the replace's action id."""
    world = World(tmp_path / "ws", directory=False, gated=True, dtn_keep_days=1000)
    knowledge = Knowledge()
    world.write("s0.h5", V1)
    for _ in range(2):
        world.run_pass()
        check_all(world, knowledge)
    assert world.holds("cfs", "s0.h5", {"s0.h5": V1[0]})
    world.rewrite("s0.h5", b"version two", index=0, in_place=False, keep=False)
    world.run_pass()
    check_all(world, knowledge)
    plan = world.reconciler.dry_run(world.clock.now())
    (replace,) = [a for a in plan.actions if a.kind.value == "copy" and a.replaces]
    assert replace.target == "cfs" and replace.requires_approval and not replace.approved
    return world, knowledge, replace.id


def copy_events(world: World, kind: str) -> list[dict[str, Any]]:
    return [e for e in world.store.events(scan="s0.h5", limit=10_000) if e["kind"] == kind]


@pytest.mark.parametrize("decision", ["reject", "hold"])
def test_a_decision_between_the_crash_and_the_restart_stops_a_resubmitted_replace(
    tmp_path: Path, decision: str
) -> None:
    """The replace is approved and submitted; the process dies before the mover ran (the task
    stays `preparing`). An operator then rejects it (or holds the scan) before the restart.
    The restarted process must not resubmit it: cfs keeps v1, no `copy.replaced` receipt.
    (Before, a `preparing` copy task was resubmitted straight from polling, without reading
    decisions again: v1 at cfs was overwritten on the strength of the withdrawn approval.)"""
    world, knowledge, replace_id = replace_awaiting_approval(tmp_path)
    try:
        world.store.approve([replace_id], "operator", world.clock.now())
        with pytest.raises(Crash), crash_in_replace(world, placed=False):
            world.run_pass()
        (task,) = [t for t in world.store.tasks(("preparing",)) if t.kind == "copy"]
        assert replace_id in task.action_ids
        world.restart()
        now = world.clock.now()
        if decision == "reject":
            world.store.reject([replace_id], "second operator", now, "keep v1 on disk")
        else:
            world.store.place_hold(
                "s0.h5", "investigating", "second operator", now, now + timedelta(days=1)
            )
        for _ in range(3):
            world.run_pass()
            check_all(world, knowledge)
        assert world.holds("cfs", "s0.h5", {"s0.h5": V1[0]}), "v1 at cfs was overwritten"
        assert not copy_events(world, "copy.replaced")
        assert world.store.tasks(("preparing", "active")) == []
        (after,) = [t for t in world.store.tasks() if t.submission_id == task.submission_id]
        assert after.status == "withdrawn"
    finally:
        world.close()


def test_an_interrupted_replace_that_placed_its_bytes_is_receipted_once(tmp_path: Path) -> None:
    """The approved replace's worker wrote v2 over v1 at cfs, then the process died before the
    task was recorded active. The restart settles it from a fresh listing (v1 is gone from
    cfs: a `copy.replaced` receipt naming v1), and the copy is verified afterwards without a
    second receipt for the same removal."""
    world, knowledge, replace_id = replace_awaiting_approval(tmp_path)
    try:
        world.store.approve([replace_id], "operator", world.clock.now())
        with pytest.raises(Crash), crash_in_replace(world, placed=True):
            world.run_pass()
        world.restart()
        for _ in range(3):
            world.run_pass()
            check_all(world, knowledge)
        check_all(world, knowledge, settled=True)
        (receipt,) = [e["data"] for e in copy_events(world, "copy.replaced")]
        (intent,) = [e["data"] for e in copy_events(world, "copy.replace_submitted")]
        assert receipt["old_checksum"] == intent["old_checksum"]
        assert receipt["target"] == "cfs" and receipt["approval_by"] == "operator"
        assert world.holds("cfs", "s0.h5", {"s0.h5": b"version two"})
        evidence = world.store.load_evidence()["cfs"]["s0.h5"]
        assert evidence.value == world.store.get_scan("s0.h5").checksum  # type: ignore[union-attr]
    finally:
        world.close()
